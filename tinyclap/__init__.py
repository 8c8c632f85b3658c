"""tinyclap: zero-shot audio classification on tiny devices.

Public API (the rest lives in submodules named for their job):
``load_teacher``, ``load_student``, ``PromptBank``, ``ZeroShotClassifier``.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
