"""Settings dataclasses: ``key=value`` overrides typed by the dataclass, and checks when built.

Every settings dataclass of stvg (:class:`stvg.train.config.TrainConfig`,
:class:`stvg.extract.config.ExtractConfig`, :class:`stvg.models.CSDVLConfig`,
:class:`stvg.pipelines.chain.PipelineConfig`) goes through this module:

* :func:`apply_overrides` turns ``--set key=value`` strings into values of the field's annotated
  type (``int``, ``float``, ``bool``, ``str``, ``X | None``, ``Literal[...]`` choices,
  ``list[int]``); keys under a nested prefix (``model.d_model=64``) are typed by the nested
  dataclass. An unknown key, a value that does not convert or a choice not offered is refused by
  name, e.g. ``--set lr_schedule=cosin: expected one of constant, cosine``.
* :func:`check_fields` checks a built instance against its annotations (types and choices);
  each dataclass calls it, and its own range checks (:func:`require`), from ``__post_init__`` so
  that no config exists that was not validated.
* :func:`build` constructs the dataclass and, when a check fails on a key that came from an
  override, names the override as the user typed it.

No default is changed here: values are only converted and checked.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeVar, Union

from stvg.errors import InputError

T = TypeVar("T")

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
_NONE = ("none", "null")


class SettingError(InputError):
    """A setting whose value cannot be used: ``key`` (dotted for nested ones) and the problem."""

    def __init__(self, key: str, value: Any, problem: str, *, where: str = "") -> None:
        self.key, self.value, self.problem = key, value, problem
        prefix = f"{where} " if where else ""
        super().__init__(f"{prefix}{key}={value!r}: {problem}")
        self.field = key  # for callers; the message already names it

    def __str__(self) -> str:
        return f"Bad input: {self.message}."


def require(ok: bool, key: str, value: Any, problem: str, where: str = "") -> None:
    """Raise :class:`SettingError` for ``key`` unless ``ok`` (``problem`` says what is expected)."""
    if not ok:
        raise SettingError(key, value, problem, where=where)


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """``{field name: resolved type annotation}`` of the dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(tp) in (Union, types.UnionType):
        return typing.get_args(tp)
    return None


def choices_of(tp: Any) -> tuple[Any, ...] | None:
    """The values a ``Literal[...]`` (or ``Literal[...] | None``) annotation allows, else None."""
    args = _union_args(tp)
    if args is not None:
        inner = [a for a in args if a is not type(None)]
        return choices_of(inner[0]) if len(inner) == 1 else None
    if typing.get_origin(tp) is Literal:
        return typing.get_args(tp)
    return None


def describe(tp: Any) -> str:
    """A short name for what a value of type ``tp`` must be (used in messages)."""
    args = _union_args(tp)
    if args is not None:
        return " or ".join("none" if a is type(None) else describe(a) for a in args)
    choices = choices_of(tp)
    if choices is not None:
        return "one of " + ", ".join(str(c) for c in choices)
    origin = typing.get_origin(tp)
    if origin is list:
        plural = {int: "integers", float: "numbers", str: "strings"}
        (item,) = typing.get_args(tp)
        return f"a list of {plural.get(item, describe(item))} (e.g. 1,2,3)"
    if origin is dict or tp is dict:
        return "a mapping"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def parse_value(text: str, tp: Any) -> Any:
    """``text`` converted to the annotated type ``tp``; ``ValueError`` saying what was expected."""
    args = _union_args(tp)
    if args is not None:
        if type(None) in args and text.strip().lower() in _NONE:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return parse_value(text, arg)
            except ValueError:
                continue
        raise ValueError(f"expected {describe(tp)}")
    choices = choices_of(tp)
    if choices is not None:
        for choice in choices:
            if text == str(choice):
                return choice
        raise ValueError(f"expected one of {', '.join(str(c) for c in choices)}")
    origin = typing.get_origin(tp)
    if origin is list:
        (item,) = typing.get_args(tp)
        body = text.strip()
        if body.startswith("["):
            try:
                raw = json.loads(body)
            except json.JSONDecodeError:
                raise ValueError(f"expected {describe(tp)} (JSON or comma-separated)") from None
            parts = [json.dumps(x) if not isinstance(x, str) else x for x in raw]
        else:
            parts = [p for p in body.split(",") if p.strip()]
        try:
            return [parse_value(p.strip(), item) for p in parts]
        except ValueError:
            raise ValueError(f"expected {describe(tp)}") from None
    if tp is bool:
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError("expected true or false")
    if tp is int:
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError("expected an integer") from None
    if tp is float:
        try:
            return float(text.strip())
        except ValueError:
            raise ValueError("expected a number") from None
    if tp is str:
        return text
    raise ValueError(f"cannot be set from the command line (expects {describe(tp)})")


def _matches(value: Any, tp: Any) -> bool:
    args = _union_args(tp)
    if args is not None:
        return any(_matches(value, a) for a in args)
    if tp is type(None):
        return value is None
    if tp is Any:
        return True
    choices = choices_of(tp)
    if choices is not None:
        return value in choices and type(value) is type(choices[0])
    origin = typing.get_origin(tp)
    if origin is list:
        (item,) = typing.get_args(tp)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def check_fields(obj: Any, where: str = "") -> None:
    """Raise :class:`SettingError` for the first field of the dataclass ``obj`` whose value does
    not match its annotation (wrong type, or a choice that is not offered)."""
    for name, tp in field_types(type(obj)).items():
        value = getattr(obj, name)
        if not _matches(value, tp):
            raise SettingError(name, value, f"expected {describe(tp)}", where=where)


def split_override(item: str, option: str = "--set", prefix: str = "") -> tuple[str, str]:
    """``"key=value"`` -> ``("key", "value")`` (the value may itself contain ``=``)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise InputError(f"{option} {prefix}{item}: expected key=value")
    return key.strip(), text


def apply_overrides(
    cls: type,
    values: Mapping[str, Any],
    items: Iterable[str],
    *,
    option: str = "--set",
    prefix: str = "",
    nested: Mapping[str, type] | None = None,
) -> dict[str, Any]:
    """``values`` with each ``key=value`` of ``items`` converted to ``cls``'s field type.

    ``nested`` maps a field holding a dict of overrides (e.g. ``"model"``) to the dataclass that
    types its keys (``model.d_model=64`` -> ``values["model"]["d_model"] = 64``). ``prefix`` is
    what the user typed before each key (``"extract."`` for ``--set extract.td=8``), for messages.
    Raises :class:`InputError` naming the override for an unknown key or a value that does not fit.
    """
    nested = dict(nested or {})
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in values.items()}
    fields = field_types(cls)
    for item in items:
        key, text = split_override(item, option, prefix)
        said = f"{option} {prefix}{key}={text}"
        head, dot, rest = key.partition(".")
        if dot and head in nested:
            inner = field_types(nested[head])
            if rest not in inner:
                raise InputError(
                    f"{said}: unknown setting {rest!r} of {head}; known: {', '.join(sorted(inner))}"
                )
            target, name, tp = out.setdefault(head, {}), rest, inner[rest]
        elif key in fields and key not in nested:
            target, name, tp = out, key, fields[key]
        else:
            known = ", ".join(sorted(k for k in fields if k not in nested))
            extra = "".join(f" and {n}.*" for n in nested)
            if key in nested:
                raise InputError(f"{said}: set its keys one by one ({key}.KEY=VALUE)")
            raise InputError(f"{said}: unknown setting {key!r}; known: {known}{extra}")
        try:
            target[name] = parse_value(text, tp)
        except ValueError as error:
            raise InputError(f"{said}: {error}") from None
    return out


def build(
    cls: type[T],
    values: Mapping[str, Any],
    items: Iterable[str] = (),
    *,
    option: str = "--set",
    prefix: str = "",
) -> T:
    """``cls(**values)``; a :class:`SettingError` on a key that one of ``items`` (the overrides
    that produced ``values``) set is reworded to name that override as typed."""
    typed = {}
    for item in items:
        key, text = split_override(item, option, prefix)
        typed[key] = text
    try:
        return cls(**values)
    except SettingError as error:
        if error.key in typed:
            said = f"{option} {prefix}{error.key}={typed[error.key]}"
            raise InputError(f"{said}: {error.problem}") from None
        raise


C = TypeVar("C")


def config_from_mapping(cls: type[C], values: Mapping[str, Any], what: str = "model") -> C:
    """``cls(**values)`` for a config dataclass, refusing keys it does not have (by name, with
    the known ones listed), then its ``validate()`` when it has one. ``what`` names the config
    in the message ("unknown model config keys ['x']; known: [...]")."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        raise InputError(
            f"unknown {what} config keys {unknown}; known: {sorted(names)}", field=unknown[0]
        )
    config = cls(**dict(values))
    if hasattr(config, "validate"):
        config.validate()
    return config


def config_from_preset(
    cls: type[C],
    presets: Mapping[str, Mapping[str, Any]],
    name: str,
    overrides: Mapping[str, Any],
    what: str = "model",
) -> C:
    """The preset ``name`` of ``presets`` with ``overrides`` applied, through
    :func:`config_from_mapping`; an unknown preset is refused by name."""
    if name not in presets:
        raise InputError(
            f"unknown {what} preset {name!r}; choose one of {sorted(presets)}", field="preset"
        )
    return config_from_mapping(cls, {**presets[name], **overrides}, what)
