"""Run folders know their kind, so one verb never writes over another verb's run.

``tinyclap pretrain``, ``tinyclap distill`` and ``tinyclap quickstart`` write
run folders with files of the same names (``metrics.jsonl``, ``state``...), and
``quickstart --fresh`` deletes its folder. Each records its kind in
``OUT/tinyclap-run.json`` (``{"format": "tinyclap-run", "kind": "distill"}``)
when it starts; a verb refuses a folder of another kind
(:class:`RunKindError`). Folders written before the marker existed are
recognised by their files (:func:`run_kind`) and get the marker on their next
run, so they keep working.
"""

from __future__ import annotations

import json
from pathlib import Path

from tinyclap.errors import TinyClapError

__all__ = ["KINDS", "MARKER", "RunKindError", "run_kind", "check_run_folder", "mark_run_folder", "is_empty_dir"]

MARKER = "tinyclap-run.json"
FORMAT = "tinyclap-run"
KINDS = ("pretrain", "distill", "quickstart", "cache", "prune")

# Files that identify a folder written before the marker (the first match wins, in this order).
_SIGNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("quickstart", ("steps.json",)),
    ("pretrain", ("state/train_state.pt", "recipe.yaml")),
    ("distill", ("state.pt", "last.json", "best.json", "run.json")),
    ("cache", ("cache.json",)),
    ("prune", ("prune.json",)),
)

_VERB = {"pretrain": "tinyclap pretrain", "distill": "tinyclap distill", "quickstart": "tinyclap quickstart",
         "cache": "tinyclap cache", "prune": "tinyclap prune"}


class RunKindError(TinyClapError, FileExistsError):
    """An output folder that holds another kind of run (or, for ``quickstart``, something else)."""


def is_empty_dir(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and not any(path.iterdir())


def _recorded(path: Path) -> str | None:
    marker = path / MARKER
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and data.get("format") == FORMAT and isinstance(data.get("kind"), str):
        return data["kind"]
    return None


def run_kind(path: str | Path) -> str | None:
    """The kind of run ``path`` holds: its marker, else what its files say (old folders); None if neither."""
    path = Path(path)
    if not path.is_dir():
        return None
    kind = _recorded(path)
    if kind is not None:
        return kind
    for kind, files in _SIGNS:
        if any((path / f).exists() for f in files):
            return kind
    return None


def check_run_folder(path: str | Path, kind: str) -> None:
    """Raise :class:`RunKindError` when ``path`` holds a run of another kind than ``kind``."""
    found = run_kind(path)
    if found is not None and found != kind:
        raise RunKindError(
            f"{path}: holds a {found} run (written by `{_VERB.get(found, found)}`), not a {kind} run; "
            f"{_VERB.get(kind, kind)} would overwrite its files: choose another --out"
        )


def mark_run_folder(path: str | Path, kind: str) -> Path:
    """Create ``path`` if needed and record its kind (after :func:`check_run_folder`); returns the folder."""
    from tinyclap import __version__
    from tinyclap.io import write_json

    check_run_folder(path, kind)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if _recorded(path) is None:
        write_json(path / MARKER, {"format": FORMAT, "kind": kind, "tinyclap": __version__})
    return path
