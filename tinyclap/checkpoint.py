"""Self-describing model files: ``NAME.safetensors`` (weights) + ``NAME.json`` (how to rebuild).

The JSON always holds ``format`` ("tinyclap"), ``kind`` (e.g. "student",
"teacher"), ``library_version`` and whatever the model needs to rebuild itself
(architecture name, dims, AudioConfig, kept latent indices, teacher id, ...).
Weights are written before the JSON, both atomically, so a JSON on disk always
points at complete weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tinyclap import __version__
from tinyclap.errors import CheckpointError
from tinyclap.io import atomic_path, read_json, write_json

__all__ = ["save_checkpoint", "load_checkpoint", "checkpoint_paths"]


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """``(weights, meta)`` paths for a checkpoint given as stem, ``.json`` or ``.safetensors``."""
    path = Path(path)
    if path.is_dir():
        candidates = sorted(path.glob("*.json"))
        if len(candidates) != 1:
            raise CheckpointError(f"{path}: a checkpoint directory must hold exactly one .json, found {len(candidates)}")
        path = candidates[0]
    if path.suffix in (".json", ".safetensors"):
        path = path.with_suffix("")
    return path.with_suffix(".safetensors"), path.with_suffix(".json")


def save_checkpoint(path: str | Path, state_dict: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write weights and metadata atomically; returns the ``.json`` path."""
    from safetensors.torch import save_file

    if "kind" not in meta:
        raise ValueError("checkpoint meta needs a 'kind'")
    weights, meta_path = checkpoint_paths(path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp))
    full = {"format": "tinyclap", "library_version": __version__, **meta, "weights": weights.name}
    write_json(meta_path, full)
    return meta_path


def load_checkpoint(path: str | Path, kind: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read ``(state_dict, meta)``; raises :class:`CheckpointError` with the reason when unusable."""
    from safetensors.torch import load_file

    weights, meta_path = checkpoint_paths(path)
    if not meta_path.is_file():
        raise CheckpointError(f"{meta_path}: no such checkpoint metadata")
    try:
        meta = read_json(meta_path)
    except ValueError as err:
        raise CheckpointError(f"{meta_path}: not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{meta_path}: not a tinyclap checkpoint (the JSON holds a {type(meta).__name__}, not an object)")
    if not isinstance(meta.get("weights", weights.name), str):
        raise CheckpointError(f"{meta_path}: 'weights' must be a file name, got {meta['weights']!r}")
    if meta.get("format") != "tinyclap":
        raise CheckpointError(f"{meta_path}: not a tinyclap checkpoint (no 'format': 'tinyclap')")
    if kind is not None and meta.get("kind") != kind:
        raise CheckpointError(f"{meta_path}: is a {meta.get('kind')!r} checkpoint, expected {kind!r}")
    weights = meta_path.with_name(meta.get("weights", weights.name))
    if not weights.is_file():
        raise CheckpointError(f"{weights}: weights file missing")
    try:
        state = load_file(str(weights))
    except Exception as err:  # noqa: BLE001 - safetensors raises several types
        raise CheckpointError(f"{weights}: unreadable weights ({err})") from None
    return state, meta
