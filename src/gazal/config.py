"""Typed configs: YAML recipes plus command-line overrides, strictly validated.

A config is a tree of dataclasses. Each field documents itself with ``cfg(default, help)``
(the way TRL documents its config fields), and may name ``aliases`` usable on the command
line (``--lr`` for ``train.learning_rate``).

Rules:
- an unknown key is an error naming the key, where it was, and the closest valid key;
- values are checked (and only safely converted) against the field's type hint;
- overrides are ``--key value`` or ``--key=value``; nested keys are dotted
  (``--lora.r 16``); a bare leaf name that is unique in the tree is accepted too;
- the resolved config is written into the run directory (see :mod:`gazal.rundir`).

Sections open to a library dataclass (:class:`OpenTo`): a section that feeds TRL (``grpo:``,
``sft:``, ``train:``) declares only gazal's own keys (and the ones whose gazal default differs);
any other key that is a field of the TRL config class is accepted too, checked against that
field's type annotation and passed to TRL verbatim. ``--describe`` lists those fields with
TRL's own help text, and the saved config writes them back beside the declared keys.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import functools
import importlib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")

__all__ = [
    "ConfigError",
    "OpenSection",
    "OpenTo",
    "cfg",
    "config_from_dict",
    "config_to_dict",
    "describe_config",
    "load_config",
    "load_section",
    "load_yaml_mapping",
    "open_fields",
    "parse_overrides",
]


class ConfigError(ValueError):
    """A recipe or override is invalid; the message names the key and what was expected."""


def cfg(default: Any = dataclasses.MISSING, help: str = "", *, aliases: Sequence[str] = (),
        default_factory: Any = dataclasses.MISSING) -> Any:
    """A documented config field. ``help`` says what the value is and where it comes from."""
    metadata = {"help": help, "aliases": tuple(aliases)}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    if isinstance(default, list | dict | set):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# --------------------------------------------------------------------------- open sections


@dataclasses.dataclass(frozen=True)
class OpenTo:
    """Opens a config section to the fields of a library dataclass (e.g. ``trl.GRPOConfig``).

    A section class sets ``OPEN = OpenTo(...)`` (and derives from :class:`OpenSection`). Keys
    of the section that are not its own fields but are fields of ``target`` are accepted,
    checked against the target field's type annotation, kept in the section's ``store``
    mapping and passed to the library verbatim. The target is imported only when a config of
    that section is built or described.

    - ``target``: dotted name of the dataclass, e.g. ``"trl.GRPOConfig"``;
    - ``only`` / ``exclude``: dotted name of a dataclass (a base of ``target``) whose fields
      are the only ones accepted / are not accepted here: one TRL class is split between two
      sections (``transformers.TrainingArguments``' fields in ``train:``, the rest in
      ``grpo:``); ``elsewhere`` names the sibling section that takes the excluded ones, for
      the error message;
    - ``refused``: fields gazal sets itself, each with the reason given when a recipe sets it;
    - ``store``: the section's ``dict`` field that holds the accepted keys. A recipe may also
      write them inside it (``extra: {key: value}``, the older form); both are checked alike.
    """

    target: str
    only: str | None = None
    exclude: str | None = None
    elsewhere: str | None = None
    refused: Mapping[str, str] = dataclasses.field(default_factory=dict)
    store: str = "extra"


def _import_dotted(name: str) -> type:
    module, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _open_spec(cls: Any) -> OpenTo | None:
    spec = getattr(cls, "OPEN", None)
    return spec if isinstance(spec, OpenTo) else None


@functools.cache
def _open_fields_of(cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    spec = _open_spec(cls)
    if spec is None:
        return {}
    target = _import_dotted(spec.target)
    try:
        hints = get_type_hints(target)
    except Exception:  # an annotation the running Python cannot resolve: check nothing
        hints = {}
    names = {f.name for f in dataclasses.fields(target) if f.init}
    if spec.only:
        names &= {f.name for f in dataclasses.fields(_import_dotted(spec.only))}
    if spec.exclude:
        names -= {f.name for f in dataclasses.fields(_import_dotted(spec.exclude))}
    own = {f.name for f in dataclasses.fields(cls)}
    return {f.name: (f, hints.get(f.name, Any)) for f in dataclasses.fields(target)
            if f.name in names and f.name not in own}


def open_fields(cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    """The library fields a section accepts beyond its own: name -> (field, type hint).
    Empty for a section that is not open (has no ``OPEN``); ``refused`` keys are included
    (setting one is an error that says why)."""
    return _open_fields_of(cls) if dataclasses.is_dataclass(cls) else {}


def _open_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


class OpenSection:
    """Base of a dataclass section with ``OPEN = OpenTo(...)``: reading a library field that
    the recipe did not declare (``recipe.grpo.beta``) gives the recipe's value from the
    store, else the library's default, so code reads every setting the same way."""

    OPEN: Any = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        spec = _open_spec(type(self))
        fields = open_fields(type(self)) if spec else {}
        if name not in fields:
            raise AttributeError(f"{type(self).__name__} has no setting {name!r}")
        store = self.__dict__.get(spec.store, {})
        return store[name] if name in store else _open_default(fields[name][0])


def _coerce_open(cls: type, spec: OpenTo, key: str, value: Any, source: str, prefix: str,
                 dotted: str) -> Any:
    """Check one library key of an open section (``dotted``: the key as the recipe wrote
    it, ``grpo.beta`` or ``grpo.extra.beta``) against the library field's type."""
    own = {f.name for f in dataclasses.fields(cls)} - {spec.store}
    if key in spec.refused:
        raise ConfigError(f"{source}: {dotted}: not settable in gazal: {spec.refused[key]}")
    if key in own:
        raise ConfigError(f"{source}: {dotted}: set {prefix}{key} instead")
    fields = open_fields(cls)
    if key not in fields:
        raise ConfigError(_unknown_key_message(source, dotted, list(own), prefix, cls))
    coerced = _coerce(value, fields[key][1], source, dotted)
    if isinstance(value, int) and not isinstance(value, bool) and coerced == value:
        return value  # an int for a float field (logging_steps: 10) stays as written
    return coerced


# --------------------------------------------------------------------------- YAML


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; errors name the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"recipe not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder; give the recipe's YAML file") from None
    except UnicodeDecodeError as err:
        line = err.object[: err.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte 0x{err.object[err.start]:02x} "
                          f"at offset {err.start}); save the recipe as UTF-8") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {err.problem}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at top level, "
                          f"got {type(data).__name__}")
    return data


# --------------------------------------------------------------------------- overrides


def parse_overrides(args: Sequence[str]) -> list[tuple[str, Any]]:
    """Parse ``--key value`` / ``--key=value`` / ``--flag`` tokens into (key, value) pairs.

    Values are parsed as YAML scalars or flow collections (``16``, ``1e-5``, ``true``,
    ``[q_proj, v_proj]``); a flag with no value means ``true``. Dashes in keys become
    underscores.
    """
    pairs: list[tuple[str, Any]] = []
    i = 0
    args = list(args)
    while i < len(args):
        token = args[i]
        if not token.startswith("--") or token == "--":
            raise ConfigError(f"unexpected argument {token!r}: overrides look like --key value")
        body = token[2:]
        if "=" in body:
            key, raw = body.split("=", 1)
            i += 1
        elif i + 1 < len(args) and not _looks_like_key(args[i + 1]):
            key, raw = body, args[i + 1]
            i += 2
        else:
            key, raw = body, "true"
            i += 1
        key = key.replace("-", "_")
        if not key:
            raise ConfigError(f"empty override key in {token!r}")
        pairs.append((key, _parse_scalar(raw)))
    return pairs


def _looks_like_key(token: str) -> bool:
    return token.startswith("--") and len(token) > 2 and not _is_number(token[2:])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_scalar(raw: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        return raw


# --------------------------------------------------------------------------- building


def load_config(cls: type[T], recipe: str | Path | None = None,
                overrides: Sequence[str] | Sequence[tuple[str, Any]] = (),
                base: Mapping[str, Any] | None = None) -> T:
    """Build ``cls`` from a YAML recipe (optional), a base mapping and overrides (in that order)."""
    data: dict[str, Any] = dict(base or {})
    source = "config"
    if recipe is not None:
        data = _deep_merge(data, load_yaml_mapping(recipe))
        source = str(recipe)
    pairs = parse_overrides(overrides) if overrides and isinstance(overrides[0], str) else overrides
    for key, value in pairs:  # type: ignore[misc]
        path = resolve_key(cls, key)
        _set_dotted(data, path, value)
    return config_from_dict(cls, data, source=source)


def load_section(cls: type[T], recipe: str | Path | None, section: str,
                 overrides: Sequence[str] = (), *, sections: Sequence[str] = (),
                 whole_file: bool = False) -> T:
    """Build ``cls`` from one ``section`` of a recipe plus ``--key value`` overrides.

    ``sections`` (when given) are the only top-level keys the recipe may have; with
    ``whole_file`` a recipe without the section is read as the section itself. Override keys
    are relative to the section; a leading ``<section>.`` is accepted.
    """
    data: dict[str, Any] = {}
    source = "config"
    if recipe is not None:
        whole = load_yaml_mapping(recipe)
        unknown = sorted(set(whole) - set(sections)) if sections else []
        if unknown:
            raise ConfigError(f"{recipe}: unknown top-level key(s) {unknown}; this recipe has "
                              f"the sections {', '.join(repr(s) for s in sections)}")
        if section in whole:
            part = whole[section] if whole[section] is not None else {}
            if not isinstance(part, dict):
                raise ConfigError(f"{recipe}: '{section}' must be a mapping, got "
                                  f"{type(part).__name__}")
            data, source = dict(part), f"{recipe} ({section} section)"
        elif whole_file:
            data, source = whole, str(recipe)
    for key, value in parse_overrides(list(overrides)):
        if key.startswith(section + "."):
            key = key[len(section) + 1:]
        _set_dotted(data, resolve_key(cls, key), value)
    return config_from_dict(cls, data, source=source)


def config_from_dict(cls: type[T], data: Mapping[str, Any], source: str = "config",
                     _prefix: str = "") -> T:
    """Build a dataclass from a mapping, rejecting unknown keys and checking every type."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {_prefix.rstrip('.') or 'config'}: expected a mapping, "
                          f"got {type(data).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    spec = _open_spec(cls)
    kwargs: dict[str, Any] = {}
    passthrough: dict[str, Any] = {}
    for key, value in data.items():
        if spec is not None and key == spec.store:  # {store: {key: value}}: same checks
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: key '{_prefix}{key}': expected a mapping, got "
                                  f"{type(value).__name__}")
            for k, v in value.items():
                passthrough[str(k)] = _coerce_open(cls, spec, str(k), v, source, _prefix,
                                                   f"{_prefix}{key}.{k}")
        elif key in fields:
            kwargs[key] = _coerce(value, hints[key], source, _prefix + key)
        elif spec is not None and key in open_fields(cls):
            passthrough[key] = _coerce_open(cls, spec, key, value, source, _prefix,
                                            _prefix + key)
        else:
            raise ConfigError(_unknown_key_message(source, _prefix + str(key), list(fields),
                                                   _prefix, cls))
    if spec is not None:
        kwargs[spec.store] = passthrough
    missing = [n for n, f in fields.items() if n not in kwargs
               and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{source}: missing required key(s): "
                          + ", ".join(_prefix + m for m in missing))
    try:
        obj = cls(**kwargs)
    except (ValueError, TypeError) as err:  # __post_init__ validation
        raise ConfigError(f"{source}: {err}") from None
    return obj


def _unknown_key_message(source: str, dotted: str, valid: list[str], prefix: str,
                         cls: Any = None) -> str:
    """"unknown key" naming the closest valid key; for an open section the library's field
    names count too (and a field that belongs to the sibling section is pointed there)."""
    leaf = dotted.rsplit(".", 1)[-1]
    spec = _open_spec(cls)
    names = {n: f"{prefix}{n}" for n in valid if not (spec and n == spec.store)}
    listed = sorted(names)
    if spec is not None:
        names.update({n: f"{prefix}{n}" for n in open_fields(cls) if n not in spec.refused})
        if spec.exclude and spec.elsewhere:
            parent = prefix[: -len(prefix.rstrip(".").rsplit(".", 1)[-1]) - 1] if prefix else ""
            for f in dataclasses.fields(_import_dotted(spec.exclude)):
                names.setdefault(f.name, f"{parent}{spec.elsewhere}.{f.name}")
    close = difflib.get_close_matches(leaf, list(names), n=1, cutoff=0.5)
    hint = f"; did you mean '{names[close[0]]}'?" if close else ""
    section = f" (in section '{prefix.rstrip('.')}')" if prefix else ""
    more = (f", or any field of {spec.target} (see --describe)" if spec is not None else "")
    return (f"{source}: unknown key '{dotted}'{section}{hint} Valid keys: "
            f"{', '.join(listed)}{more}")


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, Sequence, tuple):
        args = get_args(tp)
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin in (dict, Mapping):
        args = get_args(tp)
        return f"mapping of {_type_name(args[0])} to {_type_name(args[1])}" if args else "mapping"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, source: str, key: str) -> Any:
    def fail(extra: str = "") -> ConfigError:
        return ConfigError(f"{source}: key '{key}': expected {_type_name(tp)}, got "
                           f"{value!r} ({type(value).__name__}){extra}")

    if tp is Any or tp is typing.Any:
        return value
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise fail()
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, source, key)
            except ConfigError as err:
                errors.append(err)
        hints = [str(e)[str(e).index("; did you mean"):] for e in errors
                 if "; did you mean" in str(e)]
        raise fail(hints[0] if hints else "")
    if origin is Literal:
        choices = get_args(tp)
        if value in choices:
            return value
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        raise fail(f"; did you mean {close[0]!r}?" if close else "")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise fail()
        return config_from_dict(tp, value, source, key + ".")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise fail()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return int(value)  # 1e4 in YAML is a float; accept it when exact
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                try:
                    as_float = float(value)  # "1e2" from YAML
                except ValueError:
                    as_float = None
                if as_float is not None and as_float.is_integer() and abs(as_float) < 2**53:
                    return int(as_float)
        raise fail()
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML reads 1e-5 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise fail()
    if tp is str:
        if isinstance(value, str):
            return value
        raise fail()
    if tp is Path:
        if isinstance(value, str | Path):
            return Path(value)
        raise fail()
    if origin in (list, tuple, Sequence):
        (inner,) = get_args(tp)[:1] or (Any,)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise fail()
        items = [_coerce(v, inner, source, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        kt, vt = get_args(tp) or (Any, Any)
        if not isinstance(value, Mapping):
            raise fail()
        return {_coerce(k, kt, source, f"{key}"): _coerce(v, vt, source, f"{key}.{k}")
                for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):  # library enums (SchedulerType)
        choices = [m.value for m in tp]
        if isinstance(value, tp) or value in choices:
            return value  # passed on as written; the library converts it
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        raise fail(f"; did you mean {close[0]!r}?" if close else "")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise fail()


# --------------------------------------------------------------------------- keys


def _leaf_paths(cls: type, prefix: str = "") -> dict[str, tuple[str, ...]]:
    """Map every dotted key of ``cls`` to its aliases."""
    out: dict[str, tuple[str, ...]] = {}
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = prefix + f.name
        out[path] = tuple(f.metadata.get("aliases", ()))
        if dataclasses.is_dataclass(hints[f.name]):
            out.update(_leaf_paths(hints[f.name], path + "."))
    return out


def _open_paths(cls: type, prefix: str = "") -> list[str]:
    """Dotted keys of the library fields that the open sections of ``cls`` accept."""
    out = [prefix + name for name in open_fields(cls)]
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out.extend(_open_paths(hints[f.name], prefix + f.name + "."))
    return out


def resolve_key(cls: type, key: str) -> str:
    """Resolve an override key to its dotted path: exact path, alias, or unique leaf name.

    Library fields of open sections (``--grpo.beta``) count as paths too; a bare leaf name
    is matched against gazal's own keys first, then against those."""
    paths = _leaf_paths(cls)
    if key in paths:
        return key
    library = _open_paths(cls)
    if key in library:
        return key
    by_alias = [p for p, aliases in paths.items() if key in aliases]
    by_leaf = [p for p in paths if p.rsplit(".", 1)[-1] == key]
    by_library_leaf = [p for p in library if p.rsplit(".", 1)[-1] == key]
    for matches in (by_alias, by_leaf, by_library_leaf):
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise ConfigError(f"override --{key} is ambiguous: it could be "
                              + ", ".join("--" + m for m in sorted(matches)))
    # A key into a free-form mapping field (e.g. --trl.some_arg) passes through.
    head = key.split(".")[0]
    if "." in key and head in paths and not _is_dataclass_field(cls, head):
        return key
    candidates = (list(paths) + [a for aliases in paths.values() for a in aliases]
                  + library)
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.5)
    hint = f"; did you mean --{close[0]}?" if close else ""
    raise ConfigError(f"unknown override --{key}{hint}")


def _is_dataclass_field(cls: type, name: str) -> bool:
    return dataclasses.is_dataclass(get_type_hints(cls)[name])


def _set_dotted(data: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` in nested ``data``; a mapping given for a section that already holds one
    is merged into it (``--lora '{r: 8}'`` changes r and keeps the section's other keys)."""
    parts = path.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    old = node.get(parts[-1])
    if isinstance(value, Mapping) and isinstance(old, dict):
        node[parts[-1]] = _deep_merge(old, value)
    else:
        node[parts[-1]] = value


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


# --------------------------------------------------------------------------- output


def config_to_dict(obj: Any) -> Any:
    """A plain, YAML-safe dict of a config (Paths become strings, tuples lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        spec = _open_spec(obj)
        out = {f.name: config_to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)
               if not (spec and f.name == spec.store)}
        if spec is not None:  # library keys sit beside the declared ones, as in a recipe
            out.update(config_to_dict(getattr(obj, spec.store)))
        return out
    if isinstance(obj, Mapping):
        return {str(k): config_to_dict(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [config_to_dict(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def describe_config(cls: type, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """(key, type, default, help) for every field, for docs and ``--help``; an open
    section's library fields follow its own, with the library's default and help text."""
    rows = []
    hints = get_type_hints(cls)
    spec = _open_spec(cls)
    for f in dataclasses.fields(cls):
        if spec is not None and f.name == spec.store:
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(describe_config(tp, prefix + f.name + "."))
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "(required)"
        rows.append((prefix + f.name, _type_name(tp), default, f.metadata.get("help", "")))
    if spec is not None:
        owner = spec.target.rsplit(".", 1)[-1]
        for name, (f, tp) in open_fields(cls).items():
            if name not in spec.refused:
                help_text = " ".join(str(f.metadata.get("help", "")).split())
                rows.append((prefix + name, _type_name(tp), _open_default(f),
                             f"({owner}) {help_text}"))
    return rows
