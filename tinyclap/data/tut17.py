"""TUT Acoustic Scenes 2017 (DCASE 2017 task 1): 10 s stereo scenes in 15 classes.

Layouts (development and evaluation packages)::

    ROOT/audio/<id>.wav                         10 s, 44.1 kHz, stereo (averaged to mono)
    ROOT/meta.txt                               filename<TAB>scene_label[<TAB>identifier]
    ROOT/evaluation_setup/fold<N>_train.txt     filename<TAB>scene_label      (development)
    ROOT/evaluation_setup/fold<N>_evaluate.txt  filename<TAB>scene_label      (development)
    ROOT/evaluation_setup/fold<N>_test.txt      filename                      (development)
    ROOT/evaluation_setup/test.txt              filename                      (evaluation)

``filename`` is relative to ROOT (``audio/a001_0_10.wav``); a bare file name is
looked up in ``ROOT/audio`` too. ``split`` is ``"evaluate"`` (default),
``"train"``, ``"test"`` (the evaluate files, labels taken from ``meta.txt``
where it has them) or ``"meta"`` (everything ``meta.txt`` lists). For a split
the evaluation package has without folds, ``evaluation_setup/<split>.txt`` is
read.

Class names are the 15 official scenes in alphabetical (DCASE) order with
``_`` → space ("city center", "cafe/restaurant"); labels index that list, so
they agree across splits and packages. A label outside it is an error.

Windows: each scene is cut into deterministic clip-length windows (two 5 s
windows at the default AudioConfig), ids ``"audio/a001_0_10.wav#0"`` and ``#1``.
A scene's prediction aggregates its windows::

    scores = ...  # (len(ds), C) per-window scores, in dataset order
    per_file, files = aggregate_windows(scores, ds.groups())
    labels = [ds.group_labels()[k] for k in files]
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from tinyclap.audio import AudioConfig
from tinyclap.data.base import AudioDataset, Entry
from tinyclap.errors import DataError

__all__ = ["TUT17", "TUT17_SCENES"]

TUT17_SCENES = [
    "beach",
    "bus",
    "cafe/restaurant",
    "car",
    "city_center",
    "forest_path",
    "grocery_store",
    "home",
    "library",
    "metro_station",
    "office",
    "park",
    "residential_area",
    "train",
    "tram",
]


def _read_list(path: Path) -> list[tuple[str, str | None]]:
    """(filename, scene label or None) per non-empty line of a TUT list file."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.reader(fh, delimiter="\t") if r and r[0].strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read ({err})") from None
    if not rows:
        raise DataError(f"{path}: empty list")
    return [(r[0].strip(), r[1].strip() if len(r) > 1 and r[1].strip() else None) for r in rows]


class TUT17(AudioDataset):
    """TUT Acoustic Scenes 2017, one split of one fold, cut into clip-length windows."""

    name = "tut17"

    def __init__(
        self,
        root: str | Path,
        audio_config: AudioConfig | None = None,
        split: str = "evaluate",
        fold: int = 1,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("target", "label")
        kwargs.setdefault("windows", True)
        super().__init__(audio_config, **kwargs)
        self.root = Path(root)
        self.split, self.fold = split, int(fold)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: no such TUT17 folder")
        meta_path = self.root / "meta.txt"
        meta = dict(_read_list(meta_path)) if meta_path.is_file() else {}
        if split == "meta":
            if not meta:
                raise DataError(f"{self.root}: split 'meta' needs meta.txt")
            listing = list(meta.items())
        else:
            setup = self.root / "evaluation_setup"
            candidates = [setup / f"fold{self.fold}_{split}.txt", setup / f"{split}.txt"]
            found = next((p for p in candidates if p.is_file()), None)
            if found is None:
                raise DataError(
                    f"{self.root}: no list for split {split!r} fold {self.fold} "
                    f"(looked for {', '.join(str(p.relative_to(self.root)) for p in candidates)})"
                )
            listing = _read_list(found)
        self.class_names = [s.replace("_", " ") for s in TUT17_SCENES]
        index = {s: k for k, s in enumerate(TUT17_SCENES)}
        entries = []
        for name, scene in listing:
            scene = scene or meta.get(name)
            if scene is not None and scene not in index:
                raise DataError(f"{self.root}: unknown scene label {scene!r} for {name}")
            path = self.root / name
            if not path.exists() and (self.root / "audio" / name).exists():
                path, name = self.root / "audio" / name, f"audio/{name}"
            label = index[scene] if scene is not None else None
            entries.append(Entry(path, name, label=label, captions=(self.class_names[label],) if label is not None else ()))
        self._build(entries)
