"""Load a config set from a folder, and say exactly what is wrong with it.

Every problem becomes a :class:`Problem` with the file, the key path (``sensors[3].grid``),
the line where YAML put it, and the reason. Loading collects all problems of all files
before it gives up, so a technician fixes a config in one pass.
"""

from __future__ import annotations

import copy
import difflib
import os
import stat
import types
import typing
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from gridcall.config.calendars import CalendarsFile
from gridcall.config.duty import DutyFile
from gridcall.config.external import ExternalFile
from gridcall.config.models import (
    AgentsFile,
    HubFile,
    SensorsFile,
    Topology,
)
from gridcall.config.notify import NotifyFile
from gridcall.config.rules import MatterCatalog
from gridcall.config.sources import SOURCE_TYPES

FILES: dict[str, type[BaseModel]] = {
    "topology.yaml": Topology,
    "sensors.yaml": SensorsFile,
    "agents.yaml": AgentsFile,
    "matters.yaml": MatterCatalog,
    "hub.yaml": HubFile,
    "notify.yaml": NotifyFile,
    "roster.yaml": DutyFile,
    "calendars.yaml": CalendarsFile,
    "external.yaml": ExternalFile,
}
OPTIONAL_FILES = frozenset({"hub.yaml", "notify.yaml", "roster.yaml", "calendars.yaml",
                            "external.yaml"})

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    path: str
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path or '(top level)'}: {self.reason}"


class ConfigError(Exception):
    """A config set with problems; ``problems`` lists every one of them."""

    def __init__(self, directory: Path, problems: Iterable[Problem]) -> None:
        self.directory = directory
        self.problems = tuple(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"config {directory} has {len(self.problems)} problem(s):\n{lines}")


def format_path(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# --------------------------------------------------------------------------- YAML with lines


MAX_YAML_BYTES = 64 * 2**20
"""The largest config or scenario file read: some 38,000 sensors in the style of the
sample's sensors.yaml (1.8 KB each)."""

MAX_YAML_NODES = 2_000_000
"""Values a file may hold once its aliases are expanded: ``&a`` nine times ``*a`` nine
levels deep (a "billion laughs") holds 387 million and took gigabytes to walk."""


class YamlRefused(yaml.YAMLError):
    """A file not read as YAML at all: not a regular file, too large, or expanding past
    :data:`MAX_YAML_NODES` through its aliases."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _read_text(path: Path) -> str:
    """The file's text, refusing a FIFO, a device (a link to /dev/zero) or a file over
    :data:`MAX_YAML_BYTES`; opened without blocking, so a FIFO is refused, not waited on."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with open(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise YamlRefused(f"{path} is not a regular file (a FIFO, a device or a socket)")
        data = f.read(MAX_YAML_BYTES + 1)
    if len(data) > MAX_YAML_BYTES:
        raise YamlRefused(f"{path} is larger than a config file may be "
                          f"({MAX_YAML_BYTES // 2**20} MiB)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlRefused(f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None


def _expanded(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many values ``node`` holds with every alias expanded; each node is counted
    once (an alias is the same node object again), so a billion laughs costs its size."""
    key = id(node)
    if key not in memo:
        n = 1
        if isinstance(node, yaml.MappingNode):
            n += sum(_expanded(k, memo) + _expanded(v, memo) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            n += sum(_expanded(item, memo) for item in node.value)
        memo[key] = n
    return memo[key]


def _lines_of(node: yaml.Node, loc: Loc, out: dict[Loc, int],
              duplicates: list[tuple[Loc, int, int]]) -> None:
    out.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*loc, str(key.value))
            line = key.start_mark.line + 1
            if child in out:
                # PyYAML keeps the last of two equal keys without a word; a config where
                # `base_tier: A` is silently overridden three lines down is a trap.
                duplicates.append((child, out[child], line))
            out[child] = line
            _lines_of(value, child, out, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _lines_of(item, (*loc, index), out, duplicates)


@dataclass(frozen=True, slots=True)
class YamlDoc:
    file: str
    data: Any
    lines: Mapping[Loc, int]
    duplicate_keys: tuple[tuple[Loc, int, int], ...] = ()
    """(key path, first line, repeated line) for each key given twice in one mapping."""

    def line(self, loc: Loc) -> int | None:
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), None)


_C_SAFE: type[Any] | None = getattr(yaml, "CSafeLoader", None)
"""libyaml's parser with the same safe constructor and resolver, where PyYAML has it: the
pure-Python parser took most of an edge agent's 0.6 s config load."""


def read_yaml(path: Path, *, loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> YamlDoc:
    """Parse one YAML file, keeping the line of every key; YAMLError on bad syntax.
    ``loader``: a SafeLoader subclass with other implicit types (scenario files read
    ``10:30`` as a time of day, not YAML 1.1's sexagesimal 630). The text is parsed once:
    the node tree gives the lines, then the data is built from it."""
    text = _read_text(path)
    cls: type[Any] = _C_SAFE if loader is yaml.SafeLoader and _C_SAFE is not None else loader
    parser = cls(text)  # a SafeLoader (or its libyaml twin): no arbitrary objects
    lines: dict[Loc, int] = {}
    duplicates: list[tuple[Loc, int, int]] = []
    try:
        try:
            node = parser.get_single_node()
            data = parser.construct_document(node) if node is not None else None
        finally:
            parser.dispose()
        # only a file with an anchor (&name) can have aliases, so only it is counted
        if node is not None and "&" in text and _expanded(node, {}) > MAX_YAML_NODES:
            raise YamlRefused(f"more than {MAX_YAML_NODES:,} values once its aliases "
                              "(*name) are expanded")
        if node is not None:
            _lines_of(node, (), lines, duplicates)
    except RecursionError:  # the pure-Python parser's, past Python's recursion limit
        raise YamlRefused("nested deeper than the parser goes") from None
    return YamlDoc(path.name, data, lines, tuple(duplicates))


# --------------------------------------------------------------------------- pydantic errors


def _unwrap(tp: Any) -> list[Any]:
    """The concrete types inside Optional / Annotated / unions."""
    origin = get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for arg in get_args(tp) for t in _unwrap(arg)]
    return [tp]


def _fields_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """Field names of the model reached by following ``loc`` from ``model``."""
    current: list[Any] = [model]
    for part in loc:
        nxt: list[Any] = []
        for tp in current:
            origin = get_origin(tp)
            if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(part, str):
                if part in tp.model_fields:
                    nxt += _unwrap(tp.model_fields[part].annotation)
            elif origin in (tuple, list) and isinstance(part, int):
                nxt += _unwrap(get_args(tp)[0])
            elif origin is dict:
                nxt += _unwrap(get_args(tp)[1])
        current = nxt
    return [
        name for tp in current if isinstance(tp, type) and issubclass(tp, BaseModel)
        for name in tp.model_fields
    ]


def _clean_loc(loc: Iterable[str | int]) -> Loc:
    # pydantic adds union-member and validator names ("function-after[...]", "tuple[...]"),
    # and a discriminated union's tag after the field (``source.serial.port``)
    out: list[str | int] = []
    for p in loc:
        if isinstance(p, str) and ("[" in p or p == "str" or (
                out and out[-1] == "source" and p in SOURCE_TYPES)):
            continue
        out.append(p)
    return tuple(out)


def _problems(doc: YamlDoc, model: type[BaseModel], exc: ValidationError) -> Iterator[Problem]:
    seen: set[tuple[Loc, str]] = set()
    for err in exc.errors(include_url=False):
        loc = _clean_loc(err["loc"])
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            known = _fields_at(model, loc[:-1])
            hint = difflib.get_close_matches(key, known, n=1)
            reason = f"unknown key {key!r}" + (
                f" (did you mean {hint[0]!r}?)" if hint else f" (known keys: {', '.join(known)})"
            )
        elif err["type"] == "missing":
            reason = f"missing required key {str(loc[-1])!r}" if loc else "missing"
        else:
            reason = err["msg"].removeprefix("Value error, ")
            if err["type"] == "string_pattern_mismatch":
                reason = f"{err['input']!r} is not a valid id (letters, digits, '_', '.', '-')"
        if (loc, reason) in seen:
            continue
        seen.add((loc, reason))
        yield Problem(doc.file, format_path(loc), reason, doc.line(loc))


def validate_doc(doc: YamlDoc, model: type[M]) -> M | list[Problem]:
    if doc.data is None:
        return [Problem(doc.file, "", "the file is empty")]
    if not isinstance(doc.data, dict):
        return [Problem(doc.file, "", "the top level must be a mapping of keys", 1)]
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        return list(_problems(doc, model, exc))


@dataclass(frozen=True, slots=True)
class Salvaged(Generic[M]):
    """What :func:`salvage` kept of a file with problems, and how to point back into it."""

    model: M
    dropped: Mapping[Loc, tuple[int, ...]]
    """For each list (by its path in the file as written), the indices of dropped items."""
    ids: frozenset[str]
    """The ``id``/``code`` of every dropped item: references to them are not reported
    again as dangling (the item's own problem already is)."""

    def original(self, loc: Loc) -> Loc:
        """A path in the salvaged model as the same path in the file as written."""
        return _original(loc, self.dropped)


def _original(loc: Loc, dropped: Mapping[Loc, Collection[int]]) -> Loc:
    out: list[str | int] = []
    for part in loc:
        gone = dropped.get(tuple(out))
        if isinstance(part, int) and gone:
            index, kept = -1, -1
            while kept < part:
                index += 1
                if index not in gone:
                    kept += 1
            out.append(index)
        else:
            out.append(part)
    return tuple(out)


def _item_of(loc: Loc) -> Loc | None:
    """The innermost list item a path lies in, or None if it is in no list."""
    for i in range(len(loc) - 1, -1, -1):
        if isinstance(loc[i], int):
            return loc[: i + 1]
    return None


def salvage(doc: YamlDoc, model: type[M], *, rounds: int = 8) -> Salvaged[M] | None:
    """The file's model without the parts that are wrong, so that the rest is still
    cross-checked and reported in the same pass (the problems themselves stay problems).

    Unknown keys are dropped; any other error drops the innermost list item it lies in
    (one bad matter does not hide a dangling department in the next). An error outside
    every list (a broken top-level setting) leaves nothing to salvage: None.
    """
    data = copy.deepcopy(doc.data)
    dropped: dict[Loc, set[int]] = {}
    ids: set[str] = set()
    for _ in range(rounds):
        try:
            result = model.model_validate(data)
        except ValidationError as exc:
            keys: set[Loc] = set()
            items: set[Loc] = set()
            for e in exc.errors(include_url=False):
                loc = _clean_loc(e["loc"])
                item = _item_of(loc)
                if e["type"] == "extra_forbidden" and loc:
                    keys.add(loc)
                elif item is not None:
                    items.add(item)
                else:
                    return None
            for loc in keys:
                if not any(loc[: len(item)] == item for item in items):
                    _without(data, loc)
            for item in sorted(items, key=lambda x: (len(x), x[-1]), reverse=True):
                value = _at(data, item)
                if isinstance(value, dict):
                    ids.update(str(value[k]) for k in ("id", "code")
                               if isinstance(value.get(k), str))
                original = _original(item, dropped)
                dropped.setdefault(original[:-1], set()).add(int(original[-1]))
                _without(data, item)
            continue
        return Salvaged(result, {k: tuple(sorted(v)) for k, v in dropped.items()},
                        frozenset(ids))
    return None


def _at(data: Any, loc: Loc) -> Any:
    for part in loc:
        data = data[part]
    return data


def _without(data: Any, loc: Loc) -> None:
    del _at(data, loc[:-1])[loc[-1]]


@dataclass
class RawSet:
    """Each file's validated model, or its problems; the input to cross-checking."""

    directory: Path
    docs: dict[str, YamlDoc] = field(default_factory=dict)
    models: dict[str, BaseModel] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    salvaged: dict[str, Salvaged[BaseModel]] = field(default_factory=dict)
    """Files with problems whose remaining parts are still cross-checked."""

    @property
    def dropped_ids(self) -> frozenset[str]:
        return frozenset().union(*(s.ids for s in self.salvaged.values()))


def read_set(directory: Path) -> RawSet:
    raw = RawSet(directory)
    if not directory.is_dir():
        raw.problems.append(Problem(str(directory), "", (
            f"is a file, not a config set's folder: give its folder ({directory.parent})"
            if directory.is_file() else "is not a folder (no such folder)"
            if not directory.exists() else "is not a folder")))
        return raw
    for name, model in FILES.items():
        path = directory / name
        if not path.exists():
            if name in OPTIONAL_FILES:
                raw.models[name] = model()
            else:
                raw.problems.append(Problem(name, "", f"file missing from {directory}"))
            continue
        try:
            doc = read_yaml(path)
        except YamlRefused as exc:
            raw.problems.append(Problem(name, "", exc.problem))
            continue
        except OSError as exc:  # a folder named hub.yaml, permissions
            raw.problems.append(Problem(name, "", f"cannot read: {exc.strerror or exc}"))
            continue
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            reason = f"not valid YAML: {getattr(exc, 'problem', None) or exc}"
            raw.problems.append(Problem(name, "", reason, line))
            continue
        raw.docs[name] = doc
        for loc, first, again in doc.duplicate_keys:
            raw.problems.append(Problem(name, format_path(loc),
                                        f"duplicate key (first given on line {first})", again))
        result = validate_doc(doc, model)
        if isinstance(result, list):
            raw.problems += result
            salvaged = salvage(doc, model)
            if salvaged is not None:
                raw.models[name] = salvaged.model
                raw.salvaged[name] = salvaged
        else:
            raw.models[name] = result
    known = set(FILES)
    for path in sorted(directory.glob("*.y*ml")):
        if path.name not in known:
            hint = difflib.get_close_matches(path.name, known, n=1)
            raw.problems.append(Problem(
                path.name, "", "unexpected file in a config set"
                + (f" (did you mean {hint[0]!r}?)" if hint else f" (expected {sorted(known)})"),
            ))
    return raw
