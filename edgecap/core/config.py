"""Frozen-dataclass configs and strict `key=value` overrides.

Every stage's options are plain frozen dataclasses. Overrides such as
`model.window=27` or `train.steps=500` are applied with `apply_overrides`; a key
that names no field fails loudly and lists the valid ones.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass
from typing import Any

from edgecap import EdgecapError


def _coerce(value: str, hint: Any, key: str) -> Any:
    if typing.get_origin(hint) is tuple:
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value.split(",")
        return tuple(parsed if isinstance(parsed, list) else [parsed])
    if hint is bool:
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise EdgecapError(f"override {key}={value!r}: expected a boolean (true/false)")
    if hint in (int, float):
        try:
            return hint(value)
        except ValueError:
            raise EdgecapError(f"override {key}={value!r}: expected {hint.__name__}") from None
    return value


def apply_overrides(cfg: Any, overrides: typing.Iterable[str]) -> Any:
    """Return a copy of the nested frozen dataclass `cfg` with `a.b=value` overrides applied."""
    for item in overrides:
        if "=" not in item:
            raise EdgecapError(f"override {item!r}: expected KEY=VALUE, e.g. train.steps=500")
        key, value = item.split("=", 1)
        cfg = _replace_path(cfg, key.strip().split("."), value.strip(), key)
    return cfg


def _replace_path(obj: Any, path: list[str], value: str, full_key: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(obj)}
    head = path[0]
    if head not in fields:
        raise EdgecapError(
            f"unknown config key {full_key!r}: {type(obj).__name__} has {sorted(fields)}"
        )
    current = getattr(obj, head)
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise EdgecapError(f"unknown config key {full_key!r}: {head!r} is a value, not a section")
        return dataclasses.replace(obj, **{head: _replace_path(current, path[1:], value, full_key)})
    if dataclasses.is_dataclass(current):
        raise EdgecapError(f"config key {full_key!r} is a section; set one of its fields")
    new = _coerce(value, typing.get_type_hints(type(obj))[head], full_key)
    return dataclasses.replace(obj, **{head: new})


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls: type, data: dict, where: str = "config") -> Any:
    """Build the dataclass `cls` from a (nested) dict as read from JSON: unknown keys and values
    of the wrong type are refused, naming the field. A key the dict lacks takes the class's
    `BEFORE_FIELD_EXISTED` value where it has one (what a config saved before the field existed
    meant, e.g. no mirroring for a lifter trained without it), else the field's default."""
    if not isinstance(data, dict):
        raise EdgecapError(f"{where}: expected an object of {cls.__name__} fields, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise EdgecapError(f"{where}: unknown keys {sorted(unknown)} for {cls.__name__}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: value for name, value in getattr(cls, "BEFORE_FIELD_EXISTED", {}).items() if name not in data}
    for name, value in data.items():
        kwargs[name] = _typed(value, hints[name], f"{where}.{name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise EdgecapError(f"{where}: {e}") from None


def _typed(value: Any, hint: Any, where: str) -> Any:
    """`value` as the field type `hint` wants, or a clear error (JSON has no tuples: lists become tuples)."""
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)):
            raise EdgecapError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(hint)
        item = args[0] if args else Any
        return tuple(_typed(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    ok = {int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          bool: lambda v: isinstance(v, bool), str: lambda v: isinstance(v, str)}.get(hint)
    if ok is not None and not ok(value):
        raise EdgecapError(f"{where}: expected {hint.__name__}, got {value!r}")
    return float(value) if hint is float else value


@dataclass(frozen=True)
class TrainConfig:
    """Training options shared by every family (the `train` section of every run config)."""

    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    eval_every: int = 500
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    amp: bool = True  # mixed precision, used on CUDA only
