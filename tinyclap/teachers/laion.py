"""LAION CLAP (HTS-AT audio + RoBERTa text) through ``transformers.ClapModel``.

Any hub id (``laion/clap-htsat-unfused``, ``laion/clap-htsat-fused``,
``laion/larger_clap_general``, ...) or a local ``save_pretrained`` folder holding
a ClapModel and its ClapProcessor.

Front end: the checkpoint's own ``ClapFeatureExtractor`` (48 kHz, 10 s, hop 480,
64 mels), so embeddings match transformers. Two of its behaviours are random,
and we make both deterministic:

* **Long clips.** ``rand_trunc`` crops a random 10 s; ``fusion`` stacks three
  random crops. We centre-crop every clip longer than the extractor's
  ``max_length_s`` before it reaches the extractor (as
  :func:`tinyclap.audio.fit_length` does), so the extractor never draws a
  random number. Short clips keep the extractor's own padding (``repeatpad``:
  whole repeats, then zeros).
* **Fused checkpoints** (``enable_fusion``). When no clip in a batch is long,
  the extractor marks one *random* clip as "longer", and only that clip goes
  through the fusion branch, so a clip's embedding would depend on its batch
  and the RNG. We set ``is_longer`` to True for every clip: exactly what
  transformers' zero-shot pipeline and LAION's own code do for a single clip,
  and independent of the batch. The global numpy RNG is left as it was.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tinyclap._quiet import quiet_torchao_noise
from tinyclap.audio import AudioConfig
from tinyclap.errors import CheckpointError
from tinyclap.teachers.base import as_batch
from tinyclap.teachers.weights import _first_line, hub_offline, missing_hf_model, resolve_hf_model

__all__ = ["LaionClapTeacher", "LAION_LICENCE"]

LAION_LICENCE = "LAION-CLAP weights: CC0-1.0 / Apache-2.0 (see model card)"


class LaionClapTeacher:
    """A frozen transformers ``ClapModel`` behind the tinyclap :class:`Teacher` protocol."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        name: str,
        device: str | torch.device = "cpu",
        batch_size: int = 16,
        licence: str = LAION_LICENCE,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.name = name
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.processor = processor
        self.feature_extractor = processor.feature_extractor
        self.tokenizer = processor.tokenizer
        self.batch_size = int(batch_size)
        self.licence = licence
        self.dim = int(model.config.projection_dim)
        # Clips are embedded in the audio space's own temperature (audio → text logits).
        self.logit_scale = float(model.logit_scale_a.detach().exp().item())
        self.fusion = bool(getattr(model.config.audio_config, "enable_fusion", False))
        fe = self.feature_extractor
        self.max_samples = int(fe.nb_max_samples)
        self.audio_config = AudioConfig(
            sample_rate=int(fe.sampling_rate),
            clip_seconds=self.max_samples / fe.sampling_rate,
            n_fft=int(fe.fft_window_size),
            win_length=int(fe.fft_window_size),
            hop_length=int(fe.hop_length),
            n_mels=int(fe.feature_size),
            fmin=float(fe.frequency_min),
            fmax=float(fe.frequency_max),
        )

    @classmethod
    def from_pretrained(
        cls, id_or_dir: str | Path, device: str | torch.device = "cpu", batch_size: int = 16
    ) -> "LaionClapTeacher":
        """Load a hub id or a local folder (see :mod:`tinyclap.teachers.weights` for the lookup order)."""
        quiet_torchao_noise()  # transformers imports torchao when installed; drop its harmless import noise
        from transformers import ClapModel, ClapProcessor

        name = str(id_or_dir)
        source = resolve_hf_model(name)
        local = Path(source).is_dir()
        if local:
            _check_clap_folder(Path(source))
        try:
            model = ClapModel.from_pretrained(
                source, local_files_only=local or hub_offline(), dtype=torch.float32, use_safetensors=True if local else None
            )
            processor = ClapProcessor.from_pretrained(source, local_files_only=local or hub_offline())
        except OSError as err:
            if local:
                raise CheckpointError(f"{source}: not a loadable ClapModel folder ({_first_line(err)})") from None
            raise missing_hf_model(name, f"download failed: {_first_line(err)}") from None
        if Path(name).expanduser().is_dir():
            name = str(Path(name).expanduser().resolve())
        licence = _card_licence(Path(source)) if local else LAION_LICENCE
        return cls(model, processor, name=name, device=device, batch_size=batch_size, licence=licence)

    @cached_property
    def identity(self) -> str:
        """Content digest (:mod:`tinyclap.teachers.identity`): the model config and the loaded weights.

        Hashing the weights in memory covers hub ids, ``save_pretrained`` folders
        and either file format alike; it costs one pass over the weights, once.
        """
        from tinyclap.teachers.identity import content_identity, state_sha256

        return content_identity("laion", _stable_config(self.model.config.to_dict()), state_sha256(self.model.state_dict()))

    # -- audio ---------------------------------------------------------------

    @torch.inference_mode()
    def embed_audio(self, clips: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(B, S) or (S,) float32 at 48 kHz → (B, D) unit vectors (CPU, float32)."""
        x = as_batch(clips).cpu()
        if x.shape[1] > self.max_samples:
            start = (x.shape[1] - self.max_samples) // 2  # centre crop, as fit_length
            x = x[:, start : start + self.max_samples]
        out = [self._embed_audio_batch(x[i : i + self.batch_size].numpy()) for i in range(0, len(x), self.batch_size)]
        return torch.cat(out) if out else torch.zeros(0, self.dim)

    def _embed_audio_batch(self, batch: np.ndarray) -> torch.Tensor:
        state = np.random.get_state()  # the extractor may draw from the global RNG; leave it untouched
        try:
            feats = self.feature_extractor(
                list(batch), sampling_rate=self.audio_config.sample_rate, return_tensors="pt"
            )
        finally:
            np.random.set_state(state)
        kwargs: dict[str, torch.Tensor] = {
            "input_features": feats["input_features"].to(self.device, torch.float32)
        }
        if self.fusion:
            kwargs["is_longer"] = torch.ones(len(batch), 1, dtype=torch.bool, device=self.device)
        return _unit(_pooled(self.model.get_audio_features(**kwargs)))

    # -- text ----------------------------------------------------------------

    @torch.inference_mode()
    def embed_text(self, prompts: list[str]) -> torch.Tensor:
        """Prompts → (P, D) unit vectors (CPU, float32)."""
        if isinstance(prompts, str) or not prompts:
            raise ValueError("embed_text needs a non-empty list of prompt strings")
        bad = [p for p in prompts if not isinstance(p, str)]
        if bad:
            raise ValueError(f"prompts must be strings, got {type(bad[0]).__name__}: {bad[0]!r}")
        out = []
        for i in range(0, len(prompts), self.batch_size):
            tokens = self.tokenizer(
                list(prompts[i : i + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=self._max_text_tokens(),
                return_tensors="pt",
            )
            tokens = {k: v.to(self.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
            out.append(_unit(_pooled(self.model.get_text_features(**tokens))))
        return torch.cat(out)

    def _max_text_tokens(self) -> int:
        # RoBERTa positions start after the padding index, so two positions are unusable.
        positions = int(self.model.config.text_config.max_position_embeddings) - 2
        return min(int(getattr(self.tokenizer, "model_max_length", positions)), positions)

    def __repr__(self) -> str:
        return (
            f"LaionClapTeacher(name={self.name!r}, dim={self.dim}, fusion={self.fusion}, "
            f"sample_rate={self.audio_config.sample_rate}, clip_seconds={self.audio_config.clip_seconds})"
        )


def _stable_config(config: Any) -> Any:
    """A transformers config dict without the entries that name where or how it was loaded."""
    if isinstance(config, dict):
        return {
            str(k): _stable_config(v)  # str: id2label has int keys, and JSON sorts keys of one type only
            for k, v in config.items()
            if not str(k).startswith("_") and k not in ("transformers_version", "dtype", "torch_dtype")
        }
    return config


def _pooled(out: Any) -> torch.Tensor:
    """Projected features: transformers 4 returns a tensor, transformers 5 an output object."""
    if isinstance(out, torch.Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    if pooled is None and isinstance(out, (tuple, list)):
        pooled = out[1]
    if not isinstance(pooled, torch.Tensor):
        raise TypeError(f"unexpected ClapModel output {type(out).__name__}")
    return pooled


def _unit(x: torch.Tensor) -> torch.Tensor:
    # transformers 5 already normalises; transformers 4 does not: normalising twice is harmless.
    return F.normalize(x.float(), dim=-1).cpu()


def _check_clap_folder(folder: Path) -> None:
    import json

    config = folder / "config.json"
    if not config.is_file():
        raise CheckpointError(f"{folder}: no config.json (not a transformers model folder)")
    try:
        kind = json.loads(config.read_text()).get("model_type")
    except ValueError as err:
        raise CheckpointError(f"{config}: not valid JSON ({err})") from None
    if kind != "clap":
        raise CheckpointError(f"{config}: model_type is {kind!r}, expected 'clap' (a transformers ClapModel)")
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.safetensors.index.json")):
        pickles = sorted(p.name for p in folder.glob("*.bin"))
        if pickles:
            # Unpickling can run code: tinyclap reads weights from safetensors only.
            raise CheckpointError(
                f"{folder}: holds only {', '.join(pickles)} (a pickle; tinyclap loads safetensors only). Download "
                f"model.safetensors from the model's hub page into this folder, or, if you trust the file, convert it "
                f"once: python -c \"from transformers import ClapModel as M; M.from_pretrained('{folder}').save_pretrained('{folder}')\""
            )
        raise CheckpointError(f"{folder}: no model.safetensors (no weights in this ClapModel folder)")


def _card_licence(folder: Path) -> str:
    """The ``license:`` of a model card's front matter, else the LAION default line."""
    card = folder / "README.md"
    if card.is_file():
        match = re.search(r"^---\s*$(.*?)^---\s*$", card.read_text(errors="replace"), re.M | re.S)
        lic = match and re.search(r"^licen[cs]e:\s*(\S.*)$", match.group(1), re.M)
        if lic:
            return f"CLAP weights ({folder.name}): {lic.group(1).strip()} (from its model card)"
    return LAION_LICENCE
