"""Reading dataset metadata tables (csv/tsv) with errors that name the file."""

from __future__ import annotations

import csv
from pathlib import Path

from tinyclap.errors import DataError

__all__ = ["read_rows"]


def read_rows(
    path: Path, required: tuple[str, ...], delimiter: str = ",", integers: tuple[str, ...] = ()
) -> list[dict[str, str]]:
    """Rows of a metadata csv, checking the columns we rely on are there (and that ``integers`` hold integers)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, delimiter=delimiter)
            rows = list(reader)
            header = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: cannot read metadata ({err})") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {header}")
    if not rows:
        raise DataError(f"{path}: no rows")
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        for column in integers:
            try:
                int(row[column])
            except (TypeError, ValueError):
                raise DataError(f"{path}, line {line}: column {column!r} must be an integer, got {row[column]!r}") from None
    return rows
