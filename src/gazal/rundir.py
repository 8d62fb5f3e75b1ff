"""Run directories: one folder per command run holding its resolved config, metrics and outputs.

A re-run into the same folder resumes. To keep resumed results honest, the saved config
must match the new one on every key that changes results; keys that only affect speed or
logging can be listed in ``resumable_keys`` and may differ.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from gazal.config import ConfigError, config_to_dict
from gazal.io import atomic_write_text, clean_stale_temps

log = logging.getLogger("gazal")

CONFIG_FILE = "config.yaml"


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): d}


def _effective(config: Any, dotted: str) -> Any:
    """The value ``config`` has for a dotted key it does not save: a section open to a
    library's dataclass saves only the keys a recipe sets, and reads the others as the
    library's defaults (gazal.config.OpenSection). A folder written before such a key stopped
    being saved then still resumes when its saved value is that default."""
    value = config
    for part in dotted.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            return _MISSING
    return value


_MISSING = object()


def prepare_run_dir(run_dir: str | Path, config: Any, *, resumable_keys: Iterable[str] = (),
                    command: str = "", write: bool = True) -> Path:
    """Create ``run_dir`` and save ``config`` as ``config.yaml``.

    If the folder already holds a config (a resume), every key outside ``resumable_keys``
    (dotted names; a prefix such as ``logging`` covers a section) must be equal, else a
    :class:`ConfigError` lists the differences. ``write=False`` (the non-main processes of a
    multi-process run) only checks: nothing is created, written or logged. The temporaries
    a killed write of an earlier run left in the folder are removed
    (:func:`gazal.io.clean_stale_temps`).
    """
    run_dir = Path(run_dir)
    if write:
        run_dir.mkdir(parents=True, exist_ok=True)
    resolved = config_to_dict(config)
    if command:
        resolved = {"command": command, **resolved}
    path = run_dir / CONFIG_FILE
    if path.exists():
        previous = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        skip = tuple(resumable_keys)
        old, new = _flatten(previous), _flatten(resolved)

        def now(k: str) -> Any:
            value = new[k] if k in new else _effective(config, k)
            return None if value is _MISSING else value

        diffs = [k for k in sorted(set(old) | set(new))
                 if old.get(k) != now(k)
                 and not any(k == s or k.startswith(s + ".") for s in skip)]
        if diffs:
            lines = [f"  {k}: {old.get(k)!r} (saved) != {now(k)!r} (now)" for k in diffs[:20]]
            raise ConfigError(
                f"{run_dir} holds a run with a different config, so it cannot be resumed:\n"
                + "\n".join(lines)
                + "\nUse a new output folder, or delete the old one to start over.")
        if write:
            log.info("resuming run in %s", run_dir)
    if write:
        clean_stale_temps(run_dir)
        atomic_write_text(path, yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True))
    return run_dir
