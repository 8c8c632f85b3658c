"""Students: the PhiNet backbone, the AudioStudent around it, presets, and student checkpoints.

``save_student`` / ``load_student`` write and read tinyclap checkpoints of kind
``"student"``: weights in ``.safetensors`` and, in the ``.json``, the
StudentConfig, the AudioConfig, the output dim, the kept latent dims (after
pruning) and whatever extra metadata the caller adds (teacher id, licence,
stage, step, metrics).

``to_channels_last`` / ``channels_last`` and ``reuse_freed_memory``
(:mod:`tinyclap.students.speed`) make training and inference faster on CPU
without changing the math.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyclap.audio import AudioConfig
from tinyclap.checkpoint import load_checkpoint, save_checkpoint
from tinyclap.errors import CheckpointError
from tinyclap.students.encoder import (
    AudioStudent,
    Projection,
    StudentConfig,
    StudentConfigError,
    convert_reference_state_dict,
    list_presets,
    load_preset,
    load_reference_checkpoint,
    save_preset,
)
from tinyclap.students.phinet import PhiNet
from tinyclap.students.speed import (
    channels_last,
    is_channels_last,
    reuse_freed_memory,
    to_channels_last,
    to_contiguous,
)

__all__ = [
    "AudioStudent",
    "PhiNet",
    "Projection",
    "StudentConfig",
    "StudentConfigError",
    "channels_last",
    "convert_reference_state_dict",
    "is_channels_last",
    "list_presets",
    "load_preset",
    "load_reference_checkpoint",
    "load_student",
    "reuse_freed_memory",
    "save_preset",
    "save_student",
    "to_channels_last",
    "to_contiguous",
]

ARCHITECTURE = "phinet-student"
# Keys save_student writes itself; extra metadata may not replace them.
_RESERVED = {"kind", "architecture", "name", "config", "audio_config", "dim", "kept_dims", "params", "format", "weights"}


def save_student(path: str | Path, student: AudioStudent, **extra_meta: Any) -> Path:
    """Write ``student`` as a self-describing checkpoint; returns the ``.json`` path.

    The config is stored with ``dim`` equal to the student's actual output size,
    so a pruned student (k dims) reloads with its k-dim head.
    """
    clash = _RESERVED & set(extra_meta)
    if clash:
        raise ValueError(f"save_student: metadata keys {sorted(clash)} are written by save_student itself")
    config = student.config.replace(dim=student.dim) if student.config.dim != student.dim else student.config
    meta = {
        **extra_meta,
        "kind": "student",
        "architecture": ARCHITECTURE,
        "name": config.name,
        "config": config.to_dict(),
        "audio_config": student.audio_config.to_dict(),
        "dim": student.dim,
        "kept_dims": None if student.kept_dims is None else [int(d) for d in student.kept_dims],
        "params": student.num_parameters(),
    }
    return save_checkpoint(path, student.state_dict(), meta)


def load_student(path: str | Path) -> AudioStudent:
    """Rebuild a student saved by :func:`save_student` (in eval mode); ``.meta`` holds its metadata."""
    state, meta = load_checkpoint(path, kind="student")
    where = str(path)
    if meta.get("architecture", ARCHITECTURE) != ARCHITECTURE:
        raise CheckpointError(f"{where}: unknown student architecture {meta.get('architecture')!r}")
    try:
        config = StudentConfig.from_dict(meta["config"])
        audio = AudioConfig.from_dict(meta.get("audio_config") or {})
    except KeyError:
        raise CheckpointError(f"{where}: student metadata has no 'config'") from None
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{where}: bad student metadata ({err})") from None
    try:
        if "dim" in meta and meta["dim"] != config.dim:
            config = config.replace(dim=int(meta["dim"]))
        kept = meta.get("kept_dims")
        kept = None if kept is None else [int(d) for d in kept]
    except (TypeError, ValueError):
        raise CheckpointError(f"{where}: bad student metadata ('dim' must be an integer and 'kept_dims' a list of "
                              f"integers; got {meta.get('dim')!r}, {str(meta.get('kept_dims'))[:40]!r})") from None
    student = AudioStudent(config, audio)
    try:
        missing, unexpected = student.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        first = next((line.strip() for line in str(err).splitlines() if "size mismatch" in line), str(err))
        raise CheckpointError(f"{where}: weights do not fit {config.name} ({first})") from None
    if missing or unexpected:
        raise CheckpointError(
            f"{where}: weights do not fit {config.name} (missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})"
        )
    student.kept_dims = kept
    if student.kept_dims is not None and len(student.kept_dims) != student.dim:
        raise CheckpointError(f"{where}: {len(student.kept_dims)} kept_dims but the head outputs {student.dim}")
    student.meta = meta
    return student.eval()
