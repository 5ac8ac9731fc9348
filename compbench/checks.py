"""Strict checks for declarative YAML files (tasks, sweeps): unknown keys, missing keys, types, choices.

Every error names where it happened (the file and the key path), so a user can fix it at once.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from compbench.errors import InvalidInputError

# key -> (type or tuple of types, required)
KeySpec = dict[str, tuple[Any, bool]]


def type_names(types: Any) -> str:
    types = types if isinstance(types, tuple) else (types,)
    names = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "dict": "mapping",
             "list": "list", "NoneType": "null"}
    return " or ".join(names.get(t.__name__, t.__name__) for t in types)


def is_instance(value: Any, types: Any) -> bool:
    """isinstance, except that a bool is not an int and an int is a float (as YAML users expect)."""
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)


def a_or_an(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


def check_type(where: str, value: Any, types: Any) -> None:
    if not is_instance(value, types):
        raise InvalidInputError(f"{where} must be {a_or_an(type_names(types))}, got {value!r}")


def check_keys(where: str, data: dict, keys: KeySpec) -> None:
    """Refuse unknown keys, missing required keys and values of the wrong type."""
    unknown = sorted(set(data) - set(keys), key=str)
    if unknown:
        raise InvalidInputError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                                f"allowed: {', '.join(keys)}")
    for key, (types, required) in keys.items():
        if key not in data:
            if required:
                raise InvalidInputError(f"{where}: missing key {key!r}")
            continue
        if not is_instance(data[key], types):
            raise InvalidInputError(f"{where}: {key!r} must be {a_or_an(type_names(types))}, got {data[key]!r}")


def check_document(where: str, data: Any, kind: str, keys: KeySpec, version_key: str, version: int) -> dict:
    """A parsed file must be a mapping with the allowed keys and the version this compbench reads."""
    if not isinstance(data, dict):
        raise InvalidInputError(f"{where}: {a_or_an(kind)} holds a mapping, got {type(data).__name__}")
    check_keys(where, data, keys)
    if data[version_key] != version:
        raise InvalidInputError(f"{where}: {version_key} {data[version_key]} is not supported "
                                f"(this compbench reads {kind}s of {version_key} {version})")
    return data


def check_choice(where: str, key: str, value: Any, choices: tuple[Any, ...]) -> None:
    if value not in choices:
        raise InvalidInputError(f"{where}: {key!r} must be one of {', '.join(map(str, choices))}, got {value!r}")


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """``yaml.safe_load``'s loader (libyaml's parser where PyYAML has it: a fifth of the time), reading ``1e9`` as
    the number YAML 1.2 and JSON say it is (YAML 1.1 needs ``1.0e+9`` and reads ``1e9`` as text)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def parse_yaml(text: str) -> Any:
    """``text`` parsed as :func:`yaml.safe_load` does (plain data only), with ``1e9`` a number."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader)


def syntax_error(path: str | Path, language: str, err: Exception) -> InvalidInputError:
    """One line naming the file, the line and column, and what is wrong, for a YAML or JSON syntax error."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    if mark is not None:
        problem = getattr(err, "problem", None) or getattr(err, "context", None) or "invalid"
        where = f"line {mark.line + 1}, column {mark.column + 1}: "
    elif isinstance(err, json.JSONDecodeError):
        problem, where = err.msg, f"line {err.lineno}, column {err.colno}: "
    else:
        problem, where = " ".join(str(err).split()), ""
    return InvalidInputError(f"{path}: not valid {language}: {where}{problem}")


def read_text_file(path: Path, kind: str) -> str:
    """The UTF-8 text of the ``kind`` file at ``path``; an unreadable or undecodable file is one clear error."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(f"cannot read {kind} {path}: it is not UTF-8 text") from None
    except OSError as err:
        raise InvalidInputError(f"cannot read {kind} {path}: {err.strerror or err}") from None


def load_yaml_file(path: str | Path, kind: str) -> Any:
    """The parsed content of a YAML file (``yaml.safe_load``, with ``1e9`` a number); an unreadable, empty or
    invalid file is one clear error naming it."""
    path = Path(path)
    text = read_text_file(path, kind)
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as err:
        raise syntax_error(path, "YAML", err) from None
    if data is None:
        raise InvalidInputError(f"{path}: the {kind} is empty")
    return data
