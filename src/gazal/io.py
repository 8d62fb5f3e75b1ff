"""JSON / JSONL reading with errors that name file, line and field; atomic writes; and a
resumable append-only JSONL writer.

A write that runs out of space raises :class:`DiskFull` naming the file and the free space.
Every reader fails with :class:`DataError`, whose message starts ``FILE:LINE:`` (and names
the field where one is at fault). Every writer either leaves the complete new file or the
old one: it writes a temporary file beside the target, fsyncs it and renames it over. The
file gets the mode the umask gives new files (0644 under umask 022), not ``mkstemp``'s 0600.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("gazal")

__all__ = [
    "DataError",
    "DiskFull",
    "ResumableJsonlWriter",
    "atomic_open",
    "atomic_write_json",
    "atomic_write_jsonl",
    "atomic_write_text",
    "clean_stale_temps",
    "current_umask",
    "iter_jsonl",
    "read_json",
    "read_jsonl",
    "read_rows",
    "repair_replaced_folder",
    "replace_folder",
    "require_field",
]


class DataError(ValueError):
    """Bad input data. ``path``, ``line`` and ``field`` say where (any may be None)."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None,
                 field: str | None = None):
        self.path, self.line, self.field, self.reason = path, line, field, message
        where = str(path) if path is not None else ""
        if line is not None:
            where += f":{line}"
        prefix = f"{where}: " if where else ""
        fld = f"field '{field}': " if field else ""
        super().__init__(f"{prefix}{fld}{message}")


class DiskFull(OSError):
    """A write failed for want of space (or quota): the message names the file and the free
    space left, and the command can be re-run to resume once space is freed."""

    def __str__(self) -> str:
        return str(self.strerror)


_FULL = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def _disk_full_named(path: Path) -> Iterator[None]:
    """Turn ENOSPC / EDQUOT raised inside into :class:`DiskFull` naming ``path``."""
    try:
        yield
    except OSError as err:
        if err.errno not in _FULL or isinstance(err, DiskFull):
            raise
        try:
            free = f"{shutil.disk_usage(path.parent).free / 1e6:,.1f} MB free there"
        except OSError:
            free = "free space unknown"
        what = "no space left on the device" if err.errno == errno.ENOSPC else "disk quota " \
            "exceeded"
        raise DiskFull(err.errno, f"{path}: cannot write: {what} ({free}); free some space "
                                  "and re-run the same command to resume") from None


# --------------------------------------------------------------------------- reading


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a syntax error names the line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError("file not found", path) from None
    except UnicodeDecodeError as err:
        raise DataError(f"not UTF-8 text ({err.reason} at byte {err.start})", path) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"invalid JSON: {err.msg} (column {err.colno})", path, err.lineno) from None


def iter_jsonl(path: str | Path, *, skip_invalid: bool = False,
               on_skip: Callable[[DataError], None] | None = None,
               require_object: bool = True) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, record)`` for each non-blank line of a JSONL file.

    A malformed line raises :class:`DataError` naming it, unless ``skip_invalid`` is set, in
    which case ``on_skip`` receives the error and reading goes on.
    """
    path = Path(path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise DataError("file not found", path) from None
    with handle:
        for lineno, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
                if require_object and not isinstance(record, dict):
                    raise DataError(f"expected a JSON object, got {type(record).__name__}",
                                    path, lineno)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                error = DataError(f"invalid JSON: {getattr(err, 'msg', err)}", path, lineno)
                if not skip_invalid:
                    raise error from None
                if on_skip:
                    on_skip(error)
                continue
            except DataError as error:
                if not skip_invalid:
                    raise
                if on_skip:
                    on_skip(error)
                continue
            yield lineno, record


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All records of a JSONL file (strict)."""
    return [rec for _, rec in iter_jsonl(path)]


_MISSING = object()



def read_rows(path: str | Path) -> list[tuple[int | str, Any]]:
    """Rows ``(where, record)`` of a local data file: JSONL (line numbers), a JSON list
    (``row N``, 1-based) or a JSON object keyed by id (``key K``; the key is kept in the
    record as ``pmid``, as PubMedQA's files key their records by PMID)."""
    path = Path(path)
    if path.suffix == ".jsonl":
        return list(iter_jsonl(path))
    data = read_json(path)
    if isinstance(data, list):
        return [(f"row {i + 1}", rec) for i, rec in enumerate(data)]
    if isinstance(data, dict):
        return [(f"key {k}", {**v, "pmid": k} if isinstance(v, dict) else v)
                for k, v in data.items()]
    raise DataError(f"expected a JSON list or object, got {type(data).__name__}", path)

def require_field(record: dict[str, Any], field: str, types: type | tuple[type, ...], *,
                  path: str | Path | None = None, line: int | None = None,
                  default: Any = _MISSING) -> Any:
    """Return ``record[field]`` checked against ``types``; errors name file, line and field."""
    if field not in record or record[field] is None:
        if default is not _MISSING:
            return default
        raise DataError("missing", path, line, field)
    value = record[field]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
        expected = " or ".join(t.__name__ for t in _as_tuple(types))
        raise DataError(f"expected {expected}, got {type(value).__name__}", path, line, field)
    return value


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


# --------------------------------------------------------------------------- atomic writes


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux's
    ``/proc/self/status``); elsewhere set and restored at once under a lock."""
    with contextlib.suppress(OSError, ValueError), \
            open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8"
                ) -> Iterator[IO[Any]]:
    """Open a temp file beside ``path``; on success fsync and rename it over ``path``.

    On an exception the temp file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _disk_full_named(path):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file 0600 whatever the umask; give the output the mode any
        # other new file gets (0644 under the usual umask 022)
        os.fchmod(fd, 0o666 & ~current_umask())
        with _disk_full_named(path), \
                os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: str | Path, records: Iterable[Any]) -> int:
    """Write records as JSONL atomically; returns the count."""
    n = 0
    with atomic_open(path, "w") as handle:
        for rec in records:
            handle.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    return n


# The names gazal's writers give their temporaries: atomic_open's ``.NAME.RANDOM.tmp`` files,
# the final adapter's ``.adapter.tmp/`` and merge's ``.OUT.tmp-PID/`` folders.
_TEMP_NAME = re.compile(r"^\..+\.tmp(-\d+)?$")


def clean_stale_temps(folder: str | Path) -> list[Path]:
    """Remove the temporaries a killed write left in ``folder`` and its subfolders; returns
    what was removed (one log line says how many and how large).

    Call it only while no other process writes ``folder`` (under the run directory's lock,
    :mod:`gazal.rundir`). A subfolder holding its own ``config.yaml`` is another run
    directory (a pipeline's stage): its own command cleans it when it starts.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed: list[Path] = []
    size = 0
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        for name in [d for d in dirs if _TEMP_NAME.match(d)]:
            dirs.remove(name)
            size += sum(f.stat().st_size for f in (here / name).rglob("*") if f.is_file())
            shutil.rmtree(here / name, ignore_errors=True)
            removed.append(here / name)
        dirs[:] = [d for d in dirs if not (here / d / "config.yaml").is_file()]
        for name in files:
            if _TEMP_NAME.match(name):
                with contextlib.suppress(FileNotFoundError):
                    size += (here / name).stat().st_size
                    (here / name).unlink()
                    removed.append(here / name)
    if removed:
        log.info("%s: removed %d temporary file(s)/folder(s) (%.1f MB) left by an interrupted "
                 "write", folder, len(removed), size / 1e6)
    return removed


# --------------------------------------------------------------------------- folders


def replace_folder(new: Path, out: Path) -> None:
    """Put the complete folder ``new`` at ``out``. An existing ``out`` is renamed aside
    first and removed only once ``new`` is in place; if the second rename fails, it is put
    back. (Linux has no portable atomic swap of two folders; the window between the renames
    is repaired by :func:`repair_replaced_folder`.)"""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        out.rename(old)
    try:
        new.rename(out)
    except BaseException:
        if old.exists() and not out.exists():
            old.rename(out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def repair_replaced_folder(out: Path, what: str = "write") -> None:
    """Undo what a killed :func:`replace_folder` into ``out`` (and the ``.OUT.tmp-PID``
    folder it was built in) left beside it: a temporary of a dead process is removed, and
    ``.OUT.old-PID`` is put back when ``out`` is missing (the kill fell between the two
    renames) or removed otherwise. ``what`` names the command, for the log.

    Only folders of processes that no longer run on this host are touched (their pid is in
    the name), so a process writing the same ``out`` meanwhile keeps its own.
    """
    parent = out.parent
    if not parent.is_dir():
        return
    for kind in ("tmp", "old"):
        for path in sorted(parent.glob(f".{out.name}.{kind}-*")):
            pid = path.name.rsplit("-", 1)[1]
            if not pid.isdigit() or (_pid_alive(int(pid)) and int(pid) != os.getpid()):
                continue
            if kind == "old" and not out.exists():
                path.rename(out)
                log.warning("%s: put back the previous version from %s (a %s was killed "
                            "while it replaced it)", out, path.name, what)
                continue
            shutil.rmtree(path, ignore_errors=True)
            log.info("%s: removed %s left by an interrupted %s", parent, path.name, what)


# --------------------------------------------------------------------------- resumable writer


class ResumableJsonlWriter:
    """Append-only JSONL file that survives crashes.

    Each :meth:`append` writes one line, flushes and fsyncs, so a crash loses at most the
    record being written. On open, existing records are read back into :attr:`records`; a
    torn last line (no newline, or not valid JSON) from a crash is cut off with a warning.
    Damage anywhere else is an error: it is not what a crash leaves.
    """

    def __init__(self, path: str | Path, *, fsync: bool = True):
        self.path = Path(path)
        self.fsync = fsync
        self.records: list[dict[str, Any]] = []
        self.dropped_torn_line = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._recover()
        self._handle: IO[str] | None = self.path.open("a", encoding="utf-8")

    def _recover(self) -> None:
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        # After split, a file ending in "\n" leaves an empty last element.
        complete, tail = lines[:-1], lines[-1]
        good_bytes = 0
        for lineno, raw in enumerate(complete, start=1):
            is_last = lineno == len(complete) and not tail
            if raw.strip():
                try:
                    rec = json.loads(raw)
                    if not isinstance(rec, dict):
                        raise ValueError("not an object")
                except ValueError as err:
                    if is_last:  # a complete-looking but corrupt final line: torn
                        tail = raw
                        break
                    raise DataError(f"corrupt record ({err}); only the last line can be torn "
                                    "by a crash, so this file was damaged otherwise",
                                    self.path, lineno) from None
                self.records.append(rec)
            good_bytes += len(raw) + 1
        if tail.strip():
            self.dropped_torn_line = True
            log.warning("%s:%d: dropped a torn last line (%d bytes) left by an interrupted "
                        "write; it will be produced again", self.path,
                        len(self.records) + 1, len(tail))
        if good_bytes != len(data):
            with self.path.open("r+b") as handle:
                handle.truncate(good_bytes)
                handle.flush()
                os.fsync(handle.fileno())

    def append(self, record: dict[str, Any]) -> None:
        """Append one record durably."""
        if self._handle is None:
            raise ValueError(f"{self.path}: writer is closed")
        with _disk_full_named(self.path):  # a torn line is cut off at the next open
            self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._handle.flush()
            if self.fsync:
                os.fsync(self._handle.fileno())
        self.records.append(record)

    def close(self) -> None:
        """Close the file."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> ResumableJsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
