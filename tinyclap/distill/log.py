"""Metrics of a run: a JSONL file (one line per epoch) and a PNG of the curves.

The history lives in the training state, and ``metrics.jsonl`` is rewritten
from it (atomically) after every epoch: a resumed run never repeats or loses
a line, whatever moment it was interrupted at.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from tinyclap.io import atomic_path

__all__ = ["write_metrics", "read_metrics", "plot_curves"]


def write_metrics(path: str | Path, history: Sequence[dict[str, Any]]) -> None:
    """One JSON object per line, one line per finished epoch."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(row, sort_keys=False) + "\n" for row in history))


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The rows :func:`write_metrics` wrote."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_curves(history: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path | None:
    """Loss (train, validation) and validation cosine / zero-shot accuracy per epoch, as a PNG."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [row["train_loss"] for row in history], marker="o", label="train")
    if any(row.get("val_loss") is not None for row in history):
        ax_loss.plot(epochs, [row.get("val_loss") for row in history], marker="o", label="validation")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss (-cosine)")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    drew = False
    if any(row.get("val_cosine") is not None for row in history):
        ax_val.plot(epochs, [row.get("val_cosine") for row in history], marker="o", label="teacher-student cosine")
        drew = True
    if any(row.get("zeroshot_acc") is not None for row in history):
        ax_val.plot(epochs, [row.get("zeroshot_acc") for row in history], marker="s", label="zero-shot accuracy")
        drew = True
    if drew:
        ax_val.set_ylim(min(0.0, ax_val.get_ylim()[0]), 1.0)
        ax_val.legend()
    else:
        ax_val.text(0.5, 0.5, "no validation data", ha="center", va="center", transform=ax_val.transAxes)
    ax_val.set_xlabel("epoch")
    ax_val.grid(alpha=0.3)
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_loss, ax_val):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)
