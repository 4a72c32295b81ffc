"""gridcall's configuration: schema (:mod:`gridcall.config.models`), loading with precise
errors (:mod:`gridcall.config.loader`) and the resolved, cross-checked set
(:mod:`gridcall.config.resolve`).

A leaf package: no I/O beyond reading the config folder, no imports of the runtimes.
"""

from pathlib import Path

from gridcall.config.loader import ConfigError, Problem
from gridcall.config.resolve import AgentSpec, ConfigSet, SensorSpec, Unit, load_config
from gridcall.wire.ladder import UnitLevel

EXAMPLES = Path(__file__).resolve().parent / "examples"
SAMPLE_DISTRICT = EXAMPLES / "huangpu"

__all__ = [
    "EXAMPLES",
    "SAMPLE_DISTRICT",
    "AgentSpec",
    "ConfigError",
    "ConfigSet",
    "Problem",
    "SensorSpec",
    "Unit",
    "UnitLevel",
    "load_config",
]
