"""UrbanSound8K: 8732 urban sound slices (≤ 4 s) in 10 classes, 10 official folds.

Layout (the official archive's)::

    ROOT/metadata/UrbanSound8K.csv   slice_file_name,fsID,start,end,salience,fold,classID,class
    ROOT/audio/fold<N>/<slice_file_name>

Labels are the official ``classID`` (0..9) and ``class_names`` the official ten
classes with ``_`` replaced by a space ("air conditioner", "car horn", ...),
whatever subset of them the csv holds, so a partial copy keeps the official ids
and a zero-shot bank built from ``class_names`` covers the real task.

Slices are shorter than a 5 s clip. They are padded by **repetition** by
default (``pad="repeat"``): MS-CLAP (the teacher whose zero-shot numbers we
compare against) tiles short audio, and a student distilled from it should see
what it saw. ``pad="zero"`` appends silence instead (a 0.5 s horn stays one
horn, not ten), e.g. ``us8k:ROOT?pad=zero``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from tinyclap.audio import AudioConfig
from tinyclap.data.base import AudioDataset, Entry
from tinyclap.data.esc50 import parse_folds
from tinyclap.data.tables import read_rows
from tinyclap.errors import DataError

__all__ = ["UrbanSound8K", "US8K_CLASSES"]

US8K_CLASSES = [
    "air conditioner",
    "car horn",
    "children playing",
    "dog bark",
    "drilling",
    "engine idling",
    "gun shot",
    "jackhammer",
    "siren",
    "street music",
]


class UrbanSound8K(AudioDataset):
    """UrbanSound8K at ``audio_config``: one clip per slice, padded to the clip length."""

    name = "us8k"

    def __init__(
        self,
        root: str | Path,
        audio_config: AudioConfig | None = None,
        folds: Iterable[int] | int | str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("target", "label")
        super().__init__(audio_config, **kwargs)
        self.root = Path(root)
        csv_path = self.root / "metadata" / "UrbanSound8K.csv"
        if not csv_path.is_file():
            raise DataError(f"{self.root}: not an UrbanSound8K folder (missing metadata/UrbanSound8K.csv)")
        rows = read_rows(csv_path, ("slice_file_name", "fold", "classID", "class"), integers=("fold", "classID"))
        names = list(US8K_CLASSES)
        for r in rows:
            cid = int(r["classID"])
            if not 0 <= cid < len(names):
                raise DataError(f"{csv_path}: classID {cid} outside 0..9 ({r['slice_file_name']})")
            names[cid] = r["class"].strip().replace("_", " ")
        self.class_names = names
        chosen = parse_folds(folds, {int(r["fold"]) for r in rows})
        self.folds = sorted(chosen) if chosen else sorted({int(r["fold"]) for r in rows})
        entries = []
        for r in rows:
            fold = int(r["fold"])
            if chosen is not None and fold not in chosen:
                continue
            rel = f"fold{fold}/{r['slice_file_name']}"
            cid = int(r["classID"])
            entries.append(Entry(self.root / "audio" / rel, rel, label=cid, captions=(names[cid],)))
        self._build(entries)
