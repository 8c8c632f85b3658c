"""Zero-shot classification: an audio encoder (student or teacher) plus a PromptBank.

    clf = ZeroShotClassifier(load_student("student.json"), PromptBank.load("bank.npz"))
    clf.predict_labels([wave])           # → ["dog"]
    clf.topk(clip_batch, k=3)            # → [[("dog", 0.91), ("rooster", 0.04), ...], ...]

Logits are ``bank.logit_scale · cos(audio, text)``, probabilities their softmax.

Dims: a pruned student outputs k dims whose teacher indices are
``student.kept_dims``. A full-D bank is sliced to those dims; a pruned bank fed
to a full-D encoder (the teacher) slices the encoder's output instead. Anything
else that does not line up raises :class:`DimMismatchError`.

Long audio: each clip is cut into the encoder's clip length with
:func:`tinyclap.audio.split_windows` (hop = ``window_hop`` seconds or the clip
length), every window is embedded, and the clip's embedding is the
re-normalised mean of its window embeddings (``aggregate="embedding"``, the
default: one vector per clip, exactly what a device keeps as a running sum).
``aggregate="logits"`` averages per-window logits instead; since window
embeddings are unit vectors this is the same direction scaled by the mean
vector's norm, so predictions agree and only the probabilities are softer.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import numpy as np
import torch

from tinyclap.audio import load_audio, split_windows
from tinyclap.bank import BankError, PromptBank
from tinyclap.errors import TinyClapError
from tinyclap.teachers.base import as_batch

__all__ = [
    "ZeroShotClassifier",
    "DimMismatchError",
    "Aggregate",
    "group_mean",
    "load_encoder",
    "is_student_checkpoint",
    "teacher_mismatch",
]

Aggregate = Literal["embedding", "logits"]


class DimMismatchError(TinyClapError, ValueError):
    """The encoder's embedding dims and the bank's cannot be matched."""


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def group_mean(x: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
    """Mean of the rows of ``x`` (N, K) per group: ``owner`` (N,) holds group ids 0..G-1 → (G, K)."""
    n = int(owner.max()) + 1
    total = torch.zeros(n, x.shape[1], dtype=x.dtype).index_add_(0, owner, x)
    count = torch.bincount(owner, minlength=n).to(x.dtype).unsqueeze(1)
    return total / count


def _shown(name: str, identity: str | None) -> str:
    return f"{name!r} [{identity}]" if identity else repr(name)


def teacher_mismatch(meta: dict[str, Any], bank: PromptBank) -> str | None:
    """A warning when a student's checkpoint ``meta`` names another teacher than ``bank``'s (None if same/unknown).

    Compared with :func:`~tinyclap.teachers.identity.same_teacher`: by identity
    when both record one (a moved run folder still matches; other weights under
    the same name do not), else by name or the identity of the ``local:`` files
    a name points at.
    """
    from tinyclap.teachers.identity import same_teacher

    name, identity = meta.get("teacher"), meta.get("teacher_id")
    if not name or not bank.teacher or same_teacher(str(name), identity, bank.teacher, bank.teacher_id):
        return None
    both = identity and bank.teacher_id  # show identities when they decided (names may be equal)
    return (
        f"student was distilled from {_shown(str(name), identity if both else None)} but the bank was built by "
        f"{_shown(bank.teacher, bank.teacher_id if both else None)}: embeddings of different teachers do not share a space"
    )


class ZeroShotClassifier:
    """Classify waveforms into ``bank.labels`` with any AudioEncoder (``audio_config`` + ``embed_audio``)."""

    def __init__(
        self,
        encoder: Any,
        bank: PromptBank,
        batch_size: int = 32,
        aggregate: Aggregate = "embedding",
        window_hop: float | None = None,
    ):
        if not hasattr(encoder, "embed_audio") or not hasattr(encoder, "audio_config"):
            raise TypeError(f"{type(encoder).__name__} is not an audio encoder (needs audio_config and embed_audio)")
        if aggregate not in ("embedding", "logits"):
            raise ValueError(f"aggregate must be 'embedding' or 'logits', got {aggregate!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.encoder = encoder
        self.audio_config = encoder.audio_config
        self.batch_size = int(batch_size)
        self.aggregate: Aggregate = aggregate
        self.window_hop = window_hop
        self.bank, self._encoder_dims = self._match(encoder, bank)
        self._text = _unit(self.bank.tensor())
        mismatch = teacher_mismatch(getattr(encoder, "meta", None) or {}, bank)
        if mismatch:
            # A record can be incomplete (old checkpoints and banks keep only names), so warn rather than refuse.
            warnings.warn(mismatch, stacklevel=2)

    # ---------------------------------------------------------------- dims
    @staticmethod
    def _encoder_dim(encoder: Any) -> int | None:
        dim = getattr(encoder, "dim", None)
        return int(dim) if dim is not None else None

    @classmethod
    def _match(cls, encoder: Any, bank: PromptBank) -> tuple[PromptBank, list[int] | None]:
        """Return the bank to use and, if the encoder's output must be sliced, which columns."""
        enc_dim = cls._encoder_dim(encoder)
        enc_kept = getattr(encoder, "kept_dims", None)
        if enc_kept is not None:
            enc_kept = [int(d) for d in enc_kept]
            try:
                return bank.select_teacher_dims(enc_kept), None
            except BankError as err:
                raise DimMismatchError(f"encoder keeps {len(enc_kept)} dims that {bank!r} cannot provide: {err}") from None
        if enc_dim is None or enc_dim == bank.dim:
            # Shapes agree (or the encoder does not say its dim): checked again on the first batch.
            return bank, None
        if bank.kept_dims is not None and enc_dim == bank.source_dim:
            return bank, list(bank.kept_dims)
        raise DimMismatchError(
            f"encoder outputs {enc_dim} dims but {bank!r} has {bank.dim}"
            + (f" (pruned from {bank.source_dim})" if bank.kept_dims is not None else "")
        )

    def with_prompts(
        self,
        teacher: Any,
        labels: Sequence[str],
        templates: str | Path | Sequence[str] | None = None,
    ) -> "ZeroShotClassifier":
        """A classifier for new labels/prompts, embedded now by ``teacher``'s text tower.

        The new bank is restricted to the dims this classifier's bank keeps, so a
        pruned student works with run-time prompts too.
        """
        bank = PromptBank.build(teacher, labels, templates)
        if self.bank.kept_dims is not None:
            bank = bank.select_teacher_dims(self.bank.kept_dims)
        return ZeroShotClassifier(self.encoder, bank, self.batch_size, self.aggregate, self.window_hop)

    # ------------------------------------------------------------ embedding
    def _as_clips(self, clips: Any) -> list[np.ndarray] | torch.Tensor:
        """A batch tensor when every clip is exactly one window, else a list of 1-D waveforms."""
        n = self.audio_config.clip_samples
        if isinstance(clips, (list, tuple)):
            waves = [np.asarray(c.detach().cpu() if isinstance(c, torch.Tensor) else c, dtype=np.float32) for c in clips]
            for w in waves:
                if w.ndim != 1:
                    raise ValueError(f"each clip in a list must be 1-D (S,), got shape {w.shape}")
            return waves
        batch = as_batch(clips)
        if batch.shape[1] == n:
            return batch
        return [w for w in batch.numpy()]

    def _windows(self, waves: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        n = self.audio_config.clip_samples
        hop = int(round(self.window_hop * self.audio_config.sample_rate)) if self.window_hop else None
        pieces, owner = [], []
        for i, w in enumerate(waves):
            if w.size == 0:
                raise ValueError(f"clip {i} is empty")
            win = split_windows(w, n, hop)
            pieces.append(win)
            owner.extend([i] * len(win))
        return np.concatenate(pieces), np.asarray(owner)

    def _embed_windows(self, windows: torch.Tensor | np.ndarray) -> torch.Tensor:
        out = []
        for i in range(0, len(windows), self.batch_size):
            emb = torch.as_tensor(self.encoder.embed_audio(windows[i : i + self.batch_size])).float().cpu()
            if self._encoder_dims is not None:
                if emb.shape[1] != self.bank.source_dim:
                    raise DimMismatchError(f"encoder returned {emb.shape[1]} dims, expected {self.bank.source_dim}")
                emb = emb[:, self._encoder_dims]
            elif emb.shape[1] != self.bank.dim:
                raise DimMismatchError(f"encoder returned {emb.shape[1]} dims but the bank has {self.bank.dim}")
            out.append(_unit(emb))
        return torch.cat(out)

    def _window_scores(self, clips: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-window unit embeddings and each window's clip index (None: one window per clip)."""
        data = self._as_clips(clips)
        if isinstance(data, torch.Tensor):
            return self._embed_windows(data), None
        windows, owner = self._windows(data)
        return self._embed_windows(windows), torch.from_numpy(owner)

    def embed(self, clips: Any) -> torch.Tensor:
        """Clip embeddings (B, k) in the bank's dims, unit norm (windows averaged, re-normalised)."""
        emb, owner = self._window_scores(clips)
        return emb if owner is None else _unit(group_mean(emb, owner))

    # ------------------------------------------------------------ scoring
    def logits_from_embeddings(self, emb: torch.Tensor) -> torch.Tensor:
        """``logit_scale · cos`` for unit embeddings already in the bank's dims → (B, C)."""
        return self.bank.logit_scale * (_unit(emb.float()) @ self._text.T)

    def logits(self, clips: Any) -> torch.Tensor:
        """(B, C) logits for a batch of clips (see the module docstring for long audio)."""
        emb, owner = self._window_scores(clips)
        if owner is None:
            return self.logits_from_embeddings(emb)
        if self.aggregate == "logits":
            return group_mean(self.logits_from_embeddings(emb), owner)
        return self.logits_from_embeddings(group_mean(emb, owner))

    def predict_proba(self, clips: Any) -> np.ndarray:
        """(B, C) class probabilities: softmax of the logits."""
        return torch.softmax(self.logits(clips), dim=-1).numpy()

    def predict(self, clips: Any) -> np.ndarray:
        """(B,) predicted class indices into ``bank.labels``."""
        return self.logits(clips).argmax(dim=-1).numpy()

    def predict_labels(self, clips: Any) -> list[str]:
        """Predicted label names, one per clip."""
        return [self.bank.labels[i] for i in self.predict(clips)]

    def topk(self, clips: Any, k: int = 5) -> list[list[tuple[str, float]]]:
        """The ``k`` most probable ``(label, probability)`` pairs per clip, best first."""
        probs = torch.softmax(self.logits(clips), dim=-1)
        k = max(1, min(int(k), probs.shape[1]))
        values, index = probs.topk(k, dim=-1)
        return [
            [(self.bank.labels[j], float(v)) for v, j in zip(vrow.tolist(), irow.tolist())]
            for vrow, irow in zip(values, index)
        ]

    def classify_files(self, paths: Iterable[str | Path], k: int = 5) -> list[list[tuple[str, float]]]:
        """Top-``k`` for sound files of any length (each read at the encoder's rate, windowed)."""
        from tinyclap.audio import min_clip_samples

        waves = [load_audio(p, self.audio_config.sample_rate, min_samples=min_clip_samples(self.audio_config)) for p in paths]
        return self.topk(waves, k=k)


def is_student_checkpoint(ref: str | Path) -> bool:
    """True when ``ref`` names a tinyclap checkpoint of kind "student" (stem, .json, .safetensors or dir)."""
    from tinyclap.checkpoint import checkpoint_paths
    from tinyclap.errors import CheckpointError
    from tinyclap.io import read_json

    path = Path(ref)
    if not (path.exists() or path.with_suffix(".json").exists()):
        return False
    try:
        _, meta_path = checkpoint_paths(path)
        meta = read_json(meta_path) if meta_path.is_file() else None
        return isinstance(meta, dict) and meta.get("kind") == "student"
    except (CheckpointError, ValueError, OSError):
        return False


def load_encoder(ref: str | Path, **teacher_options: Any) -> Any:
    """Any model kind as an AudioEncoder: what ``--model`` of ``tinyclap eval`` accepts.

    A student checkpoint (``load_student``); an exported model, i.e. an
    ``.onnx`` / ``.tflite`` next to its ``report.json`` or an export folder
    (:func:`tinyclap.export.encoder.exported_model`); anything else a teacher
    (``load_teacher``: registry name, ``local:PATH``, LAION folder).
    """
    if is_student_checkpoint(ref):
        from tinyclap.students import load_student

        return load_student(ref)
    from tinyclap.export.encoder import exported_model

    exported = exported_model(ref)
    if exported is not None:
        return exported.load()
    from tinyclap.teachers.registry import load_teacher

    return load_teacher(str(ref), **teacher_options)
