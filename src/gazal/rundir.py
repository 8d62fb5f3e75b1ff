"""Run directories: one folder per command run holding its resolved config, metrics and outputs.

A re-run into the same folder resumes. To keep resumed results honest, the saved config
must match the new one on every key that changes results; keys that only affect speed or
logging can be listed in ``resumable_keys`` and may differ.

One process per run directory: :func:`lock_run_dir` (called by :func:`prepare_run_dir` on
the process that writes) takes an advisory ``fcntl.flock`` on ``RUN/.gazal.lock`` for the
life of the process; the kernel releases it when the process dies, however it dies. A
second process is refused with the holder's pid, host and command. On NFS, Linux emulates
``flock`` with POSIX byte-range locks (NFSv4, or NFSv3 with lockd): the lock then holds
across hosts, except on mounts with ``nolock`` / ``local_lock=all``, where it covers only
the processes of one host (Lustre needs ``-o flock``). See docs/reliability.md.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import logging
import os
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from gazal.config import ConfigError, config_to_dict
from gazal.io import atomic_write_text, clean_stale_temps

log = logging.getLogger("gazal")

CONFIG_FILE = "config.yaml"
LOCK_FILE = ".gazal.lock"


class RunDirLocked(ConfigError):
    """Another process holds the run directory's lock."""


_held: dict[str, int] = {}  # resolved run dir -> fd of its lock file, for this process's life


def lock_run_dir(run_dir: str | Path, command: str = "") -> Path:
    """Take ``RUN/.gazal.lock`` for the rest of this process's life (see the module
    docstring); returns the lock file. Taking it again in the same process is a no-op.

    Raises :class:`RunDirLocked` naming the holder (pid, host, command, since when) when
    another process holds it.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    key = str(run_dir.resolve())
    fd = _held.get(key)
    if fd is not None:
        try:  # still the same file (a test may have deleted and re-made the folder)
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return path
        except FileNotFoundError:
            pass
        os.close(fd)
        del _held[key]
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise
        raise RunDirLocked(f"{run_dir} is in use by another process ({_holder(path)}); "
                           "one process per run directory: wait for it to finish or stop "
                           "it, or use another output folder") from None
    what = f", `gazal {command}`" if command else ""
    info = (f"pid {os.getpid()} on host {socket.gethostname()}{what}, since "
            f"{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')}\n")
    os.ftruncate(fd, 0)
    os.pwrite(fd, info.encode("utf-8"), 0)
    _held[key] = fd
    return path


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return text or "pid and host not yet written"


def release_run_dir(run_dir: str | Path) -> None:
    """Release this process's lock on ``run_dir`` (the lock otherwise lasts until the
    process exits); a no-op when not held."""
    fd = _held.pop(str(Path(run_dir).resolve()), None)
    if fd is not None:
        os.close(fd)  # closing the only descriptor releases the flock


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
    """Create ``run_dir``, lock it for this process (:func:`lock_run_dir`) and save
    ``config`` as ``config.yaml``.

    If the folder already holds a config (a resume), every key outside ``resumable_keys``
    (dotted names; a prefix such as ``logging`` covers a section) must be equal, else a
    :class:`ConfigError` lists the differences. ``write=False`` (the non-main processes of a
    multi-process run) only checks: nothing is created, written or logged. The temporaries
    a killed write of an earlier run left in the folder are removed
    (:func:`gazal.io.clean_stale_temps`).
    """
    run_dir = Path(run_dir)
    if write:
        lock_run_dir(run_dir, command)  # before anything is read: no one else writes now
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
