"""Atomic file writes: a crash or Ctrl-C never leaves a half-written file behind."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from tinyclap.errors import TinyClapError


class OutputPathError(TinyClapError, OSError):
    """An output path that cannot be written: a file where a folder must go, or the reverse."""


def check_output(path: str | Path, kind: str = "file", option: str = "--out") -> Path:
    """Refuse an output ``path`` that cannot be written, before any work is done.

    ``kind`` is ``"file"`` (``path`` will be a file: it must not be a folder) or
    ``"dir"`` (``path`` will be a folder: it must not be a file). Either way every
    existing ancestor must be a writable folder (missing ones are created later).
    Raises :class:`OutputPathError` naming ``option`` and the blocking path.
    """
    if kind not in ("file", "dir"):
        raise ValueError(f"kind must be 'file' or 'dir', got {kind!r}")
    path = Path(path)
    if path.exists() or path.is_symlink():
        if kind == "file" and path.is_dir():
            raise OutputPathError(f"{option} {path}: is a folder; give a file name")
        if kind == "dir" and not path.is_dir():
            raise OutputPathError(f"{option} {path}: is a file, not a folder; give a folder name")
        if not os.access(path, os.W_OK):
            raise OutputPathError(f"{option} {path}: not writable")
    parent = path.absolute().parent
    while not parent.exists() and not parent.is_symlink() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputPathError(f"{option} {path}: {parent} is a file, so nothing can be written under it")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{option} {path}: folder {parent} is not writable")
    return path

__all__ = ["atomic_path", "write_json", "read_json", "write_npz", "check_output", "OutputPathError"]


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` on success.

    The rename is atomic on POSIX, so readers see either the old file or the
    complete new one. On error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_npz(path: str | Path, **arrays: Any) -> None:
    """Write a ``.npz`` atomically (numpy would append ``.npz`` to a temp name, so open it ourselves)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
