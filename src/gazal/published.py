"""A run's output files published as one set, so that a reader never mixes two runs.

Commands that write several files for one result (``gazal data curate``: kept, removed,
report; ``gazal eval``: responses, summary, results; ``gazal score``; ``gazal report``;
``gazal compare``) write each file atomically, but a kill between two of them would leave
the new ``kept.jsonl`` beside the old ``report.json``. So a set is published in three steps:

1. :func:`begin` writes ``manifest.json`` with ``"complete": false``: from now on the folder
   says it is being written (and, after a kill, that it was left incomplete);
2. the command writes its files, each atomically (:mod:`gazal.io`);
3. :func:`publish` rewrites ``manifest.json`` last (atomically) with ``"complete": true``,
   the command, the time, and the size and SHA-256 of every file of the set.

``manifest.json`` with ``"complete": true`` is the completion marker. :func:`verify` (used
by the commands that read a set: ``gazal data review``, ``gazal compare``, ``gazal report``,
and training data taken from a curated folder) refuses a folder without a complete manifest,
or a file that does not match its entry,
with an error naming the folder and the command to re-run; re-running the command that wrote
it completes the set (every writer here resumes or recomputes).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gazal.io import DataError, atomic_write_json, read_json

log = logging.getLogger("gazal")

MANIFEST = "manifest.json"
FORMAT = 1


def begin(folder: str | Path, command: str) -> None:
    """Mark ``folder`` as being written by ``command`` before the files of its set change."""
    atomic_write_json(Path(folder) / MANIFEST, {
        "format": FORMAT, "command": command, "complete": False,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def publish(folder: str | Path, names: Iterable[str], command: str) -> dict[str, Any]:
    """Write ``folder/manifest.json`` for the files ``names`` (all must exist); returns it."""
    folder = Path(folder)
    files = {}
    for name in names:
        path = folder / name
        files[name] = {"bytes": path.stat().st_size, "sha256": _digest(path)}
    manifest = {"format": FORMAT, "command": command, "complete": True,
                "completed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "files": files}
    atomic_write_json(folder / MANIFEST, manifest)
    return manifest


def verify(folder: str | Path, names: Iterable[str] | None = None, *,
           command: str | None = None) -> dict[str, Any] | None:
    """The manifest of ``folder`` after checking the files ``names`` (default: all it lists)
    against it; :class:`DataError` when the folder is incomplete or a file is not the one
    the manifest lists (another run's). ``command`` (e.g. ``"data curate"``) is named in the
    error as what to re-run. A folder with no manifest at all was written before gazal
    published sets (or by hand): it is read as it is, with a warning, and None returned;
    every gazal writer marks its folder before changing a file, so a kill never leaves a
    folder without one."""
    folder = Path(folder)
    rerun = f"re-run gazal {command} into it" if command else "re-run the command that wrote it"
    path = folder / MANIFEST
    if not path.is_file():
        log.warning("%s has no %s: its files are read without checking that they come from "
                    "one run", folder, MANIFEST)
        return None
    manifest = read_json(path)
    if not isinstance(manifest, dict):
        raise DataError("expected a JSON object", path)
    if manifest.get("complete") is not True:
        raise DataError(f"{folder} is incomplete: gazal {manifest.get('command', '?')} was "
                        f"stopped while it wrote its files; {rerun}", path)
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise DataError("expected an object", path, None, "files")
    for name in (list(files) if names is None else names):
        entry, target = files.get(name), folder / name
        if not isinstance(entry, dict):
            raise DataError(f"{name} is not part of the published set of {folder}; {rerun}",
                            path, None, "files")
        if not target.is_file():
            raise DataError(f"{target} is missing from the published set; {rerun}", path)
        if target.stat().st_size != entry.get("bytes") or _digest(target) != entry.get(
                "sha256"):
            raise DataError(f"{target} is not the file published with the rest of {folder} "
                            f"(another run wrote it); {rerun}", path)
    return manifest


def verify_if_listed(path: str | Path) -> None:
    """Check one file against its folder's manifest (a curated ``kept.jsonl`` given as
    training data): refused while the set is incomplete or when the file is not the published
    one; a file in a folder without a manifest, or not listed in it, passes unchanged."""
    path = Path(path)
    manifest_path = path.parent / MANIFEST
    if not manifest_path.is_file():
        return
    manifest = read_json(manifest_path)
    if not isinstance(manifest, dict):
        return
    if manifest.get("complete") is not True or path.name in (manifest.get("files") or {}):
        verify(path.parent, [path.name], command=manifest.get("command"))
