"""What a pretraining run shows: the loss-curve PNG and the one-line epoch summaries.

The metrics themselves go to ``metrics.jsonl`` through
:func:`tinyclap.distill.log.write_metrics` (rewritten atomically from the
history kept in the training state, so a resume never duplicates a line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from tinyclap.io import atomic_path

__all__ = ["plot_loss", "summary"]


def plot_loss(history: Sequence[dict[str, Any]], path: str | Path) -> Path | None:
    """Training loss per logged step, validation loss and zero-shot accuracies per epoch."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r for r in history if r["type"] == "step"]
    epochs = [r for r in history if r["type"] == "epoch"]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["step"] for r in steps], [r["loss"] for r in steps], lw=1, label="train loss")
    for key in sorted({k for r in epochs for k in r if k.endswith("_loss") and k != "train_loss"}):
        pts = [r for r in epochs if r.get(key) is not None]
        ax.plot([r["step"] for r in pts], [r[key] for r in pts], "o-", label=key.replace("_", " "))
    ax.set_xlabel("step")
    ax.set_ylabel("symmetric InfoNCE")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    accs = sorted({k for r in epochs for k in r if k.endswith("zeroshot_acc")})
    if accs:
        acc_ax = ax.twinx()
        for key in accs:
            pts = [r for r in epochs if r.get(key) is not None]
            acc_ax.plot([r["step"] for r in pts], [r[key] for r in pts], "s--", alpha=0.7, label=key.replace("_", " "))
        acc_ax.set_ylim(0, 1)
        acc_ax.set_ylabel("zero-shot accuracy")
        acc_ax.legend(loc="upper right", fontsize=8)
    ax.set_title("tinyclap pretrain")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)


def summary(record: dict[str, Any]) -> str:
    """``epoch 3 · train_loss 2.101 · val_loss 2.310 · val_zeroshot_acc 0.612 (chance 0.067) · 41 s``."""
    parts = [f"epoch {record['epoch']}"]
    for key, value in record.items():
        if key in ("type", "epoch", "step", "elapsed_s", "cpu_s") or key.endswith("_chance"):
            continue
        text = f"{key} {value:.3f}" if isinstance(value, float) else f"{key} {value}"
        chance = record.get(key.replace("_zeroshot_acc", "_chance")) if key.endswith("_zeroshot_acc") else None
        parts.append(text + (f" (chance {chance:.3f})" if chance else ""))
    parts.append(f"{record.get('elapsed_s', 0):.0f} s")
    return " · ".join(parts)
