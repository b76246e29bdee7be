"""Typed YAML configs: dataclasses in, dataclasses out, every key and type checked on the way.

The schemas live with their owners (the run schema in config.py, the compare schema in
compare/config.py, the retrieval settings in retrieval/settings.py); this module is only the
machinery they share. Loading names the offender in one line (`configs/x.yaml: unknown key
'train.lr_rate'`), so a typo never silently falls back to a default, and `--set section.key=value`
overrides go through the same checks. A key written twice in one mapping and YAML aliases are
refused too (ConfigLoader), where PyYAML would keep the last key silently or expand aliases without
bound.

Annotations understood: bool, int, float (an int is accepted and converted), str, `X | None`,
unions, `list[X]`, `dict[K, V]`, nested dataclasses and `typing.Literal[...]` for closed choices.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError
from .files import atomic_write_text


class InvalidValue(UserError):
    """A value of the right type but out of range, raised by a dataclass's `validate()`.

    `key` is relative to the dataclass ("batch_size"); the loader prefixes the file and the section,
    so the user reads `configs/x.yaml: key 'train.batch_size' must be at least 1, got 0`.
    """

    def __init__(self, key: str, value: Any, rule: str):
        self.key, self.value, self.rule = key, value, rule
        super().__init__(f"key {key!r} {rule}, got {value!r}")

    def located(self, source: str, prefix: str) -> UserError:
        key = f"{prefix}.{self.key}" if prefix else self.key
        return UserError(f"{source}: key {key!r} {self.rule}, got {self.value!r}")


def require(ok: bool, key: str, value: Any, rule: str) -> None:
    """The one way `validate()` methods refuse a value: `require(x >= 1, "batch_size", x, "must be at least 1")`."""
    if not ok:
        raise InvalidValue(key, value, rule)


def at_least(obj: Any, minimum: float, *keys: str, optional: bool = False) -> None:
    """Each of `keys` of `obj` is a finite number >= minimum (or None when `optional`)."""
    for key in keys:
        value = getattr(obj, key)
        if value is None and optional:
            continue
        finite = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
        require(finite and value >= minimum, key, value, f"must be at least {minimum:g}")


SEED_LIMIT = 2**32  # numpy's and torch's seeds are unsigned 32-bit numbers (torch would take 64, numpy not)
SEED_RULE = f"must be a seed from 0 to {SEED_LIMIT - 1}"


def is_seed(value: Any) -> bool:
    """`value` is an int that numpy and torch both accept as a seed."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < SEED_LIMIT


def seeds(obj: Any, *keys: str) -> None:
    """Each of `keys` of `obj` is a seed (None allowed: unseeded) that numpy and torch accept."""
    for key in keys:
        value = getattr(obj, key)
        require(value is None or is_seed(value), key, value, SEED_RULE)


def check_seed_option(value: Any, option: str = "--seed") -> None:
    """A command-line seed (None: unseeded) that numpy and torch accept, else one line naming `option`."""
    if value is not None and not is_seed(value):
        raise UserError(f"{option} {SEED_RULE}, got {value!r}")


def validate(obj: Any, source: str = "config", prefix: str = "") -> Any:
    """Run `validate()` of `obj` and of every dataclass inside it (for configs built in code, not loaded)."""
    for f in dataclasses.fields(obj):
        child = getattr(obj, f.name)
        key = f"{prefix}.{f.name}" if prefix else f.name
        items = (
            enumerate(child)
            if isinstance(child, list)
            else child.items()
            if isinstance(child, dict)
            else [(None, child)]
        )
        for index, item in items:
            if dataclasses.is_dataclass(item) and not isinstance(item, type):
                validate(
                    item,
                    source,
                    key if index is None else f"{key}[{index}]" if isinstance(child, list) else f"{key}.{index}",
                )
    _own_checks(obj, source, prefix)
    return obj


def _own_checks(obj: Any, source: str, prefix: str) -> None:
    check = getattr(obj, "validate", None)
    if check is None:
        return
    try:
        check()
    except InvalidValue as err:
        raise err.located(source, prefix) from None


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _literal(value: Any, choices: tuple, source: str, key: str) -> Any:
    """A closed choice: the value must equal one of `choices` (bool is never taken for 0/1)."""
    for choice in choices:
        if value == choice and type(value) is type(choice):
            return choice
    wanted = ", ".join(repr(c) for c in choices)
    raise UserError(f"{source}: key {key!r} expects one of {wanted}, got {value!r}")


def _coerce(value: Any, tp: Any, source: str, key: str) -> Any:
    """Check `value` against the annotation `tp`, converting only the harmless cases (int -> float)."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return _literal(value, typing.get_args(tp), source, key)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is not type(None):
                try:
                    return _coerce(value, option, source, key)
                except UserError:
                    pass
        if len(options) == 2 and type(None) in options:  # `X | None`: X's own message says more
            (inner,) = (o for o in options if o is not type(None))
            if typing.get_origin(inner) is typing.Literal:
                _literal(value, typing.get_args(inner), source, key)
        wanted = " or ".join(_type_name(o) for o in options if o is not type(None))
        raise UserError(f"{source}: key {key!r} expects {wanted}, got {value!r}")
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise UserError(f"{source}: key {key!r} expects a list, got {value!r}")
        return [_coerce(v, inner, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"{source}: key {key!r} expects a mapping, got {value!r}")
        key_tp, value_tp = typing.get_args(tp)
        return {_coerce(k, key_tp, source, key): _coerce(v, value_tp, source, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _from_dict(tp, value, source, key)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, tp) or (tp in (int, float) and isinstance(value, bool)):
        raise UserError(f"{source}: key {key!r} expects {_type_name(tp)}, got {value!r}")
    return value


def _from_dict(cls: type, data: Any, source: str, prefix: str = "") -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        where = f"'{prefix}'" if prefix else "the top level"
        raise UserError(f"{source}: {where} must be a mapping of keys, got {type(data).__name__} {_short(data)}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise UserError(f"{source}: unknown key {path!r} (known: {', '.join(sorted(names))})")
        kwargs[key] = _coerce(value, hints[key], source, path)
    obj = cls(**kwargs)
    _own_checks(obj, source, prefix)  # values in range, before anything reads data (nested ones already checked)
    return obj


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def from_dict(cls: type, data: Any, source: str = "config") -> Any:
    """Build dataclass `cls` from plain data; errors name `source` and the key path."""
    return _from_dict(cls, data, source)


def to_dict(obj: Any) -> dict:
    """Plain data (for YAML or JSON) of a dataclass config."""
    return dataclasses.asdict(obj)


class ConfigYamlError(yaml.YAMLError):
    """A YAML construct config files do not allow (a key written twice, an alias); the message is whole."""


class ConfigLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` for config files: a key written twice in one mapping is refused (PyYAML keeps
    the last one silently), and so are aliases (`*name`): configs never need them, and a few hundred
    bytes of nested aliases expand into more nodes than memory holds (a "billion laughs" file)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent) and self.peek_event().anchor in self.anchors:  # undefined: PyYAML's error
            event = self.peek_event()
            raise ConfigYamlError(
                f"line {event.start_mark.line + 1}: aliases (*{event.anchor}) are not allowed in config files"
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, typing.Hashable):
                continue  # SafeLoader's own construct_mapping refuses it
            if key in seen:
                raise ConfigYamlError(
                    f"line {key_node.start_mark.line + 1}: key {key!r} is written twice in one mapping"
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str) -> Any:
    """`text` read as config YAML (ConfigLoader): safe types only, no repeated keys, no aliases."""
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 - ConfigLoader is a SafeLoader


def load_yaml(path: str | os.PathLike) -> Any:
    """The parsed YAML of `path`; a missing file, a syntax error, a key written twice or an alias is one
    line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        return parse_yaml(path.read_text(encoding="utf-8"))
    except ConfigYamlError as err:
        raise UserError(f"{path}: {err}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None


def load_mapping(path: str | os.PathLike, what: str) -> dict:
    """`load_yaml` for a config whose top level must be a mapping (empty file: {}); `what` says of what."""
    raw = load_yaml(path)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of {what}, got {type(raw).__name__} {_short(raw)}")
    return raw


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.max_steps=20' -> (['train', 'max_steps'], 20); the value is read as YAML."""
    if "=" not in text:
        raise UserError(f"--set {text!r}: expected section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = parse_yaml(raw)
    except ConfigYamlError as err:
        raise UserError(f"--set {text!r}: {err}") from None
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def set_key(data: dict, keys: list[str], value) -> None:
    """data[k1][k2]...[kn] = value, in place; each mapping on the way is copied (the caller's nested dicts stay
    unchanged) and a missing or non-mapping one becomes a new dict."""
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        node[key] = child = dict(child) if isinstance(child, dict) else {}
        node = child
    node[keys[-1]] = value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply --set overrides to the raw mapping, before type checking."""
    data = dict(data or {})
    for text in overrides or []:
        set_key(data, *parse_override(text))
    return data


def load_config(cls: type, path: str | os.PathLike, overrides: list[str] | None = None, what: str = "keys") -> Any:
    """Read a YAML file (with optional --set overrides) into a checked instance of dataclass `cls`."""
    return from_dict(cls, apply_overrides(load_mapping(path, what), overrides or []), str(path))


def save_yaml(obj: Any, path: str | os.PathLike) -> None:
    """Write a dataclass config as YAML atomically (temporary file, then rename)."""
    atomic_write_text(path, yaml.safe_dump(to_dict(obj), sort_keys=False))


__all__ = [
    "InvalidValue",
    "SEED_LIMIT",
    "at_least",
    "check_seed_option",
    "is_seed",
    "require",
    "seeds",
    "validate",
    "apply_overrides",
    "from_dict",
    "load_config",
    "load_mapping",
    "load_yaml",
    "parse_override",
    "parse_yaml",
    "save_yaml",
    "to_dict",
]
