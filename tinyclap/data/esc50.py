"""ESC-50 (and its ESC-10 subset): 5 s environmental sounds in 50 classes, 5 folds.

Layout (the official repository's)::

    ROOT/meta/esc50.csv    filename,fold,target,category,esc10,src_file,take
    ROOT/audio/<filename>  whatever the ``filename`` column names (.wav upstream,
                           .ogg in the shared ESC-10 copy)

Class names come from ``category`` with ``_`` replaced by a space ("crackling
fire"), ordered by ``target``. Labels are indices into ``class_names``:

- full ESC-50: the label is the official ``target`` (0..49);
- ``esc10_only=True`` (or a csv that only holds some classes, as the shared
  ESC-10 copy does): ``class_names`` holds the classes present, ordered by
  their ESC-50 ``target``, and the label is the position in that list (0..9),
  **not** the ESC-50 id. ``esc50_target(label)`` maps back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from tinyclap.audio import AudioConfig
from tinyclap.data.base import AudioDataset, Entry
from tinyclap.data.tables import read_rows
from tinyclap.errors import DataError

__all__ = ["ESC50", "parse_folds"]


def parse_folds(folds: Iterable[int] | int | str | None, valid: Iterable[int]) -> set[int] | None:
    """Normalise a fold selection ("1,2", 3, [1, 2], None = all) and check it against ``valid``."""
    if folds is None:
        return None
    text = folds
    if isinstance(folds, str):
        folds = [f.strip() for f in folds.replace("+", ",").split(",") if f.strip()]
    elif isinstance(folds, int):
        folds = [folds]
    try:
        chosen = {int(f) for f in folds}
    except (TypeError, ValueError):
        raise DataError(f"folds: expected fold numbers such as 1,2, got {text!r}") from None
    bad = chosen - set(valid)
    if bad:
        raise DataError(f"no such fold(s) {sorted(bad)}; this dataset has folds {sorted(set(valid))}")
    return chosen


class ESC50(AudioDataset):
    """ESC-50 / ESC-10 at ``audio_config``: one 5 s clip per file (padded/cropped to fit).

    ``folds`` selects official folds (1..5). ``target="label"`` (default) yields
    class indices; ``.captions(i)`` gives the class name.
    """

    name = "esc50"

    def __init__(
        self,
        root: str | Path,
        audio_config: AudioConfig | None = None,
        folds: Iterable[int] | int | str | None = None,
        esc10_only: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("target", "label")
        super().__init__(audio_config, **kwargs)
        self.root = Path(root)
        csv_path = self.root / "meta" / "esc50.csv"
        if not csv_path.is_file():
            raise DataError(f"{self.root}: not an ESC-50 folder (missing meta/esc50.csv)")
        rows = read_rows(csv_path, ("filename", "fold", "target", "category"), integers=("fold", "target"))
        if esc10_only:
            if "esc10" not in rows[0]:
                raise DataError(f"{csv_path}: esc10_only needs the 'esc10' column")
            rows = [r for r in rows if r["esc10"].strip().lower() in ("true", "1")]
        chosen = parse_folds(folds, {int(r["fold"]) for r in rows})
        # Class names: every class present in the (ESC-10-filtered) csv, by ESC-50 target.
        by_target: dict[int, str] = {}
        for r in rows:
            by_target.setdefault(int(r["target"]), r["category"].strip().replace("_", " "))
        self.esc50_targets = sorted(by_target)
        self.class_names = [by_target[t] for t in self.esc50_targets]
        index = {t: k for k, t in enumerate(self.esc50_targets)}
        entries = [
            Entry(
                self.root / "audio" / r["filename"],
                r["filename"],
                label=index[int(r["target"])],
                captions=(by_target[int(r["target"])],),
            )
            for r in rows
            if chosen is None or int(r["fold"]) in chosen
        ]
        self.folds = sorted(chosen) if chosen else sorted({int(r["fold"]) for r in rows})
        self._build(entries)

    def esc50_target(self, label: int) -> int:
        """The official ESC-50 class id of label index ``label``."""
        return self.esc50_targets[label]
