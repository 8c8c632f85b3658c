"""Calibration clips: real recordings that set int8 ranges and verify every export.

Static int8 quantisation needs the activations' ranges, and they must come
from what the model will really see: log-mel of real audio, cut into windows
the way the device cuts them. The same clips then verify each exported model
against the torch student (cosines, zero-shot agreement), so a quantisation
that hurts real audio shows up in ``report.json`` at once.

Clips are picked deterministically (evenly spaced over the dataset), so two
exports from the same spec see the same clips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tinyclap.audio import AudioConfig
from tinyclap.errors import DataError
from tinyclap.export.streaming import Windowing, window_logmels

__all__ = ["CalibrationSet", "load_calibration", "calibration_from_clips"]


@dataclass
class CalibrationSet:
    """Clips ``(N, S)`` at one AudioConfig, their ids and where they came from; windows on demand."""

    clips: np.ndarray
    clip_ids: list[str]
    source: str
    audio_config: AudioConfig
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.clips)

    def windows(self, windowing: Windowing) -> torch.Tensor:
        """Log-mel of every window of every clip: ``(N, W, frames, n_mels)`` raw dB."""
        return window_logmels(self.clips, windowing)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "clips": len(self),
            "clip_ids": list(self.clip_ids),
            "skipped": list(self.skipped),
        }


def calibration_from_clips(
    clips: np.ndarray | list[np.ndarray], audio_config: AudioConfig, ids: list[str] | None = None, source: str = "clips"
) -> CalibrationSet:
    """A :class:`CalibrationSet` from waveforms already at ``audio_config`` (fitted to its clip length)."""
    from tinyclap.audio import fit_length

    waves = [fit_length(np.asarray(c, dtype=np.float32), audio_config.clip_samples) for c in clips]
    if not waves:
        raise DataError(f"{source}: no calibration clips")
    ids = ids if ids is not None else [f"clip{i}" for i in range(len(waves))]
    return CalibrationSet(np.stack(waves), list(ids), source, audio_config)


def load_calibration(spec: str, audio_config: AudioConfig, max_clips: int = 32) -> CalibrationSet:
    """Up to ``max_clips`` clips, evenly spaced over the dataset ``spec`` names.

    ``spec`` is a dataset spec as :func:`tinyclap.data.open_dataset` reads it.

    Unreadable files are skipped (and listed); a spec that yields no clip raises :class:`DataError`.
    """
    from tinyclap.data import open_dataset
    from tinyclap.data.base import Skipped

    if max_clips < 1:
        raise ValueError(f"max_clips must be at least 1, got {max_clips}")
    dataset = open_dataset(spec, audio_config)
    n = len(dataset)
    if n == 0:
        raise DataError(f"calibration data {spec!r}: the dataset holds no clips")
    picks = sorted({int(round(i)) for i in np.linspace(0, n - 1, min(max_clips, n))})
    clips, ids, skipped = [], [], []
    for i in picks:
        item = dataset[i]
        if isinstance(item, Skipped):
            skipped.append(f"{item.path}: {item.reason}")
            continue
        clips.append(np.asarray(item.clip, dtype=np.float32))
        ids.append(item.clip_id)
    if not clips:
        raise DataError(f"calibration data {spec!r}: none of the {len(picks)} picked clips could be read")
    calib = calibration_from_clips(clips, audio_config, ids, source=spec)
    calib.skipped = skipped
    return calib
