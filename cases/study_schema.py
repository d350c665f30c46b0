"""Checking the tables of a TOML file against a schema, before anything is built from them.

A typo, a value of the wrong type or a missing section is then one line in the words of the file
("[training] epochs must be an integer, got 'ten'", "unknown key [split] train_extra; [split]
takes ..."), not Python's text from a constructor. Ranges and meanings are checked later, where
the values are used (the dataclasses' __post_init__). The study file's schema is
`cases.study.SCHEMA`.

A schema is a dict from key to what the key holds:
- a type annotation (`int`, `float | None`, `tuple[str, ...]`): a value of that type; an integer
  is a number too, but true and false are neither;
- a dict: a table with these keys;
- `Named(schema)`: a table of named tables, each with `schema` (e.g. [baselines.NAME]);
- `Chosen(function)`: a table whose keys depend on its own content, `function(table) -> schema`
  (e.g. the keys of [cloud] depend on its shape).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Callable

from cases.errors import CaseError


@dataclasses.dataclass(frozen=True)
class Named:
    schema: dict


@dataclasses.dataclass(frozen=True)
class Chosen:
    schema: Callable[[dict], dict]


def keys_of(cls, leave_out=()) -> dict:
    """The schema of a table read into dataclass `cls`: its fields and their annotated types."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init and f.name not in leave_out}


def check_table(table, schema: dict, path, section: str = "", required: dict | None = None) -> None:
    """CaseError (one line, starting with `path`) at the first key of `table` that `schema` does
    not know or whose value has another type; `required` maps a section ("" for the top level)
    to the keys it must have."""
    if not isinstance(table, dict):
        raise CaseError(f"{path}: [{section}] must be a table, got {table!r}")
    missing = sorted(set((required or {}).get(section, ())) - set(table))
    if missing and section:
        raise CaseError(f"{path}: [{section}] lacks {', '.join(missing)}")
    if missing:
        raise CaseError(f"{path}: no section {', '.join(f'[{m}]' for m in missing)}; a study file needs {', '.join(f'[{m}]' for m in sorted(required['']))}")
    for key, value in table.items():
        name = f"{section}.{key}" if section else key
        if key not in schema:
            if not section:
                raise CaseError(f"{path}: unknown section [{key}]; a study file has {_listed(schema)}")
            raise CaseError(f"{path}: unknown key {key!r} in [{section}]; it takes {_listed(schema)}")
        kind = schema[key]
        if isinstance(kind, Chosen):
            if not isinstance(value, dict):
                raise CaseError(f"{path}: [{name}] must be a table, got {value!r}")
            kind = kind.schema(value)
        if isinstance(kind, Named):
            if not isinstance(value, dict):
                raise CaseError(f"{path}: [{name}] must be a table of named tables, got {value!r}")
            for label, inner in value.items():
                check_table(inner, kind.schema, path, f"{name}.{label}", required)
        elif isinstance(kind, dict):
            check_table(value, kind, path, name, required)
        elif not _matches(value, kind):
            label = f"[{section}] {key}" if section else key
            raise CaseError(f"{path}: {label} must be {_describe(kind)}, got {_toml(value)}")


def _toml(value) -> str:
    """A value as the file writes it: true and false in lower case, strings quoted."""
    if isinstance(value, bool):
        return str(value).lower()
    return "a table" if isinstance(value, dict) else repr(value)


def _listed(schema: dict) -> str:
    return ", ".join(sorted(schema))


def _matches(value, kind) -> bool:
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        return any(_matches(value, k) for k in typing.get_args(kind))
    if typing.get_origin(kind) in (tuple, list):
        return isinstance(value, list) and all(_matches(v, typing.get_args(kind)[0]) for v in value)
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


_WORDS = {int: ("an integer", "integers"), float: ("a number", "numbers"), str: ("a string", "strings"), bool: ("true or false", "true or false"), dict: ("a table", "tables")}


def _describe(kind, plural: bool = False) -> str:
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        return " or ".join(_describe(k, plural) for k in typing.get_args(kind) if k is not type(None))
    if typing.get_origin(kind) in (tuple, list):
        return f"a list of {_describe(typing.get_args(kind)[0], plural=True)}"
    return _WORDS[kind][plural]
