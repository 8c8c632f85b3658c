"""Errors a user can act on. The CLI prints them as one line, without a traceback."""

from __future__ import annotations


class TinyClapError(Exception):
    """Base class: something the user can fix (bad input, missing file, impossible budget)."""


class CheckpointError(TinyClapError, ValueError):
    """A checkpoint or saved file that is missing, corrupt, or does not fit the model."""


class MissingWeightsError(TinyClapError, FileNotFoundError):
    """Pretrained weights that are not on disk and cannot be downloaded here."""


class BudgetError(TinyClapError, ValueError):
    """A flash / RAM / MAC budget that no configuration can meet."""


class DataError(TinyClapError, ValueError):
    """A dataset root or manifest that does not have the expected layout."""


class DivergedError(TinyClapError, ArithmeticError):
    """Training produced a NaN or infinite loss or metric; the last good checkpoint was kept."""
