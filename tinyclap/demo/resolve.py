"""Which models the demo serves: explicit paths, or what ``tinyclap quickstart`` left in ``runs/quickstart``.

A run folder is scanned (three levels deep) for tinyclap checkpoints by their
``kind`` and for prompt banks (``.npz`` in the bank format):

- teacher: the ``kind: "teacher"`` checkpoint (the newest, if several);
- student: the newest ``kind: "student"`` checkpoint, where a ``best`` beats
  a ``last`` in the same folder (a distillation run writes both);
- banks: every bank found, shown by file name.

Nothing is guessed beyond that; if the folder holds no usable pair the error
says how to make one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tinyclap.demo.inference import DemoInputError, DemoModels, load_banks

__all__ = ["DEFAULT_RUN", "RunOutputs", "find_run_outputs", "load_demo_models", "NoModelsError"]

DEFAULT_RUN = Path("runs") / "quickstart"
_MAX_DEPTH = 3


class NoModelsError(DemoInputError):
    """No teacher, student or bank to serve (names what was looked for and how to make one)."""


@dataclass
class RunOutputs:
    """Model files found for the demo (paths; nothing loaded yet)."""

    teacher: str | None = None  # a registry name or a checkpoint path
    student: Path | None = None
    banks: list[Path] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.teacher is None and self.student is None


def _kind(meta: Path) -> str | None:
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != "tinyclap":
        return None
    return data.get("kind")


def _is_bank(path: Path) -> bool:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as npz:
            return "format" in npz.files and str(npz["format"]).startswith("tinyclap-bank/")
    except Exception:  # noqa: BLE001 - anything unreadable is simply not a bank
        return False


def _walk(root: Path, pattern: str) -> list[Path]:
    found: list[Path] = []
    for depth in range(_MAX_DEPTH + 1):
        found += sorted(root.glob("/".join(["*"] * depth + [pattern])))
    return found


def _student_rank(path: Path) -> tuple[float, int]:
    # Newest first; within a distillation folder, best.json over last.json (same moment, better model).
    return (path.stat().st_mtime, {"best": 2, "last": 0}.get(path.stem, 1))


def find_run_outputs(run_dir: str | Path) -> RunOutputs:
    """The teacher, student and banks inside ``run_dir`` (see the module docstring)."""
    root = Path(run_dir)
    out = RunOutputs()
    if not root.is_dir():
        return out
    metas = _walk(root, "*.json")
    teachers = [m for m in metas if _kind(m) == "teacher"]
    students = [m for m in metas if _kind(m) == "student"]
    if teachers:
        out.teacher = str(max(teachers, key=lambda p: p.stat().st_mtime))
    if students:
        best_per_dir: dict[Path, Path] = {}
        for s in students:
            cur = best_per_dir.get(s.parent)
            if cur is None or _student_rank(s)[1] > _student_rank(cur)[1]:
                best_per_dir[s.parent] = s
        out.student = max(best_per_dir.values(), key=_student_rank)
    out.banks = [p for p in _walk(root, "*.npz") if _is_bank(p)]
    return out


def no_models_message(run_dir: str | Path) -> str:
    return (
        f"no models to serve: {run_dir} holds no tinyclap teacher or student. "
        "Run `tinyclap quickstart` first (it trains a small local teacher, a student and a bank "
        f"into {DEFAULT_RUN}/), or pass --teacher NAME and/or --student CKPT --bank BANK.npz"
    )


def load_demo_models(
    teacher: str | None = None,
    student: str | Path | None = None,
    banks: Sequence[str | Path] = (),
    run_dir: str | Path | None = None,
    *,
    device: str = "cpu",
    teacher_options: dict[str, Any] | None = None,
    max_seconds: float = 300.0,
    max_prompts: int = 64,
) -> DemoModels:
    """Load the models to serve.

    Explicit ``teacher`` / ``student`` / ``banks`` are used as given. With none
    of them, ``run_dir`` (default ``runs/quickstart``) is scanned; with some of
    them and an explicit ``run_dir``, the run fills in the missing ones.
    """
    explicit = teacher is not None or student is not None or bool(banks)
    if not explicit or run_dir is not None:
        where = Path(run_dir) if run_dir is not None else DEFAULT_RUN
        found = find_run_outputs(where)
        if not explicit and found.empty:
            raise NoModelsError(no_models_message(where))
        teacher = teacher if teacher is not None else found.teacher
        student = student if student is not None else found.student
        banks = list(banks) or found.banks
    loaded_teacher = None
    if teacher is not None:
        from tinyclap.teachers.registry import load_teacher

        loaded_teacher = load_teacher(str(teacher), device, **(teacher_options or {}))
    loaded_student = None
    if student is not None:
        from tinyclap.students import load_student

        loaded_student = load_student(student).to(device)
    return DemoModels(loaded_student, loaded_teacher, load_banks(banks), max_seconds=max_seconds, max_prompts=max_prompts)
