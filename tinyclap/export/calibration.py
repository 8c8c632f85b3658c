"""Calibration clips: real recordings that set int8 ranges and verify every export.

Static int8 quantisation needs the activations' ranges, and they must come
from what the model will really see: log-mel of real audio, cut into windows
the way the device cuts them. The same clips then verify each exported model
against the torch student (cosines, zero-shot agreement), so a quantisation
that hurts real audio shows up in ``report.json`` at once.

Clips are picked deterministically (evenly spaced over the dataset), so two
exports from the same spec see the same clips.

Calibrating and verifying on the same clips hides a bad calibration: int8
ranges set on silence (or on one clip) fit those clips, so the report said
cosine 0.998 while the model gave 0.62 on real audio. So every
``HOLDOUT_EVERY``-th clip (a quarter, at least one of two or more clips) is
held out of calibration and only verifies (:func:`split_holdout`), and
:func:`check_coverage` refuses calibration clips that are all silent (peak
below ``SILENCE_PEAK``, -60 dBFS) and warns (:class:`CalibrationWarning`)
when fewer than ``MIN_CALIBRATION_CLIPS`` distinct, non-silent clips set
the ranges: min/max ranges over a handful of sounds clip every louder or
brighter one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tinyclap.audio import AudioConfig
from tinyclap.errors import DataError
from tinyclap.export.streaming import Windowing, window_logmels

__all__ = [
    "CalibrationSet",
    "CalibrationError",
    "CalibrationWarning",
    "MIN_CALIBRATION_CLIPS",
    "SILENCE_PEAK",
    "HOLDOUT_EVERY",
    "load_calibration",
    "calibration_from_clips",
    "split_holdout",
    "check_coverage",
]

MIN_CALIBRATION_CLIPS = 16  # distinct non-silent clips below which the ranges are called thin
SILENCE_PEAK = 1e-3  # a clip whose peak |sample| is below this (-60 dBFS) counts as silent
HOLDOUT_EVERY = 4  # every 4th clip verifies instead of calibrating


class CalibrationError(DataError):
    """Calibration clips that cannot set int8 ranges (all silent)."""


class CalibrationWarning(UserWarning):
    """Calibration clips that are legal but few: the int8 ranges may not cover real audio."""


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


def split_holdout(n: int, every: int = HOLDOUT_EVERY) -> tuple[list[int], list[int]]:
    """``(calibration positions, verification positions)`` of ``n`` clips: every ``every``-th clip
    (a quarter, at least one when ``n >= 2``) only verifies; one clip does both (nothing to hold out)."""
    if n < 2:
        return list(range(n)), list(range(n))
    n_verify = max(1, int(round(n / every)))
    step = n // n_verify
    verify = [step - 1 + j * step for j in range(n_verify)]
    held = set(verify)
    return [i for i in range(n) if i not in held], verify


def check_coverage(calib: CalibrationSet, positions: list[int]) -> dict[str, Any]:
    """What the clips at ``positions`` (those that set the ranges) cover; raises on all-silent clips.

    Returns ``{"silent_clip_ids", "distinct_sounds", "min_clips", "warnings"}``; the caller shows the
    warnings (:func:`~tinyclap.export.pipeline.export_student`: in its log, else as :class:`CalibrationWarning`).
    """
    import hashlib

    clips = calib.clips[positions]
    peaks = np.abs(clips).max(axis=1) if clips.size else np.zeros(len(positions))
    silent = [calib.clip_ids[p] for p, peak in zip(positions, peaks) if peak < SILENCE_PEAK]
    if len(silent) == len(positions):
        raise CalibrationError(
            f"calibration data {calib.source!r}: all {len(positions)} calibration clips are silent (peak below "
            f"{20 * np.log10(SILENCE_PEAK):.0f} dBFS): int8 ranges set on silence do not fit real audio; "
            "calibrate on recordings like the ones the device will hear"
        )
    sounds = {hashlib.sha256(c.tobytes()).hexdigest() for c, peak in zip(clips, peaks) if peak >= SILENCE_PEAK}
    notes = []
    if len(sounds) < MIN_CALIBRATION_CLIPS:
        dup = len(positions) - len(silent) - len(sounds)
        extra = []
        if silent:
            extra.append(f"{len(silent)} silent")
        if dup:
            extra.append(f"{dup} duplicates")
        notes.append(
            f"calibration data {calib.source!r}: only {len(sounds)} distinct non-silent clips set the int8 ranges"
            + (f" ({', '.join(extra)} not counted)" if extra else "")
            + f"; fewer than {MIN_CALIBRATION_CLIPS} may not cover real audio: give more clips (--calib-clips)"
        )
    return {"silent_clip_ids": silent, "distinct_sounds": len(sounds), "min_clips": MIN_CALIBRATION_CLIPS,
            "warnings": notes}
