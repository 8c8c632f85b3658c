"""The tinyCLAP distillation objective: cosine between teacher and student embeddings.

tinyCLAP (Paissan & Farella, 2024) trains the student with
``-mean_i cos(stopgrad(t_i), s_i)`` on L2-normalised embeddings, using audio
only: the teacher's audio embedding is the target and the text tower is never
touched, so any audio collection (labelled or not) can be used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["cosine_similarity", "cosine_distillation_loss"]


def cosine_similarity(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Per-row cosine (B,) between (B, D) student and teacher embeddings.

    Both sides are re-normalised (unit vectors in, unit vectors assumed out), so
    the loss is the same whether or not the encoder already normalised. The
    teacher is detached: it is a fixed target.
    """
    if student.shape != teacher.shape:
        raise ValueError(
            f"student embeddings {tuple(student.shape)} and teacher targets "
            f"{tuple(teacher.shape)} differ in shape"
        )
    s = F.normalize(student, dim=-1)
    t = F.normalize(teacher.detach().to(student.dtype), dim=-1)
    return (s * t).sum(dim=-1)


def cosine_distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, normaliser: float | None = None
) -> torch.Tensor:
    """``-mean cos(stopgrad(teacher), student)``.

    ``normaliser`` replaces the batch size in the mean: under data parallelism
    each rank divides its *sum* by the global batch size (times the world size,
    since DistributedDataParallel averages gradients), which makes the update
    exactly the single-process one even when ranks hold unequal shares.
    """
    cos = cosine_similarity(student, teacher)
    denom = float(normaliser) if normaliser is not None else float(cos.numel())
    return -cos.sum() / denom
