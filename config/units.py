"""Units a device may state in its payload, and conversion to a sensor's configured unit.

A firmware that says which unit it measured in (Tasmota's ``TempUnit``/``PressureUnit``,
Shelly's ``tC``/``tF``) is converted to the unit the sensor is configured in, or refused
with the reason; a reading is never labelled with a unit it is not in. Pure; no imports
beyond the standard library.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

Quantity = Literal["temperature", "pressure"]

_ALIASES: dict[str, str] = {
    **dict.fromkeys(("degc", "°c", "c", "celsius", "℃", "deg c"), "degC"),
    **dict.fromkeys(("degf", "°f", "f", "fahrenheit", "℉", "deg f"), "degF"),
    **dict.fromkeys(("k", "kelvin"), "K"),
    **dict.fromkeys(("hpa", "mbar", "mb", "millibar"), "hPa"),
    "pa": "Pa", "kpa": "kPa", "mmhg": "mmHg", "inhg": "inHg",
}
_QUANTITY: dict[str, Quantity] = {
    "degC": "temperature", "degF": "temperature", "K": "temperature",
    "hPa": "pressure", "Pa": "pressure", "kPa": "pressure", "mmHg": "pressure",
    "inHg": "pressure",
}
# each unit → (to the quantity's base unit, from it); bases: degC, hPa
_TO_BASE: dict[str, tuple[Callable[[float], float], Callable[[float], float]]] = {
    "degC": (lambda v: v, lambda v: v),
    "degF": (lambda v: (v - 32.0) * 5.0 / 9.0, lambda v: v * 9.0 / 5.0 + 32.0),
    "K": (lambda v: v - 273.15, lambda v: v + 273.15),
    "hPa": (lambda v: v, lambda v: v),
    "Pa": (lambda v: v / 100.0, lambda v: v * 100.0),
    "kPa": (lambda v: v * 10.0, lambda v: v / 10.0),
    "mmHg": (lambda v: v * 1.3332236842, lambda v: v / 1.3332236842),
    "inHg": (lambda v: v * 33.863886667, lambda v: v / 33.863886667),
}


class UnitError(ValueError):
    """A value that cannot be put in the wanted unit; ``reason`` is a counter's key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def canonical(unit: str) -> str | None:
    """``"°C"``, ``"C"``, ``"degC"`` → ``"degC"``; None for a unit this module does not
    convert (``%``, ``ppm``...)."""
    return _ALIASES.get(unit.strip().lower())


def quantity(unit: str) -> Quantity | None:
    c = canonical(unit)
    return None if c is None else _QUANTITY[c]


def convert(value: float, source: str, target: str) -> float:
    """``value`` in unit ``source`` → in ``target``. UnitError (``unknown_unit``) for a
    source unit this module does not know, (``unit_mismatch``) for a target that is not
    a unit of the same quantity."""
    src = canonical(source)
    if src is None:
        raise UnitError("unknown_unit", f"the device's unit {source!r} is not one gridcall "
                        "converts (°C, °F, K, hPa, Pa, kPa, mmHg, inHg)")
    dst = canonical(target)
    if dst is None or _QUANTITY[dst] != _QUANTITY[src]:
        raise UnitError("unit_mismatch", f"the value is a {_QUANTITY[src]} in {source!r} but "
                        f"the sensor's unit is {target!r}: give the sensor a "
                        f"{_QUANTITY[src]} unit, or map another field")
    if src == dst:
        return value
    to_base = _TO_BASE[src][0]
    from_base = _TO_BASE[dst][1]
    return from_base(to_base(value))
