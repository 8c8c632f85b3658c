"""Latent pruning: keep the k of D shared audio-text dims that matter most.

In a small student the projection into the shared space dominates: for the
reference student (PhiNet α1.5 β0.75 t0 6 N7, 4.43 M params) the 2048→1024
projection alone is 3.15 M. Zero-shot classification only needs the dims
where audio and text embeddings agree, so we score every dim, keep the top k,
slice the student's projection and the prompt bank to them, and fine-tune the
projection (distillation stage 2) against teacher embeddings restricted to the
same dims.

Scorers (``score_dims``), all over calibration clips (teacher *audio*
embeddings from the distillation cache) and prompts (the bank's text
embeddings, or captions):

- ``"similarity"`` (default): the mean over clips n and prompts p of
  ``|a_nd · t_pd|``, i.e. how much dim d contributes to audio-text cosines.
  Because ``|a·t| = |a|·|t|`` this factorises into
  ``mean_n |a_nd| · mean_p |t_pd|``, so it costs O((N + P)·D), not O(N·P·D).
- ``"text_magnitude"``: ``mean_p |t_pd|`` (text embeddings only).
- ``"text_variance"``: ``var_p t_pd``: dims that separate prompts.

Slicing a :class:`~tinyclap.students.encoder.Projection` to dims S (|S| = k):
``linear1.weight[S, :]`` (d_in·k), ``linear2.weight[S][:, S]`` (k²),
``layer_norm.weight[S]`` and ``.bias[S]`` (2k). With k = D and S = 0..D-1
the student is unchanged, parameter for parameter. For k < D the output is
*not* the unpruned output restricted to S (linear2 loses the other dims'
inputs and LayerNorm's statistics change), which is why the projection is
fine-tuned afterwards.

Kept dims are stored as indices into the teacher's D (``student.kept_dims``,
``bank.kept_dims``), so pruning an already pruned student composes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch import nn

from tinyclap.bank import PromptBank
from tinyclap.errors import BudgetError, TinyClapError

__all__ = [
    "ScoreMethod",
    "PruneError",
    "score_dims",
    "top_dims",
    "projection_params",
    "prune_projection",
    "prune_student",
    "prune_bank",
    "flash_bytes_for",
    "choose_k",
    "calibration_embeddings",
    "text_embeddings",
    "student_bank",
    "PruneResult",
    "prune",
    "sweep",
    "write_sweep",
    "teacher_accuracy_at",
]

ScoreMethod = Literal["similarity", "text_magnitude", "text_variance"]
SCORERS: tuple[str, ...] = ("similarity", "text_magnitude", "text_variance")


class PruneError(TinyClapError, ValueError):
    """A pruning request that cannot be carried out (bad k, dims, or mismatched inputs)."""


# ------------------------------------------------------------------ scoring
def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def score_dims(audio: Any, text: Any, method: ScoreMethod = "similarity") -> np.ndarray:
    """Importance of each latent dim, shape (D,): larger is more important (see module docstring).

    ``audio``: (N, D) teacher audio embeddings (unused by the text-only scorers);
    ``text``: (P, D) prompt embeddings.
    """
    t = _as_numpy(text)
    if t.ndim != 2 or t.shape[0] == 0:
        raise PruneError(f"text embeddings must be a non-empty (P, D) array, got shape {t.shape}")
    if method == "text_magnitude":
        return np.abs(t).mean(axis=0)
    if method == "text_variance":
        return t.var(axis=0)
    if method != "similarity":
        raise PruneError(f"unknown scorer {method!r}; choose one of {', '.join(SCORERS)}")
    a = _as_numpy(audio)
    if a.ndim != 2 or a.shape[0] == 0:
        raise PruneError(f"audio embeddings must be a non-empty (N, D) array, got shape {a.shape}")
    if a.shape[1] != t.shape[1]:
        raise PruneError(f"audio has {a.shape[1]} dims but text has {t.shape[1]}")
    return np.abs(a).mean(axis=0) * np.abs(t).mean(axis=0)


def top_dims(scores: Any, k: int) -> list[int]:
    """Indices of the ``k`` highest scores, in increasing index order (ties: lower index wins).

    Keeping the original order means k = D gives the identity selection.
    """
    s = _as_numpy(scores).ravel()
    d = len(s)
    if not 1 <= int(k) <= d:
        raise PruneError(f"k must be between 1 and {d}, got {k}")
    order = np.argsort(-s, kind="stable")  # stable: equal scores keep index order
    return sorted(int(i) for i in order[: int(k)])


# ------------------------------------------------------------------ slicing
def projection_params(d_in: int, k: int) -> int:
    """Parameters of a Projection d_in → k: linear1 d_in·k + linear2 k² + LayerNorm 2k (no biases)."""
    return d_in * k + k * k + 2 * k


def _check_dims(dims: Sequence[int], d: int) -> list[int]:
    dims = [int(x) for x in dims]
    if not dims:
        raise PruneError("cannot keep an empty set of dims")
    if len(set(dims)) != len(dims):
        raise PruneError("kept dims must be distinct")
    if min(dims) < 0 or max(dims) >= d:
        raise PruneError(f"kept dims must lie in 0..{d - 1}")
    return dims


def prune_projection(projection: nn.Module, dims: Sequence[int]) -> nn.Module:
    """Slice a Projection (linear1, linear2, layer_norm) in place to output ``dims``; returns it."""
    lin1, lin2, ln = projection.linear1, projection.linear2, projection.layer_norm
    d = lin1.out_features
    dims = _check_dims(dims, d)
    idx = torch.as_tensor(dims, dtype=torch.long)
    k = len(dims)
    with torch.no_grad():
        new1 = nn.Linear(lin1.in_features, k, bias=lin1.bias is not None)
        new1.weight.copy_(lin1.weight[idx])
        if lin1.bias is not None:
            new1.bias.copy_(lin1.bias[idx])
        new2 = nn.Linear(k, k, bias=lin2.bias is not None)
        new2.weight.copy_(lin2.weight[idx][:, idx])
        if lin2.bias is not None:
            new2.bias.copy_(lin2.bias[idx])
        new_ln = nn.LayerNorm(k, eps=ln.eps, elementwise_affine=ln.weight is not None, bias=ln.bias is not None)
        if ln.weight is not None:
            new_ln.weight.copy_(ln.weight[idx])
            if ln.bias is not None:
                new_ln.bias.copy_(ln.bias[idx])
    ref = lin1.weight
    projection.linear1 = new1.to(ref.device, ref.dtype)
    projection.linear2 = new2.to(ref.device, ref.dtype)
    projection.layer_norm = new_ln.to(ref.device, ref.dtype)
    for attr in ("d_out", "out_features", "dim"):
        if isinstance(getattr(projection, attr, None), int):
            setattr(projection, attr, k)
    return projection


def prune_student(student: nn.Module, dims: Sequence[int]) -> nn.Module:
    """A copy of ``student`` whose output keeps only ``dims`` (indices into its current output).

    Sets ``dim`` (and ``config.dim``) to k and ``kept_dims`` to teacher indices:
    composed with the student's own ``kept_dims`` when it was pruned before.
    The original student is not modified.
    """
    d = int(student.dim)
    dims = _check_dims(dims, d)
    old = getattr(student, "kept_dims", None)
    base = [int(x) for x in old] if old is not None else list(range(d))
    new = copy.deepcopy(student)
    prune_projection(new.projection, dims)  # AudioStudent.dim reads the projection's width
    cfg = getattr(new, "config", None)
    if cfg is not None and getattr(cfg, "dim", None) is not None:
        new.config = replace(cfg, dim=len(dims))  # StudentConfig is a frozen dataclass
    new.kept_dims = [base[i] for i in dims]
    if int(new.dim) != len(dims):
        raise PruneError(f"pruned student reports dim {new.dim}, expected {len(dims)}")
    return new


def prune_bank(bank: PromptBank, dims: Sequence[int]) -> PromptBank:
    """The bank restricted to ``dims`` (indices into its columns), rows re-normalised."""
    return bank.select(dims)


# ------------------------------------------------------------------ budgets
def flash_bytes_for(student: nn.Module, k: int) -> int:
    """int8 flash of ``student``'s architecture with a k-dim shared space (``scaling.profile``)."""
    from tinyclap.students.scaling import profile

    ac = student.audio_config
    return int(profile(replace(student.config, dim=int(k)), ac.n_frames, ac.n_mels).flash_bytes)


def choose_k(student: nn.Module, flash_bytes: int, max_k: int | None = None) -> int:
    """The largest k ≤ ``max_k`` (default: the student's dim) whose int8 flash fits ``flash_bytes``.

    Flash grows with k (d_in·k + k² + 2k weights), so a binary search suffices.
    """
    hi = int(max_k or student.dim)
    if flash_bytes_for(student, 1) > flash_bytes:
        raise BudgetError(
            f"even k = 1 needs {flash_bytes_for(student, 1):,} bytes of flash, more than the "
            f"{int(flash_bytes):,} budget: the backbone alone does not fit; pick a smaller student"
        )
    lo = 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if flash_bytes_for(student, mid) <= flash_bytes:
            lo = mid
        else:
            hi = mid - 1
    return lo


# -------------------------------------------------------------- calibration
def text_embeddings(teacher: Any, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """Unit text embeddings (P, D) of ``texts`` (e.g. captions) from ``teacher``'s text tower, for scoring."""
    texts = [t for t in (str(x).strip() for x in texts) if t]
    if not texts:
        raise PruneError("no captions to score with")
    parts = [torch.as_tensor(teacher.embed_text(texts[i : i + batch_size])).float().cpu().numpy()
             for i in range(0, len(texts), batch_size)]
    return np.concatenate(parts)


def calibration_embeddings(cache: Any, max_clips: int | None = None, seed: int = 0) -> np.ndarray:
    """Teacher audio embeddings from a distillation cache (``.embeddings`` (N, D)), optionally subsampled."""
    emb = cache.embeddings
    n = emb.shape[0]
    if n == 0:
        raise PruneError(f"{getattr(cache, 'root', 'cache')}: holds no embeddings")
    if max_clips is not None and n > max_clips:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=int(max_clips), replace=False))
        return np.asarray(emb[rows], dtype=np.float32)
    return np.asarray(emb[:], dtype=np.float32)


# ------------------------------------------------------------------ pipeline
@dataclass
class PruneResult:
    """A pruned (and possibly fine-tuned) student, its bank, and the numbers behind it."""

    student: nn.Module
    bank: PromptBank
    k: int
    kept_dims: list[int]  # indices into the teacher's D
    positions: list[int]  # indices into the input student's output
    scores: list[float]  # one per input student output dim
    scorer: str
    params_before: int
    params_after: int
    finetune: Any = None  # DistillResult when fine-tuned
    paths: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The JSON-able numbers (no modules)."""
        return {
            "k": self.k,
            "scorer": self.scorer,
            "kept_dims": self.kept_dims,
            "params_before": self.params_before,
            "params_after": self.params_after,
            "params_removed": self.params_before - self.params_after,
            "scores": self.scores,
            "finetuned": self.finetune is not None,
            "finetune_best_metric": getattr(self.finetune, "best_metric", None),
            "paths": {k: str(v) for k, v in self.paths.items()},
        }


def _num_params(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def student_bank(student: nn.Module, bank: PromptBank) -> PromptBank:
    """``bank`` restricted to the dims ``student`` outputs (its ``kept_dims``), checking widths."""
    kept = getattr(student, "kept_dims", None)
    if kept is not None:
        bank = bank.select_teacher_dims(kept)
    if bank.dim != int(student.dim):
        raise PruneError(f"student outputs {student.dim} dims but the bank has {bank.dim} (teacher D {bank.source_dim})")
    return bank


def _check_same_teacher(cache: Any, bank: PromptBank) -> None:
    """Refuse a bank and a cache from different teachers: matched by identity, so moved run folders still pair."""
    if cache is None or not hasattr(cache, "teacher_name"):
        return  # a bare array-like cache (benchmarks) records no teacher
    from tinyclap.teachers.identity import identity_of_name, same_teacher

    # Banks record the teacher's name; a `local:` name is resolved to its files' identity while they exist.
    bank_id = getattr(bank, "teacher_id", None)
    cache_id = getattr(cache, "teacher_id", None)
    if not same_teacher(cache.teacher_name, cache_id, bank.teacher, bank_id):
        shown = bank_id or identity_of_name(bank.teacher)
        raise PruneError(
            f"the cache holds embeddings of teacher {cache.teacher_name!r}{f' [{cache_id}]' if cache_id else ''} "
            f"but the bank was built by {bank.teacher!r}{f' [{shown}]' if shown else ''}: "
            "a different teacher (other weights or config)"
        )


def _check_student_teacher(student: nn.Module, cache: Any, bank: PromptBank) -> None:
    """Refuse a student distilled from another teacher than the cache's (or, without a cache, the bank's):
    its embeddings would be scored and fine-tuned in a space it was never trained for."""
    from tinyclap.teachers.identity import same_teacher

    meta = getattr(student, "meta", None) or {}
    name, identity = meta.get("teacher"), meta.get("teacher_id")
    if not name and not identity:
        return  # a student built in memory, or a checkpoint that records no teacher
    name = str(name or identity)
    if cache is not None and hasattr(cache, "teacher_name"):
        other, other_id, what = cache.teacher_name, getattr(cache, "teacher_id", None), f"the cache {cache.root}"
    else:
        other, other_id, what = bank.teacher, bank.teacher_id, "the bank"
    if not other and not other_id:
        return  # an old record without a teacher: nothing to compare
    if not same_teacher(name, identity, str(other), other_id):
        shown = lambda n, i: f"{n!r}" + (f" [{i}]" if i else "")  # noqa: E731
        raise PruneError(
            f"the student was distilled from teacher {shown(name, identity)} but {what} holds teacher "
            f"{shown(other, other_id)}: a different teacher (other weights or config); prune with the cache "
            "and bank of the student's own teacher"
        )


def prune(
    student: nn.Module,
    bank: PromptBank,
    k: int | None = None,
    *,
    flash_bytes: int | None = None,
    cache: Any = None,
    text: Any = None,
    scorer: ScoreMethod = "similarity",
    max_clips: int | None = None,
    finetune_data: Any = None,
    val_data: Any = None,
    out_dir: str | Path | None = None,
    preset: str = "stage2",
    **distill_overrides: Any,
) -> PruneResult:
    """Score dims, keep the top ``k`` (or the largest k fitting ``flash_bytes``), slice, fine-tune.

    ``cache`` (an :class:`~tinyclap.distill.cache.EmbeddingCache` or its folder)
    gives the calibration audio embeddings and the fine-tuning targets;
    ``text`` (P, D) overrides the bank's embeddings as the scoring prompts
    (e.g. caption embeddings). With ``finetune_data`` the pruned projection is
    trained by :func:`tinyclap.distill.train.distill` (stage 2) against the
    teacher embeddings restricted to the kept dims. With ``out_dir``, writes
    ``student.json``/``.safetensors``, ``bank.npz`` and ``prune.json`` there.
    """
    if distill_overrides:  # a misspelt keyword must not vanish when there is no fine-tuning to pass it to
        from tinyclap.distill.presets import make_config

        make_config(preset, **distill_overrides)
    if cache is not None and not hasattr(cache, "embeddings"):
        from tinyclap.distill.cache import EmbeddingCache

        cache = EmbeddingCache.open(cache)
    sbank = student_bank(student, bank)
    _check_same_teacher(cache, bank)
    _check_student_teacher(student, cache, bank)
    if (k is None) == (flash_bytes is None):
        raise PruneError("give exactly one of k (dims to keep) or flash_bytes (a budget)")
    if k is None:
        k = choose_k(student, int(flash_bytes))
    if not 1 <= int(k) <= int(student.dim):
        raise PruneError(f"k must be between 1 and the student's {student.dim} dims, got {k}")

    out_cols = getattr(student, "kept_dims", None)
    text_emb = sbank.embeddings if text is None else _as_numpy(text)
    if text is not None and out_cols is not None and text_emb.shape[1] == bank.source_dim:
        text_emb = text_emb[:, out_cols]
    if scorer == "similarity":
        if cache is None:
            raise PruneError("the 'similarity' scorer needs calibration audio: pass the teacher embedding cache")
        audio = calibration_embeddings(cache, max_clips)
        if audio.shape[1] != bank.source_dim:
            raise PruneError(f"cache embeddings have {audio.shape[1]} dims, the bank's teacher has {bank.source_dim}")
        if out_cols is not None:
            audio = audio[:, out_cols]
    else:
        audio = None
    scores = score_dims(audio, text_emb, scorer)
    positions = top_dims(scores, int(k))
    pruned = prune_student(student, positions)
    result = PruneResult(
        student=pruned,
        bank=sbank.select(positions),
        k=int(k),
        kept_dims=list(pruned.kept_dims),
        positions=positions,
        scores=[float(x) for x in scores],
        scorer=scorer,
        params_before=_num_params(student),
        params_after=_num_params(pruned),
    )
    out = Path(out_dir) if out_dir is not None else None
    if finetune_data is not None:
        if cache is None:
            raise PruneError("fine-tuning needs the teacher embedding cache")
        from tinyclap.distill.train import distill

        ft_dir = (out / "finetune") if out is not None else Path("runs") / f"prune-k{k}"
        run = distill(pruned, cache, finetune_data, val_data, preset=preset, out_dir=ft_dir, **distill_overrides)
        result.finetune = run
        result.student = run.student.eval()
    if out is not None:
        from tinyclap.io import write_json
        from tinyclap.students import save_student

        result.paths["student"] = save_student(
            out / "student", result.student, pruned_from=int(student.dim), prune_scorer=scorer, teacher=bank.teacher,
            teacher_id=(getattr(student, "meta", None) or {}).get("teacher_id") or bank.teacher_id,
        )
        result.paths["bank"] = result.bank.save(out / "bank.npz")
        result.paths["report"] = out / "prune.json"
        write_json(result.paths["report"], result.summary())
    return result


# --------------------------------------------------------------------- sweep
def _flash_or_none(student: nn.Module, k: int) -> int | None:
    try:
        return flash_bytes_for(student, k)
    except ImportError:  # scaling not available: the table leaves the column empty
        return None


def teacher_accuracy_at(cache: Any, bank: PromptBank, dataset: Any, dims: Sequence[int]) -> float | None:
    """Zero-shot accuracy of the cached *teacher* audio embeddings restricted to ``dims`` (teacher indices).

    The ceiling a pruned student can reach; ``None`` when the cache does not cover the dataset.
    """
    from tinyclap.evaluate import bank_rows_for, clip_key

    ids = list(getattr(dataset, "ids", []) or [])
    if not ids or cache is None or any(i not in cache for i in ids):
        return None
    emb = cache.embeddings.rows(cache.rows_of(ids))[:, list(dims)]
    keys: dict[str, int] = {}
    owner = np.array([keys.setdefault(clip_key(i), len(keys)) for i in ids])
    pooled = np.zeros((len(keys), emb.shape[1]))
    np.add.at(pooled, owner, emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12))
    sub = bank.select_teacher_dims(dims)
    preds = (pooled @ sub.embeddings.T).argmax(1)
    to_bank = bank_rows_for(dataset.class_names, sub)
    first = {}
    for i, cid in enumerate(ids):
        first.setdefault(owner[i], dataset.label(i))
    targets = np.array([to_bank[first[g]] for g in range(len(keys))])
    return float((preds == targets).mean())


def sweep(
    student: nn.Module,
    bank: PromptBank,
    ks: Sequence[int],
    eval_data: Any,
    out_dir: str | Path,
    *,
    cache: Any = None,
    scorer: ScoreMethod = "similarity",
    finetune_data: Any = None,
    val_data: Any = None,
    batch_size: int = 32,
    progress: bool = True,
    **prune_kw: Any,
) -> list[dict[str, Any]]:
    """Prune to every k in ``ks``, evaluate zero-shot on ``eval_data``, write a table and a plot.

    Writes ``sweep.json``, ``sweep.csv``, ``sweep.md`` and ``sweep.png`` (accuracy
    and parameters versus k) in ``out_dir``; each k's model goes to ``out_dir/k{k}``.
    Returns one row per k.
    """
    from tinyclap.evaluate import evaluate

    if cache is not None and not hasattr(cache, "embeddings"):
        from tinyclap.distill.cache import EmbeddingCache

        cache = EmbeddingCache.open(cache)
    ks = sorted({int(x) for x in ks}, reverse=True)
    if not ks:
        raise PruneError("the sweep needs at least one k")
    out = Path(out_dir)
    if finetune_data is not None:
        prune_kw.setdefault("progress", progress)  # the fine-tuning loop's progress bar
    rows: list[dict[str, Any]] = []
    for k in ks:
        res = prune(student, bank, k, cache=cache, scorer=scorer, finetune_data=finetune_data, val_data=val_data,
                    out_dir=out / f"k{k}", **prune_kw)
        ev = evaluate(res.student, res.bank, eval_data, batch_size=batch_size, progress=progress, name=f"k={k}")
        proj = res.student.projection
        rows.append({
            "k": k,
            "params": res.params_after,
            "projection_params": _num_params(proj),
            "flash_bytes_int8": _flash_or_none(student, k),
            "accuracy": ev.accuracy,
            "macro_f1": ev.macro_f1,
            "teacher_accuracy_at_k": teacher_accuracy_at(cache, bank, eval_data, res.kept_dims),
            "finetuned": res.finetune is not None,
            "clips": ev.metrics["n"],
        })
    write_sweep(rows, out, title=f"latent pruning sweep ({scorer})")
    return rows


def write_sweep(rows: list[dict[str, Any]], out_dir: str | Path, title: str = "") -> dict[str, Path]:
    """Save a sweep's rows as JSON, CSV, markdown and a PNG of accuracy and params versus k."""
    import csv
    import io

    from tinyclap.io import atomic_path, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "sweep.json", "csv": out / "sweep.csv", "md": out / "sweep.md", "png": out / "sweep.png"}
    write_json(paths["json"], rows)
    cols = list(rows[0])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(paths["csv"]) as tmp:
        tmp.write_text(buf.getvalue())

    def cell(v: Any) -> str:
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{100 * v:.2f}%" if v <= 1.0 else f"{v:.4g}"
        if isinstance(v, int) and not isinstance(v, bool):
            return f"{v:,}"
        return str(v)

    md = [f"| {' | '.join(cols)} |", "|" + "---|" * len(cols)]
    md += [f"| {' | '.join(cell(r[c]) for c in cols)} |" for r in rows]
    with atomic_path(paths["md"]) as tmp:
        tmp.write_text((f"# {title}\n\n" if title else "") + "\n".join(md) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = [r["k"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(ks, [100 * r["accuracy"] for r in rows], "o-", color="C0", label="student zero-shot")
    if any(r.get("teacher_accuracy_at_k") is not None for r in rows):
        ax.plot(ks, [100 * r["teacher_accuracy_at_k"] if r.get("teacher_accuracy_at_k") is not None else np.nan
                     for r in rows], "s--", color="C2", label="teacher at k dims")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks)
    ax.set_xticklabels([str(k) for k in ks])
    ax.set_xlabel("kept latent dims k")
    ax.set_ylabel("zero-shot accuracy (%)")
    ax2 = ax.twinx()
    ax2.plot(ks, [r["params"] / 1e6 for r in rows], "^:", color="C3", label="student params")
    ax2.set_ylabel("parameters (M)", color="C3")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="lower right", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    with atomic_path(paths["png"]) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return paths
