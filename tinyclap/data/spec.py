"""Dataset specs: one string names a dataset, its root and its options (for the CLI).

Syntax::

    NAME[:ROOT][?KEY=VALUE[&KEY=VALUE...]]

Examples::

    esc50:/data/ESC-50                      all five folds
    esc50:/data/ESC-50?folds=1,2,3          folds 1-3 (comma-separated)
    esc10:/data/ESC-50                      the ESC-10 subset (labels 0..9)
    us8k:/data/UrbanSound8K?folds=10
    tut17:/data/TUT-acoustic-scenes-2017-development?split=evaluate&fold=1
    clotho:/data/clotho?split=evaluation
    audiocaps:/data/audiocaps?split=train
    macs:/data/MACS
    fsd50k:/data/FSD50K?split=eval
    manifest:/data/list.csv                 CSV or JSONL: path[, caption][, label]
    folder:/data/my_sounds                  labels from sub-folder names
    synth                                   1000 generated sounds, seed 0
    synth?n=200&seed=3&exclude=bell,dog bark

Values are parsed as int, float, true/false, or left as text (lists stay
comma-separated text; each dataset splits them); an option whose type does not fit
(``synth?n=abc``) is a :class:`~tinyclap.errors.DataError` naming it. Options every dataset takes:
``target=label|caption|none``, ``strict=true``, ``hop=SECONDS`` (window hop of
long-file corpora), ``pad=repeat|zero``. Keyword arguments to
:func:`open_dataset` override options in the spec. Unknown names and options
raise :class:`~tinyclap.errors.DataError` listing what is accepted.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any
from urllib.parse import unquote

from tinyclap.audio import AudioConfig
from tinyclap.data.base import AudioDataset
from tinyclap.errors import DataError

__all__ = ["open_dataset", "parse_spec", "DATASETS"]

# name -> (module, class, needs a root, fixed options)
DATASETS: dict[str, tuple[str, str, bool, dict[str, Any]]] = {
    "esc50": ("tinyclap.data.esc50", "ESC50", True, {}),
    "esc10": ("tinyclap.data.esc50", "ESC50", True, {"esc10_only": True}),
    "us8k": ("tinyclap.data.us8k", "UrbanSound8K", True, {}),
    "tut17": ("tinyclap.data.tut17", "TUT17", True, {}),
    "clotho": ("tinyclap.data.captions", "Clotho", True, {}),
    "audiocaps": ("tinyclap.data.captions", "AudioCaps", True, {}),
    "macs": ("tinyclap.data.captions", "MACS", True, {}),
    "fsd50k": ("tinyclap.data.captions", "FSD50K", True, {}),
    "manifest": ("tinyclap.data.captions", "Manifest", True, {}),
    "folder": ("tinyclap.data.folder", "Folder", True, {}),
    "synth": ("tinyclap.data.synth", "Synth", False, {}),
}

_ALIASES = {"hop": "hop_seconds", "esc10": "esc10_only", "cache": "index_cache"}
_COMMON = {"target", "strict", "hop_seconds", "pad", "windows", "index_cache"}


def _value(text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_spec(spec: str) -> tuple[str, str | None, dict[str, Any]]:
    """``"esc50:/d?folds=1,2"`` → ``("esc50", "/d", {"folds": "1,2"})``."""
    if not spec or not spec.strip():
        raise DataError("empty dataset spec")
    head, _, query = spec.strip().partition("?")
    name, _, root = head.partition(":")
    name = name.strip().lower()
    options: dict[str, Any] = {}
    for part in filter(None, query.split("&")):
        key, eq, val = part.partition("=")
        if not eq:
            raise DataError(f"dataset spec {spec!r}: option {part!r} needs KEY=VALUE")
        key = _ALIASES.get(key.strip(), key.strip())
        options[key] = _value(unquote(val))
    return name, (root or None), options


def open_dataset(spec: str, audio_config: AudioConfig | None = None, **kw: Any) -> AudioDataset:
    """Build the dataset a spec string names, at ``audio_config`` (see the module docstring)."""
    name, root, options = parse_spec(spec)
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r} in spec {spec!r}; known: {', '.join(DATASETS)}")
    module, cls_name, needs_root, fixed = DATASETS[name]
    cls = getattr(importlib.import_module(module), cls_name)
    options = {**fixed, **options, **kw}
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "args", "kwargs"}
    accepted |= _COMMON
    unknown = set(options) - accepted
    if unknown:
        raise DataError(
            f"dataset spec {spec!r}: unknown option(s) {sorted(unknown)}; {name} accepts {sorted(accepted - {'root', 'audio_config'})}"
        )
    _check_types(spec, cls, {k: v for k, v in options.items() if k not in kw})
    if needs_root:
        if not root:
            raise DataError(f"dataset spec {spec!r}: {name} needs a root, as in {name}:PATH")
        return cls(root, audio_config=audio_config, **options)
    if root:
        raise DataError(f"dataset spec {spec!r}: {name} takes no root (options go after '?')")
    return cls(audio_config=audio_config, **options)


# Types of the options every dataset takes (AudioDataset's keyword arguments).
_COMMON_TYPES: dict[str, type] = {"strict": bool, "windows": bool, "hop_seconds": float}


def _expected_type(cls: type, key: str) -> type | None:
    """int, float or bool when the dataset's ``key`` parameter is one of those (from its default or hint)."""
    if key in _COMMON_TYPES:
        return _COMMON_TYPES[key]
    param = inspect.signature(cls.__init__).parameters.get(key)
    if param is None:
        return None
    if isinstance(param.default, bool):
        return bool
    if isinstance(param.default, (int, float)) and param.default is not None:
        return type(param.default)
    hint = str(param.annotation).replace(" ", "")
    for name, kind in (("bool", bool), ("int", int), ("float", float)):
        if hint in (name, f"{name}|None", f"Optional[{name}]"):
            return kind
    return None


def _check_types(spec: str, cls: type, options: dict[str, Any]) -> None:
    """Refuse ``synth?n=abc`` here, naming the option, instead of failing deep inside the dataset."""
    words = {bool: "true or false", int: "an integer", float: "a number"}
    for key, value in options.items():
        kind = _expected_type(cls, key)
        if kind is None:
            continue
        ok = isinstance(value, bool) if kind is bool else (
            isinstance(value, int) and not isinstance(value, bool)
            if kind is int
            else isinstance(value, (int, float)) and not isinstance(value, bool)
        )
        if not ok:
            shown = next((a for a, full in _ALIASES.items() if full == key and f"{a}=" in spec), key)
            raise DataError(f"dataset spec {spec!r}: option {shown} must be {words[kind]}, got {value!r}")
