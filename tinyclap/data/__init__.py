"""Datasets that yield ``Example(clip, target, clip_id)``: see docs/datasets.md.

``open_dataset(spec, audio_config)`` builds one from a CLI spec string
(``esc50:ROOT?folds=1,2``, ``synth?n=200``, ...); ``make_loader`` wraps it in a
DataLoader whose batches are ``(clips (B, S), targets, ids)`` and whose
workers' broken files are reported back to the dataset.
"""

from __future__ import annotations

from tinyclap.data.base import (
    AudioDataset,
    Batch,
    BrokenFile,
    Entry,
    Example,
    Skipped,
    aggregate_windows,
    broken_files,
    broken_report,
    collate,
    make_loader,
)
from tinyclap.data.spec import open_dataset, parse_spec

__all__ = [
    "AudioDataset",
    "Batch",
    "BrokenFile",
    "Entry",
    "Example",
    "Skipped",
    "aggregate_windows",
    "broken_files",
    "broken_report",
    "collate",
    "make_loader",
    "open_dataset",
    "parse_spec",
]
