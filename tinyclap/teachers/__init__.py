"""Teachers: frozen CLAP models behind one interface (:class:`~tinyclap.teachers.base.Teacher`).

``load_teacher(name_or_path, device="cpu", **options)`` is the entry point; family
modules (msclap, laion, local) are imported only when a teacher of that family loads.
"""

from __future__ import annotations

from tinyclap.teachers.base import AudioEncoder, Teacher, as_batch
from tinyclap.teachers.registry import UnknownTeacherError, known_teachers, load_teacher

__all__ = ["AudioEncoder", "Teacher", "as_batch", "load_teacher", "known_teachers", "UnknownTeacherError"]
