"""Load a config set from a folder, and say exactly what is wrong with it.

Every problem becomes a :class:`Problem` with the file, the key path (``sensors[3].grid``),
the line where YAML put it, and the reason. Loading collects all problems of all files
before it gives up, so a technician fixes a config in one pass.
"""

from __future__ import annotations

import copy
import difflib
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from config.models import (
    AgentsFile,
    HubFile,
    MattersFile,
    SensorsFile,
    Topology,
)

FILES: dict[str, type[BaseModel]] = {
    "topology.yaml": Topology,
    "sensors.yaml": SensorsFile,
    "agents.yaml": AgentsFile,
    "matters.yaml": MattersFile,
    "hub.yaml": HubFile,
}
OPTIONAL_FILES = frozenset({"hub.yaml"})

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


def _lines_of(node: yaml.Node, loc: Loc, out: dict[Loc, int]) -> None:
    out.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*loc, str(key.value))
            out[child] = key.start_mark.line + 1
            _lines_of(value, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _lines_of(item, (*loc, index), out)


@dataclass(frozen=True, slots=True)
class YamlDoc:
    file: str
    data: Any
    lines: Mapping[Loc, int]

    def line(self, loc: Loc) -> int | None:
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), None)


def read_yaml(path: Path) -> YamlDoc:
    """Parse one YAML file, keeping the line of every key; YAMLError on bad syntax."""
    text = path.read_text(encoding="utf-8")
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    lines: dict[Loc, int] = {}
    if node is not None:
        _lines_of(node, (), lines)
    return YamlDoc(path.name, yaml.safe_load(text), lines)


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
    # pydantic adds union-member and validator names ("function-after[...]", "tuple[...]")
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in {"str"})))


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


def _without(data: Any, loc: Loc) -> None:
    for part in loc[:-1]:
        data = data[part]
    del data[loc[-1]]


def salvage(doc: YamlDoc, model: type[M]) -> M | None:
    """The file's model with its unknown keys dropped, if that is all that was wrong.

    Used only so cross-file references are still checked (and reported in the same
    pass) when a file also has a typo'd key; the typo itself stays a problem.
    """
    data = copy.deepcopy(doc.data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if any(e["type"] != "extra_forbidden" for e in errors):
            return None
        for e in errors:
            _without(data, _clean_loc(e["loc"]))
    try:
        return model.model_validate(data)
    except ValidationError:
        return None


@dataclass
class RawSet:
    """Each file's validated model, or its problems; the input to cross-checking."""

    directory: Path
    docs: dict[str, YamlDoc] = field(default_factory=dict)
    models: dict[str, BaseModel] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def read_set(directory: Path) -> RawSet:
    raw = RawSet(directory)
    if not directory.is_dir():
        raw.problems.append(Problem(str(directory), "", "is not a folder"))
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
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            reason = f"not valid YAML: {getattr(exc, 'problem', None) or exc}"
            raw.problems.append(Problem(name, "", reason, line))
            continue
        raw.docs[name] = doc
        result = validate_doc(doc, model)
        if isinstance(result, list):
            raw.problems += result
            salvaged = salvage(doc, model)
            if salvaged is not None:
                raw.models[name] = salvaged
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
