"""PromptBank: the class prompts' text embeddings, computed once by a teacher.

A deployed model is an audio student plus a bank: the text encoder never ships.
The bank is a (C, D) matrix of unit vectors, one per label, each the re-normalised
mean of that label's prompts under several templates (see :mod:`tinyclap.templates`).

On disk a bank is a ``.npz`` readable with ``np.load(..., allow_pickle=False)``:

=============== ============ ==================================================
key             dtype/shape  meaning
=============== ============ ==================================================
format          str ()       ``"tinyclap-bank/1"``
embeddings      float32 (C,k) unit rows, k = D or the number of kept dims
labels          str (C,)     class names, in class-index order
prompts         str (C,T)    the prompt text each row averages
templates       str (T,)     the templates the prompts came from
kept_dims       int64 (k,)   indices into the teacher's D dims; absent if unpruned
source_dim      int64 ()     the teacher's full dimension D
teacher         str ()       the teacher's name (registry name or ``local:PATH``)
teacher_id      str ()       the teacher's content identity; absent if unknown
logit_scale     float32 ()   exp'd temperature applied to cosines
=============== ============ ==================================================

``teacher_id`` (:func:`tinyclap.teachers.identity.teacher_identity`, e.g.
``local#3f9c…``) is what checks that a bank and a cache or a student came from
the same teacher compare (:func:`~tinyclap.teachers.identity.same_teacher`):
the name changes when a run folder is moved, the identity does not. It is
written when the teacher that built the bank has an ``identity``; banks written
before it existed, or by teachers without one, load with ``teacher_id=None``
and are matched by name.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from tinyclap.errors import TinyClapError
from tinyclap.io import write_npz
from tinyclap.templates import render, resolve_templates

__all__ = ["PromptBank", "BankError", "read_labels", "normalize_rows"]

FORMAT = "tinyclap-bank/1"
_REQUIRED = ("format", "embeddings", "labels", "prompts", "templates", "source_dim", "teacher", "logit_scale")


class BankError(TinyClapError, ValueError):
    """A prompt bank that cannot be built, read, or applied (names the file or value)."""


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32); all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


def read_labels(path: str | Path) -> list[str]:
    """Labels from a text file, one per line (blank lines and ``#`` comments skipped)."""
    path = Path(path)
    if not path.is_file():
        raise BankError(f"{path}: no such labels file")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    labels = [ln for ln in lines if ln and not ln.startswith("#")]
    if not labels:
        raise BankError(f"{path}: holds no labels")
    return labels


@dataclass
class PromptBank:
    """Class text embeddings for zero-shot classification (see module docstring)."""

    embeddings: np.ndarray  # (C, k) float32, unit rows
    labels: list[str]
    prompts: list[list[str]]  # (C, T)
    templates: list[str]
    teacher: str
    logit_scale: float
    source_dim: int  # the teacher's D, so a full-D encoder can be matched to a pruned bank
    kept_dims: list[int] | None = None
    teacher_id: str | None = None  # content identity of the teacher (None: unknown, match by name)
    path: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self.embeddings = np.asarray(self.embeddings, dtype=np.float32)
        self.labels = [str(x) for x in self.labels]
        self.teacher_id = str(self.teacher_id) if self.teacher_id else None
        where = str(self.path) if self.path else "bank"
        if self.embeddings.ndim != 2:
            raise BankError(f"{where}: embeddings must be (C, D), got shape {self.embeddings.shape}")
        if len(self.labels) == 0:
            raise BankError(f"{where}: no labels")
        if len(self.labels) != self.embeddings.shape[0]:
            raise BankError(f"{where}: {len(self.labels)} labels but {self.embeddings.shape[0]} embedding rows")
        if len(set(self.labels)) != len(self.labels):
            dup = sorted({x for x in self.labels if self.labels.count(x) > 1})
            raise BankError(f"{where}: duplicate labels {dup}")
        if not np.all(np.isfinite(self.embeddings)):
            raise BankError(f"{where}: embeddings hold NaN or infinite values")
        if self.kept_dims is not None:
            self.kept_dims = [int(d) for d in self.kept_dims]
            if len(self.kept_dims) != self.embeddings.shape[1]:
                raise BankError(
                    f"{where}: {len(self.kept_dims)} kept dims but embeddings have {self.embeddings.shape[1]} columns"
                )
            if self.kept_dims and (min(self.kept_dims) < 0 or max(self.kept_dims) >= self.source_dim):
                raise BankError(f"{where}: kept dims fall outside 0..{self.source_dim - 1}")
        elif self.embeddings.shape[1] != self.source_dim:
            raise BankError(f"{where}: {self.embeddings.shape[1]} columns but source_dim {self.source_dim} and no kept dims")

    # ------------------------------------------------------------------ build
    @classmethod
    def build(
        cls,
        teacher: Any,
        labels: Sequence[str],
        templates: str | Path | Sequence[str] | None = None,
        batch_size: int = 256,
    ) -> "PromptBank":
        """Embed every label under every template with ``teacher.embed_text`` and average per label.

        ``templates``: ``None`` (the default curated set), a set name
        ("reference", "default"), a template file, or a list of format strings.
        """
        labels = [str(x) for x in labels]
        if not labels:
            raise BankError("cannot build a prompt bank from an empty label list")
        if any(not x.strip() for x in labels):
            raise BankError(f"labels must be non-empty strings, got {labels!r}")
        if len(set(labels)) != len(labels):
            raise BankError(f"duplicate labels: {sorted({x for x in labels if labels.count(x) > 1})}")
        tmpl = resolve_templates(templates if templates is None or isinstance(templates, (str, Path)) else list(templates))
        prompts = [render(tmpl, label) for label in labels]
        flat = [p for row in prompts for p in row]
        parts = []
        with torch.inference_mode():
            for i in range(0, len(flat), batch_size):
                parts.append(torch.as_tensor(teacher.embed_text(flat[i : i + batch_size])).float().cpu().numpy())
        text = normalize_rows(np.concatenate(parts))
        # Only a real identity is recorded: teacher_identity() would fall back to the name, which says nothing new.
        identity = getattr(teacher, "identity", None)  # re-normalise defensively before averaging
        per_label = text.reshape(len(labels), len(tmpl), -1).mean(axis=1)
        return cls(
            embeddings=normalize_rows(per_label),
            labels=labels,
            prompts=prompts,
            templates=tmpl,
            teacher=str(getattr(teacher, "name", type(teacher).__name__)),
            logit_scale=float(getattr(teacher, "logit_scale", 1.0)),
            source_dim=int(text.shape[1]),
            teacher_id=str(identity) if identity else None,
        )

    # ------------------------------------------------------------- properties
    @property
    def dim(self) -> int:
        """Embedding width of this bank (k after pruning, else D)."""
        return int(self.embeddings.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def tensor(self) -> torch.Tensor:
        """The embeddings as a float32 torch tensor (C, k)."""
        return torch.from_numpy(self.embeddings)

    # ------------------------------------------------------------- transforms
    def select(self, dims: Sequence[int]) -> "PromptBank":
        """Keep columns ``dims`` (indices into this bank's columns) and re-normalise rows.

        ``kept_dims`` of the result always index the teacher's full D, so
        selecting from an already pruned bank composes the two selections.
        """
        dims = [int(d) for d in dims]
        if not dims:
            raise BankError("cannot select an empty set of dims")
        if len(set(dims)) != len(dims):
            raise BankError("selected dims must be distinct")
        if min(dims) < 0 or max(dims) >= self.dim:
            raise BankError(f"selected dims fall outside 0..{self.dim - 1}")
        base = self.kept_dims if self.kept_dims is not None else list(range(self.source_dim))
        return replace(
            self,
            embeddings=normalize_rows(self.embeddings[:, dims]),
            kept_dims=[base[d] for d in dims],
            path=None,
        )

    def select_teacher_dims(self, kept_dims: Sequence[int]) -> "PromptBank":
        """Restrict to ``kept_dims`` given as indices into the teacher's full D."""
        kept = [int(d) for d in kept_dims]
        if self.kept_dims is None:
            return self.select(kept)
        if list(self.kept_dims) == kept:
            return self
        pos = {d: i for i, d in enumerate(self.kept_dims)}
        missing = [d for d in kept if d not in pos]
        if missing:
            raise BankError(f"bank was pruned to other dims; teacher dims {missing[:8]} are not in it")
        return self.select([pos[d] for d in kept])

    # ---------------------------------------------------------------- file IO
    def save(self, path: str | Path) -> Path:
        """Write the bank as ``.npz`` atomically; returns the path."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {
            "format": np.array(FORMAT),
            "embeddings": self.embeddings.astype(np.float32),
            "labels": np.array(self.labels, dtype=str),
            "prompts": np.array(self.prompts, dtype=str).reshape(len(self.labels), len(self.templates)),
            "templates": np.array(self.templates, dtype=str),
            "source_dim": np.array(self.source_dim, dtype=np.int64),
            "teacher": np.array(self.teacher),
            "logit_scale": np.array(self.logit_scale, dtype=np.float32),
        }
        if self.teacher_id:
            arrays["teacher_id"] = np.array(self.teacher_id)
        if self.kept_dims is not None:
            arrays["kept_dims"] = np.array(self.kept_dims, dtype=np.int64)
        write_npz(path, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "PromptBank":
        """Read a bank written by :meth:`save`; raises :class:`BankError` naming the file if unusable."""
        path = Path(path)
        if not path.is_file():
            raise BankError(f"{path}: no such prompt bank file")
        try:
            with np.load(path, allow_pickle=False) as npz:
                data = {k: npz[k] for k in npz.files}
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
            raise BankError(f"{path}: not a prompt bank .npz ({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise BankError(f"{path}: not a tinyclap prompt bank (missing {missing})")
        if str(data["format"]) != FORMAT:
            raise BankError(f"{path}: unsupported bank format {str(data['format'])!r} (expected {FORMAT!r})")
        prompts = data["prompts"]
        if prompts.ndim != 2:
            raise BankError(f"{path}: prompts must be (C, T), got shape {prompts.shape}")
        emb = data["embeddings"]
        if emb.dtype.kind != "f":
            raise BankError(f"{path}: embeddings must be floating point, got {emb.dtype}")
        return cls(
            embeddings=emb,
            labels=[str(x) for x in data["labels"].tolist()],
            prompts=[[str(p) for p in row] for row in prompts.tolist()],
            templates=[str(t) for t in data["templates"].tolist()],
            teacher=str(data["teacher"]),
            logit_scale=float(data["logit_scale"]),
            source_dim=int(data["source_dim"]),
            kept_dims=data["kept_dims"].tolist() if "kept_dims" in data else None,
            teacher_id=(str(data["teacher_id"]) or None) if "teacher_id" in data else None,  # older banks: None
            path=path,
        )

    def __repr__(self) -> str:
        kept = f", kept {self.dim} of {self.source_dim} dims" if self.kept_dims is not None else ""
        return f"PromptBank({self.num_classes} labels, dim {self.dim}{kept}, teacher {self.teacher!r})"
