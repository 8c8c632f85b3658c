"""Teacher names and paths → a loaded :class:`~tinyclap.teachers.base.Teacher`.

=====================================  =========================================
name or path                            loads
=====================================  =========================================
``msclap-2022`` / ``msclap-2023``      Microsoft CLAP (``checkpoint=``, ``text_model=``)
``PATH.pth`` with ``version=``         Microsoft CLAP from that file
``laion/...`` or any ``owner/name``    transformers ClapModel from the hub (cache)
a folder with a ClapModel config.json  transformers ClapModel from disk
``local:PATH``, or a checkpoint whose  a CLAP trained with ``tinyclap pretrain``
``.json`` has ``kind: "teacher"``
=====================================  =========================================

Family modules are imported only when used, so this module stays light and
works while a family's dependencies are missing. Every load prints the
teacher's licence line to stderr (``quiet=True`` silences it); it is also
``teacher.licence``, which checkpoints store.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tinyclap.errors import TinyClapError
from tinyclap.teachers.base import Teacher
from tinyclap.teachers.weights import FILE_SUFFIXES, resolve_msclap_weights

__all__ = ["load_teacher", "known_teachers", "UnknownTeacherError"]

MSCLAP_NAMES = {"msclap-2022": "2022", "msclap-2023": "2023"}
LAION_EXAMPLES = (
    "laion/clap-htsat-unfused",
    "laion/clap-htsat-fused",
    "laion/larger_clap_general",
    "laion/larger_clap_music_and_speech",
    "laion/larger_clap_music",
)


class UnknownTeacherError(TinyClapError, ValueError):
    """A teacher name that is neither registered nor a usable path."""


def known_teachers() -> list[str]:
    """Names :func:`load_teacher` understands (hub ids: any ``owner/name`` ClapModel)."""
    return [*MSCLAP_NAMES, *LAION_EXAMPLES, "local:PATH", "PATH.pth (with version=)", "DIR (ClapModel folder)"]


def load_teacher(name_or_path: str | Path, device: str = "cpu", **options: Any) -> Teacher:
    """Load a frozen teacher by registry name, hub id or path.

    Options: ``checkpoint=`` / ``text_model=`` / ``batch_size=`` and
    :func:`~tinyclap.teachers.msclap.build_msclap` widths (MS-CLAP), ``version=``
    (a ``.pth`` path), ``batch_size=`` (LAION), ``text_model=`` (local: where the
    text tower is when the recorded one is not on this machine), ``quiet=True``
    (no licence line).
    Raises :class:`UnknownTeacherError` listing the known names, or
    :class:`~tinyclap.errors.MissingWeightsError` saying what to download.
    """
    quiet = bool(options.pop("quiet", False))
    _check_common_options(device, options)
    teacher = _dispatch(str(name_or_path), device, options)
    if not quiet:
        print(f"tinyclap: teacher {teacher.name}: {teacher.licence}", file=sys.stderr)
    return teacher


def _check_common_options(device: Any, options: dict[str, Any]) -> None:
    """``batch_size`` and ``device`` as the user gave them (``--teacher-opt batch_size=abc``), named when wrong."""
    import torch

    if "batch_size" in options:
        value = options["batch_size"]
        try:
            number = int(str(value).strip()) if not isinstance(value, bool) else None
        except ValueError:
            number = None
        if number is None or number < 1:
            raise UnknownTeacherError(f"teacher option batch_size must be a positive integer, got {value!r}")
        options["batch_size"] = number
    try:
        torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise UnknownTeacherError(f"teacher device {device!r} is not a torch device (e.g. cpu, cuda, cuda:1, mps)") from None


def _dispatch(name: str, device: str, options: dict[str, Any]) -> Teacher:
    if name in MSCLAP_NAMES:
        return _msclap(name, MSCLAP_NAMES[name], device, options)
    if name.startswith("local:"):
        return _local(Path(name[len("local:") :]).expanduser(), device, options)
    path = Path(name).expanduser()
    if path.suffix in (".pth", ".pt"):
        version = options.pop("version", None)
        if version is None:
            raise UnknownTeacherError(f"{name}: an MS-CLAP .pth needs version='2022' or '2023' (--clap-version)")
        version = str(version)
        if version not in MSCLAP_NAMES.values():
            raise UnknownTeacherError(f"{name}: version must be '2022' or '2023', got {version!r}")
        if "checkpoint" in options:
            raise UnknownTeacherError(f"{name}: give the .pth either as the name or as checkpoint=, not both")
        return _msclap(name, version, device, {**options, "checkpoint": path})
    kind, target = _path_kind(path)
    if kind == "clap":
        return _laion(name, device, options)
    if kind == "teacher":
        return _local(target, device, options)
    if kind is not None:
        raise UnknownTeacherError(f"{name}: {kind}; known teachers: {', '.join(known_teachers())}")
    if name.count("/") == 1 and not name.startswith((".", "/", "~")) and path.suffix not in FILE_SUFFIXES:
        return _laion(name, device, options)  # a hub id: resolved through the hub cache
    raise UnknownTeacherError(
        f"unknown teacher {name!r}: not a registered name or an existing path. "
        f"Known teachers: {', '.join(known_teachers())}"
    )


def _path_kind(path: Path) -> tuple[str | None, Path]:
    """``("clap" | "teacher", path to load)``, ``(reason it is unusable, path)``, or ``(None, path)``
    when nothing is there."""
    if path.is_dir():
        config = path / "config.json"
        if config.is_file():
            model_type = _read_json(config).get("model_type")
            if model_type == "clap":
                return "clap", path
            return f"config.json has model_type {model_type!r}, not a ClapModel ('clap')", path
        # A `tinyclap pretrain` output folder: its one teacher checkpoint, whatever else it holds.
        teachers = [m for m in sorted(path.glob("*.json")) if _read_json(m).get("kind") == "teacher"]
        if len(teachers) == 1:
            return "teacher", teachers[0]
        if teachers:
            listed = ", ".join(m.name for m in teachers)
            return f"a folder with {len(teachers)} teacher checkpoints ({listed}): name one", path
        return "a folder with neither a ClapModel config.json nor a tinyclap teacher .json", path
    meta = path.with_suffix(".json") if path.suffix in ("", ".safetensors") else path
    if meta.suffix == ".json" and meta.is_file():
        data = _read_json(meta)
        if not data:
            return "not a tinyclap checkpoint (its JSON is not an object with 'format': 'tinyclap')", meta
        kind = data.get("kind")
        if kind == "teacher":
            return "teacher", meta
        return f"a tinyclap {kind!r} checkpoint, not a teacher (kind 'teacher')", meta
    if path.exists():
        return "not a teacher checkpoint (.json with kind 'teacher', .pth, or a ClapModel folder)", path
    return None, path


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UnknownTeacherError(f"{path}: unreadable JSON ({err})") from None
    return data if isinstance(data, dict) else {}


def _check_options(name: str, options: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(options) - allowed)
    if extra:
        raise UnknownTeacherError(f"{name}: unexpected option(s) {extra}; this teacher takes {sorted(allowed) or 'none'}")


def _msclap(name: str, version: str, device: str, options: dict[str, Any]) -> Teacher:
    # Resolve the file here so a missing one fails with the download hint before anything heavy loads.
    checkpoint = resolve_msclap_weights(version, options.pop("checkpoint", None))
    from tinyclap.teachers.msclap import load_msclap

    # text_model, batch_size and (for tests / custom sizes) build_msclap's widths pass through.
    return load_msclap(version, checkpoint, device=device, **options)


def _laion(name: str, device: str, options: dict[str, Any]) -> Teacher:
    _check_options(name, options, {"batch_size"})
    from tinyclap.teachers.laion import LaionClapTeacher

    return LaionClapTeacher.from_pretrained(name, device=device, **options)


def _local(path: Path, device: str, options: dict[str, Any]) -> Teacher:
    _check_options(str(path), options, {"text_model"})
    if path.is_dir():
        kind, target = _path_kind(path)
        if kind != "teacher":
            raise UnknownTeacherError(f"local:{path}: {kind}")
        path = target
    from tinyclap.teachers.local import load_local

    return load_local(path, device=device, **options)
