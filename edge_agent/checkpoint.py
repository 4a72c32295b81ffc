"""Detector checkpoints: what each sensor's detector has learned, saved and restored.

A restarted agent that forgot its detectors would spend its warm-up (200 readings per
sensor for the default) blind, and would forget each sensor's records, so the first
days after every power cut would alert on ordinary behaviour. The agent saves every
sensor's detector and episode state to ``{state_dir}/{agent}.checkpoint`` every
``checkpoint_interval`` and at a clean stop, and restores it at start-up.

**Why pickle.** Detectors are plain Python objects of a dozen classes in the registry
(floats, ``array('d')``, int bitsets, deques, numpy arrays and a scikit-learn forest for
the multivariate ones), and river's convention, which ours follows, is that a detector
pickles before and after learning. A msgspec schema would need a hand-written state
struct per detector, kept in step with every new field; pickle restores the object
exactly, so a restored detector continues bit for bit like one never stopped (tested).
Pickle's risks are handled where they are: the file is written by the agent into its
own state folder; it carries a magic line, a format version and a SHA-256 of the body,
so a torn or damaged file is refused before anything is unpickled; and the unpickler
only resolves classes from :data:`ALLOWED_MODULES`.

**Compatibility.** Each sensor's entry carries a fingerprint of what built its detector
(class, detector settings, limits). A sensor whose config changed since the checkpoint,
or that is new, starts fresh (logged); the others are restored. A whole file that is
damaged, of another format version, of another agent, or that fails to unpickle is
refused with a :class:`CheckpointRefused` naming the file and the reason, and the agent
starts fresh: never a crash.

Writing is atomic: a temporary file, fsync, rename, fsync of the folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridcall.edge_agent.watch import SensorWatch

MAGIC = b"GRIDCALL-DETECTOR-CHECKPOINT\n"
FORMAT = 3
"""Raised when the pickled state of a detector or of Episodes changes shape, so an older
agent's checkpoint is refused (every detector starts fresh, logged) rather than restored
into objects missing an attribute. 2: Episodes.opened, DefaultDetector's records
forgotten per time. 3: Episodes.raised, DefaultDetector's novelty learning period."""
_HEADER = struct.Struct(">I32s")  # format version, sha256 of the body

ALLOWED_MODULES = frozenset({"gridcall.detectors", "array", "collections", "copyreg",
                             "_codecs", "numpy", "sklearn", "scipy", "math", "random"})
"""Packages whose classes (theirs and their submodules') a checkpoint may name."""
_SAFE_BUILTINS = frozenset({"set", "frozenset", "complex", "slice", "range", "bytearray",
                            "list", "dict", "tuple", "int", "float", "bool", "str", "bytes",
                            "object"})


class CheckpointRefused(ValueError):
    """A checkpoint file that will not be used; the message names the file and why."""


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module == "builtins" and name in _SAFE_BUILTINS) or any(
                module == m or module.startswith(m + ".") for m in ALLOWED_MODULES):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"class {module}.{name} is not allowed in a checkpoint")


def fingerprint(watch: SensorWatch) -> str:
    """What built the sensor's detector; a checkpoint of another config is not restored."""
    d = type(watch.detector)
    spec = watch.spec
    return (f"{d.__module__}.{d.__qualname__}|{','.join(_layout(watch.detector))}"
            f"|{spec.detector!r}|{spec.limits!r}")


def _layout(obj: object) -> list[str]:
    """The names of an object's instance state (slots along its classes, then its dict).

    Part of the fingerprint so that a detector whose state changed shape in a newer
    gridcall starts fresh rather than being restored into a class that expects other
    fields (which would fail later, at its first sample, not here)."""
    names = [n for c in type(obj).__mro__ for n in getattr(c, "__slots__", ())
             if n not in ("__dict__", "__weakref__")]
    return sorted({*names, *getattr(obj, "__dict__", {})})


@dataclass(frozen=True, slots=True)
class Restored:
    restored: tuple[str, ...]
    """Sensors whose detector and episode state came from the file."""
    fresh: Mapping[str, str]
    """Sensors that start fresh, and why (new sensor, changed config)."""
    written_at: int


def save(path: Path, agent: str, watches: Mapping[str, SensorWatch], now: int) -> int:
    """Write every watch's detector and episode state atomically; the file's size."""
    sensors = {sid: (fingerprint(w), w.detector, w.episodes, w.kind)
               for sid, w in watches.items()}
    body = pickle.dumps({"agent": agent, "written_at": now, "sensors": sensors},
                        protocol=pickle.HIGHEST_PROTOCOL)
    data = MAGIC + _HEADER.pack(FORMAT, hashlib.sha256(body).digest()) + body
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):  # not every filesystem syncs a folder
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return len(data)


def load(path: Path, agent: str, watches: Mapping[str, SensorWatch]) -> Restored | None:
    """Restore what the file holds into ``watches``; None if there is no file.

    Raises :class:`CheckpointRefused` (naming the file) for a file it will not use; then
    no watch was changed.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CheckpointRefused(f"checkpoint {path}: cannot read it ({exc})") from exc

    def refuse(why: str) -> CheckpointRefused:
        return CheckpointRefused(f"checkpoint {path}: {why}")

    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + _HEADER.size:
        raise refuse("not a gridcall detector checkpoint (no header)")
    version, digest = _HEADER.unpack_from(data, len(MAGIC))
    if version != FORMAT:
        raise refuse(f"format version {version}, this agent reads version {FORMAT}")
    body = data[len(MAGIC) + _HEADER.size:]
    if hashlib.sha256(body).digest() != digest:
        raise refuse("damaged (checksum does not match; a torn or corrupted write)")
    try:
        state = _Unpickler(io.BytesIO(body)).load()
    except Exception as exc:  # whatever a bad body raises, the file is refused, never used
        raise refuse(f"cannot be restored ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or not isinstance(state.get("sensors"), dict):
        raise refuse("unexpected content (no sensors table)")
    if state.get("agent") != agent:
        raise refuse(f"belongs to agent {state.get('agent')!r}, not {agent!r}")
    plan: dict[str, tuple[Any, Any, Any]] = {}
    fresh: dict[str, str] = {}
    for sid, watch in watches.items():
        entry = state["sensors"].get(sid)
        if entry is None:
            fresh[sid] = "not in the checkpoint"
            continue
        if not (isinstance(entry, tuple) and len(entry) == 4):
            raise refuse(f"unexpected entry for sensor {sid!r}")
        fp, detector, episodes, kind = entry
        if fp != fingerprint(watch):
            fresh[sid] = "its detector settings or limits changed since the checkpoint"
        elif type(detector) is not type(watch.detector) or type(episodes) is not type(
                watch.episodes):
            raise refuse(f"sensor {sid!r}: state of another type")
        else:
            plan[sid] = (detector, episodes, kind)
    for sid, (detector, episodes, kind) in plan.items():
        w = watches[sid]
        w.detector, w.episodes, w.kind = detector, episodes, kind
    return Restored(tuple(plan), fresh, int(state.get("written_at", 0)))
