"""Hub datasets: gazal's one ``datasets.load_dataset`` call, with one error policy.

Benchmarks (``gazal.benchmarks``), SFT data and RL data load Hub sets through
:func:`load_hub_dataset`: any failure (no network, no access, no such dataset, config or
split) is a :class:`gazal.io.DataError` that names the dataset, its config, split and
revision and says what to do offline. ``datasets`` is imported only when a Hub set is loaded.
"""

from __future__ import annotations

from typing import Any

from gazal.io import DataError

__all__ = ["hub_label", "load_hub_dataset"]


def hub_label(path: str, name: str | None = None, split: str | None = None,
              revision: str | None = None) -> str:
    """``path/name (split S, revision R)``: how messages name a Hub dataset."""
    parts = [f"split {split}"] if split else []
    if revision:
        parts.append(f"revision {revision}")
    return f"{path}{'/' + name if name else ''}" + (f" ({', '.join(parts)})" if parts else "")


def load_hub_dataset(path: str, name: str | None = None, *, split: str,
                     revision: str | None = None, offline: str, what: str | None = None) -> Any:
    """``datasets.load_dataset(path, name, split=split, revision=revision)``.

    A failure raises :class:`DataError` ``could not load [WHAT, ]PATH/NAME (split S) from the
    Hub: <reason>. Offline? <offline>``; ``offline`` tells what to do without the Hub (e.g.
    "Pass --data-dir or set GAZAL_DATA_DIR."), ``what`` names the set when the caller knows it
    by another name (a benchmark).
    """
    import datasets  # heavy; only when a Hub set is used

    try:
        return datasets.load_dataset(path, name, split=split, revision=revision)
    except Exception as err:  # network, auth, missing dataset / config / split: say what was tried
        label = hub_label(path, name, split, revision)
        raise DataError(f"could not load {what + ', ' if what else ''}{label} from the Hub: "
                        f"{err}. Offline? {offline}") from err
