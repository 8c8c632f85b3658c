"""What a run leaves in its output folder, and how a resume reads it back.

::

    OUT/last.safetensors + last.json   the student after the latest finished epoch
    OUT/best.safetensors + best.json   the student with the best validation cosine so far
    OUT/state.pt                       training state for --resume (see below)
    OUT/metrics.jsonl, OUT/curves.png  per-epoch metrics and their plot (tinyclap.distill.log)

Student files go through ``tinyclap.students.save_student`` (a tinyclap
checkpoint: ``.safetensors`` weights + JSON that rebuilds the model), with the
run's teacher id, licence, stage, epoch, step and metrics added to the JSON.

``state.pt`` holds everything needed to continue exactly where a run stopped:
model weights at that moment, optimizer and scheduler state, each rank's torch
RNG state (dropout), epoch, step, position within the epoch's sample order,
best metric and metrics history. It is written atomically and holds only
tensors and plain Python values, so it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from tinyclap.errors import CheckpointError
from tinyclap.io import atomic_path

__all__ = [
    "STATE_NAME",
    "STATE_FORMAT",
    "save_student_checkpoint",
    "save_training_state",
    "load_training_state",
    "run_paths",
]

STATE_NAME = "state.pt"
STATE_FORMAT = "tinyclap-distill-state"
STATE_VERSION = 1


def run_paths(out_dir: str | Path) -> dict[str, Path]:
    """The files of a run folder, by role."""
    out = Path(out_dir)
    return {
        "state": out / STATE_NAME,
        "last": out / "last.json",
        "best": out / "best.json",
        "metrics": out / "metrics.jsonl",
        "curves": out / "curves.png",
        "run": out / "run.json",
    }


def save_student_checkpoint(path: str | Path, student: nn.Module, **meta: Any) -> Path:
    """Write ``student`` as a tinyclap student checkpoint with ``meta`` added to its JSON."""
    from tinyclap.students import save_student

    return Path(save_student(path, student, **meta))


def save_training_state(
    path: str | Path, state: dict[str, Any], fmt: str = STATE_FORMAT, version: int = STATE_VERSION
) -> Path:
    """Write the training state atomically (a crash leaves the previous one intact).

    ``fmt`` tags whose state it is (distillation by default; pretraining uses
    its own tag), so one run's state is never resumed as another's.
    """
    path = Path(path)
    full = {"format": fmt, "version": version, **state}
    with atomic_path(path) as tmp:
        torch.save(full, tmp)
    return path


def load_training_state(
    path: str | Path, fmt: str = STATE_FORMAT, version: int = STATE_VERSION, what: str = "distillation"
) -> dict[str, Any]:
    """Read a state written by :func:`save_training_state` with the same ``fmt`` (never unpickles code)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no training state to resume from")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises several types for bad files
        raise CheckpointError(f"{path}: unreadable training state ({err})") from None
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise CheckpointError(f"{path}: not a tinyclap {what} state")
    if state.get("version") != version:
        raise CheckpointError(f"{path}: state version {state.get('version')}, this tinyclap reads {version}")
    return state
