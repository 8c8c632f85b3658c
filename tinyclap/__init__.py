"""tinyclap: zero-shot audio classification on tiny devices.

Public API (the rest lives in submodules named for their job):
``load_teacher``, ``load_student``, ``PromptBank``, ``ZeroShotClassifier``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: `import tinyclap` must not pull in torch
    import os

    from tinyclap.students import AudioStudent
    from tinyclap.teachers.base import Teacher

__version__ = "0.1.0"

__all__ = ["__version__", "load_teacher", "load_student", "PromptBank", "ZeroShotClassifier"]


def load_teacher(name_or_path: "str | os.PathLike[str]", device: str = "cpu", **options: "Any") -> "Teacher":
    """Load a frozen CLAP teacher by name or path; see :func:`tinyclap.teachers.registry.load_teacher`."""
    # Imported here so `import tinyclap` (and `tinyclap --help`) does not pull in torch.
    from tinyclap.teachers.registry import load_teacher as _load_teacher

    return _load_teacher(name_or_path, device, **options)


def load_student(path: "str | os.PathLike[str]") -> "AudioStudent":
    """Load a student checkpoint; see :func:`tinyclap.students.load_student`."""
    from tinyclap.students import load_student as _load_student  # lazy: keeps torch out of `import tinyclap`

    return _load_student(path)


def __getattr__(name: str) -> "Any":
    # Lazy re-exports (PEP 562): `tinyclap.PromptBank` without importing torch at `import tinyclap`.
    if name in ("PromptBank", "ZeroShotClassifier"):
        import importlib

        return getattr(importlib.import_module("tinyclap.bank" if name == "PromptBank" else "tinyclap.zeroshot"), name)
    raise AttributeError(f"module 'tinyclap' has no attribute {name!r}")
