"""Zero-shot evaluation: run an encoder + PromptBank over a labelled dataset, report every number.

The reference protocols (what tinyCLAP reports):

- ESC-50: all 2000 clips (all five folds), one 5 s clip each;
- UrbanSound8K: all ten folds (8732 slices, each padded to the clip length);
- TUT Acoustic Scenes 2017: the evaluation split; each 10 s scene is cut into
  clip-length windows and the clip's prediction aggregates its windows.

Windows of one file share the clip id before ``#``; a clip's embedding is the
re-normalised mean of its window embeddings (``aggregate="embedding"``) or its
logits are the mean of its windows' logits (``aggregate="logits"``), matching
:class:`tinyclap.zeroshot.ZeroShotClassifier`.

Broken clips are skipped and counted (the dataset's ``.broken``), never fatal.
Results: accuracy, per-class accuracy (recall), macro-F1, confusion matrix,
optional per-fold results, and — when a teacher is given — the teacher's own
zero-shot accuracy and teacher–student agreement (share of clips where both
predict the same class). :func:`write_report` saves ``metrics.json`` (every
number), ``predictions.csv`` (one row per clip: clip id, true label, predicted
label, the predicted class's probability) and ``confusion.png``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from tinyclap.bank import PromptBank
from tinyclap.errors import DataError, TinyClapError
from tinyclap.io import atomic_path, write_json
from tinyclap.templates import label_text
from tinyclap.zeroshot import Aggregate, ZeroShotClassifier, group_mean

__all__ = [
    "EvalResult",
    "evaluate",
    "classification_metrics",
    "write_report",
    "write_predictions",
    "plot_confusion",
    "clip_key",
    "fold_of",
    "open_eval_dataset",
    "bank_rows_for",
]


# ---------------------------------------------------------------- metrics
def classification_metrics(targets: Sequence[int], preds: Sequence[int], num_classes: int) -> dict[str, Any]:
    """Accuracy, per-class accuracy (recall), per-class F1, macro-F1 and the confusion matrix.

    ``confusion[i][j]`` counts clips of true class i predicted as j. Classes with
    no clips have per-class accuracy ``None`` and are left out of macro-F1
    (which averages F1 over classes present in ``targets``, as scikit-learn does
    when given ``labels=present``).
    """
    t = np.asarray(targets, dtype=np.int64)
    p = np.asarray(preds, dtype=np.int64)
    if t.shape != p.shape:
        raise ValueError(f"targets and preds differ in length: {t.shape} vs {p.shape}")
    conf = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(conf, (t, p), 1)
    support = conf.sum(axis=1)
    predicted = conf.sum(axis=0)
    tp = np.diag(conf)
    per_class_acc = [float(tp[c] / support[c]) if support[c] else None for c in range(num_classes)]
    f1 = []
    for c in range(num_classes):
        denom = support[c] + predicted[c]
        f1.append(float(2 * tp[c] / denom) if denom else 0.0)
    present = [c for c in range(num_classes) if support[c]]
    return {
        "n": int(len(t)),
        "correct": int(tp.sum()),
        "accuracy": float(tp.sum() / len(t)) if len(t) else float("nan"),
        "macro_f1": float(np.mean([f1[c] for c in present])) if present else float("nan"),
        "per_class_accuracy": per_class_acc,
        "per_class_f1": f1,
        "support": support.tolist(),
        "confusion": conf.tolist(),
    }


# --------------------------------------------------------------- clip ids
def clip_key(clip_id: str) -> str:
    """The file part of a clip id (``"audio/x.ogg#1"`` → ``"audio/x.ogg"``): windows of one clip share it."""
    return clip_id.rsplit("#", 1)[0]


_US8K_FOLD = re.compile(r"(?:^|/)fold(\d+)/")
_ESC_FOLD = re.compile(r"(?:^|/)(\d+)-[^/]+$")


def fold_of(dataset: Any, clip_id: str) -> str | None:
    """The fold a clip belongs to: ``dataset.fold_of(clip_id)`` if offered, else read off the id.

    ESC-50 files are named ``{fold}-{source}-{take}-{target}.wav``;
    UrbanSound8K keeps them under ``audio/fold{N}/``.
    """
    own = getattr(dataset, "fold_of", None)
    if callable(own):
        fold = own(clip_id)
        return None if fold is None else str(fold)
    key = clip_key(clip_id)
    m = _US8K_FOLD.search(key) or _ESC_FOLD.search(key)
    return m.group(1) if m else None


# ------------------------------------------------------------- protocols
def open_eval_dataset(spec: str, audio_config: Any, folds: str | Sequence[int] | None = None, **kw: Any) -> Any:
    """Open a labelled dataset for the reference protocol at the encoder's ``audio_config``.

    ``esc50:ROOT`` → all folds, ``us8k:ROOT`` → all folds, ``tut17:ROOT`` → the
    evaluation split cut into windows (the data specs' defaults); ``folds``
    restricts ESC-50 / UrbanSound8K to some folds.
    """
    from tinyclap.data import open_dataset

    if folds is not None and str(folds).strip():
        kw["folds"] = folds
    return open_dataset(spec, audio_config, **kw)


# ----------------------------------------------------------------- result
@dataclass
class EvalResult:
    """Every number of one evaluation run (``to_dict`` is what ``metrics.json`` holds)."""

    dataset: str
    encoder: str
    labels: list[str]
    metrics: dict[str, Any]
    n_windows: int
    broken: list[str]
    aggregate: str
    bank: dict[str, Any]
    per_fold: dict[str, dict[str, Any]] | None = None
    teacher: dict[str, Any] | None = None
    clip_ids: list[str] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)
    predictions: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)  # softmax probability of each clip's predicted class

    @property
    def accuracy(self) -> float:
        return float(self.metrics["accuracy"])

    @property
    def macro_f1(self) -> float:
        return float(self.metrics["macro_f1"])

    @property
    def agreement(self) -> float | None:
        return None if self.teacher is None else float(self.teacher["agreement"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """A few lines for a terminal."""
        m = self.metrics
        lines = [
            f"{self.dataset}: {m['n']} clips ({self.n_windows} windows), {len(self.broken)} broken skipped",
            f"  accuracy {100 * m['accuracy']:.2f}%   macro-F1 {100 * m['macro_f1']:.2f}%",
        ]
        if self.teacher is not None:
            lines.append(
                f"  teacher accuracy {100 * self.teacher['accuracy']:.2f}%   "
                f"teacher-student agreement {100 * self.teacher['agreement']:.2f}%"
            )
        for fold, fm in (self.per_fold or {}).items():
            lines.append(f"  fold {fold}: {fm['n']} clips, accuracy {100 * fm['accuracy']:.2f}%")
        return "\n".join(lines)


# ------------------------------------------------------------- evaluation
def bank_rows_for(class_names: Sequence[str], bank: PromptBank) -> np.ndarray:
    """Dataset class index → bank row; matched on readable text so ``dog_bark`` == ``dog bark``."""
    rows = {label_text(x).lower(): i for i, x in enumerate(bank.labels)}
    missing = [c for c in class_names if label_text(c).lower() not in rows]
    if missing:
        raise DataError(f"the prompt bank has no prompt for classes {missing[:10]} (bank labels: {bank.labels[:10]}...)")
    return np.array([rows[label_text(c).lower()] for c in class_names], dtype=np.int64)


def _encoder_name(encoder: Any) -> str:
    """A teacher's registry name, a student's config name, or the class name."""
    name = getattr(encoder, "name", None) or getattr(getattr(encoder, "config", None), "name", None)
    return str(name or type(encoder).__name__)


def _check_audio(dataset: Any, encoder: Any) -> None:
    a, b = getattr(dataset, "audio_config", None), encoder.audio_config
    if a is not None and (a.sample_rate != b.sample_rate or a.clip_samples != b.clip_samples):
        raise DataError(
            f"dataset yields {a.clip_samples} samples at {a.sample_rate} Hz but the encoder expects "
            f"{b.clip_samples} at {b.sample_rate} Hz: open the dataset with the encoder's audio_config"
        )


def _aggregate(
    clf: ZeroShotClassifier, emb: torch.Tensor, owner: torch.Tensor, how: Aggregate
) -> torch.Tensor:
    """Per-window unit embeddings → per-clip logits."""
    if how == "logits":
        return group_mean(clf.logits_from_embeddings(emb), owner)
    return clf.logits_from_embeddings(group_mean(emb, owner))


def evaluate(
    encoder: Any,
    bank: PromptBank,
    dataset: Any,
    *,
    teacher: Any = None,
    teacher_bank: PromptBank | None = None,
    per_fold: bool = False,
    aggregate: Aggregate = "embedding",
    batch_size: int = 32,
    num_workers: int = 0,
    progress: bool = True,
    name: str | None = None,
) -> EvalResult:
    """Zero-shot accuracy of ``encoder`` with ``bank`` on a labelled ``dataset`` (see module docstring).

    ``dataset`` yields :class:`tinyclap.data.base.Example` items at the encoder's
    AudioConfig and has ``class_names``. With ``teacher``, its predictions (with
    ``teacher_bank``, built from ``bank.labels``/``bank.templates`` when not given)
    give the teacher's accuracy and the teacher–student agreement.
    """
    from tqdm import tqdm

    from tinyclap.data.base import broken_files, make_loader

    class_names = getattr(dataset, "class_names", None)
    if not class_names:
        raise DataError(f"{name or dataset!r}: zero-shot evaluation needs a labelled dataset (no class_names)")
    _check_audio(dataset, encoder)
    clf = ZeroShotClassifier(encoder, bank, batch_size=batch_size, aggregate=aggregate)
    to_bank = bank_rows_for(class_names, clf.bank)
    tclf = None
    if teacher is not None:
        _check_audio(dataset, teacher)
        if teacher_bank is None:
            teacher_bank = PromptBank.build(teacher, bank.labels, bank.templates)
        tclf = ZeroShotClassifier(teacher, teacher_bank, batch_size=batch_size, aggregate=aggregate)
        if tclf.bank.labels != clf.bank.labels:
            raise TinyClapError("teacher and student banks must hold the same labels, in the same order")

    loader = make_loader(dataset, batch_size=batch_size, num_workers=num_workers)
    keys: dict[str, int] = {}
    owners: list[int] = []
    clip_targets: list[int] = []
    emb_parts: list[torch.Tensor] = []
    temb_parts: list[torch.Tensor] = []
    bar = tqdm(loader, desc=f"eval {name or type(dataset).__name__}", unit="batch", disable=not progress)
    for clips, targets, ids in bar:
        emb_parts.append(clf.embed(clips))
        if tclf is not None:
            temb_parts.append(tclf.embed(clips))
        for cid, tgt in zip(ids, targets):
            key = clip_key(cid)
            if key not in keys:
                keys[key] = len(keys)
                if tgt is None:
                    raise DataError(f"{cid}: item has no class label")
                clip_targets.append(int(to_bank[int(tgt)]))
            owners.append(keys[key])
    broken = [str(b) for b in broken_files(dataset)]
    if not keys:
        raise DataError(f"{name or dataset!r}: no readable clips ({len(broken)} broken)")

    owner = torch.as_tensor(owners)
    logits = _aggregate(clf, torch.cat(emb_parts), owner, aggregate)
    preds = logits.argmax(-1).numpy()
    scores = torch.softmax(logits.float(), dim=-1).max(dim=-1).values.numpy()
    targets_arr = np.asarray(clip_targets)
    metrics = classification_metrics(targets_arr, preds, clf.bank.num_classes)
    metrics["top5_accuracy"] = float(
        (logits.topk(min(5, logits.shape[1]), dim=-1).indices.numpy() == targets_arr[:, None]).any(axis=1).mean()
    )

    teacher_info = None
    if tclf is not None:
        tpreds = _aggregate(tclf, torch.cat(temb_parts), owner, aggregate).argmax(-1).numpy()
        tm = classification_metrics(targets_arr, tpreds, clf.bank.num_classes)
        teacher_info = {
            "name": str(getattr(teacher, "name", type(teacher).__name__)),
            "accuracy": tm["accuracy"],
            "macro_f1": tm["macro_f1"],
            "agreement": float((tpreds == preds).mean()),
            "predictions": tpreds.tolist(),
        }

    clip_ids = list(keys)
    folds = None
    if per_fold:
        fold_ids = [fold_of(dataset, k) for k in clip_ids]
        if any(f is None for f in fold_ids):
            raise DataError(f"{name or dataset!r}: cannot tell the fold of clip {clip_ids[fold_ids.index(None)]!r}")
        folds = {}
        for f in sorted(set(fold_ids), key=lambda s: (len(s), s)):
            sel = np.array([x == f for x in fold_ids])
            fm = classification_metrics(targets_arr[sel], preds[sel], clf.bank.num_classes)
            del fm["confusion"]
            if teacher_info is not None:
                fm["agreement"] = float((np.asarray(teacher_info["predictions"])[sel] == preds[sel]).mean())
            folds[f] = fm

    bank_info = {
        "teacher": clf.bank.teacher,
        "dim": clf.bank.dim,
        "source_dim": clf.bank.source_dim,
        "kept_dims": clf.bank.kept_dims,
        "templates": clf.bank.templates,
        "logit_scale": clf.bank.logit_scale,
        "path": str(bank.path) if bank.path else None,
    }
    return EvalResult(
        dataset=name or type(dataset).__name__,
        encoder=_encoder_name(encoder),
        labels=list(clf.bank.labels),
        metrics=metrics,
        n_windows=len(owners),
        broken=broken,
        aggregate=aggregate,
        bank=bank_info,
        per_fold=folds,
        teacher=teacher_info,
        clip_ids=clip_ids,
        targets=targets_arr.tolist(),
        predictions=preds.tolist(),
        scores=[float(x) for x in scores],
    )


# ---------------------------------------------------------------- reports
def plot_confusion(confusion: Sequence[Sequence[int]], labels: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix as a PNG (counts written in cells when the matrix is small)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf = np.asarray(confusion, dtype=np.float64)
    rows = conf.sum(axis=1, keepdims=True)
    norm = np.divide(conf, rows, out=np.zeros_like(conf), where=rows > 0)
    n = len(labels)
    size = max(4.0, min(0.28 * n + 2.5, 18.0))
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    fs = 8 if n <= 20 else 5
    ax.set_xticklabels([label_text(x) for x in labels], rotation=90, fontsize=fs)
    ax.set_yticklabels([label_text(x) for x in labels], fontsize=fs)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if conf[i, j]:
                    ax.text(j, i, int(conf[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


def write_predictions(result: EvalResult, path: str | Path) -> Path:
    """``predictions.csv``, atomically: ``clip_id,label,prediction,score`` per clip (labels by name).

    ``score`` is the probability (softmax of the bank logits) of the predicted
    class; the prediction is the argmax over the bank, as in ``metrics.json``.
    """
    path = Path(path)
    scores = result.scores or [float("nan")] * len(result.predictions)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["clip_id", "label", "prediction", "score"])
            for cid, t, p, sc in zip(result.clip_ids, result.targets, result.predictions, scores):
                writer.writerow([cid, result.labels[t], result.labels[p], f"{sc:.6f}"])
    return path


def write_report(result: EvalResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``metrics.json``, ``predictions.csv`` and ``confusion.png`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": out / "metrics.json", "predictions": out / "predictions.csv", "confusion": out / "confusion.png"}
    write_json(paths["metrics"], result.to_dict())
    write_predictions(result, paths["predictions"])
    title = f"{result.encoder} on {result.dataset}: {100 * result.accuracy:.1f}%"
    plot_confusion(result.metrics["confusion"], result.labels, paths["confusion"], title)
    return paths
