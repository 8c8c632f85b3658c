"""The quickstart's options: a plain dataclass, importable without torch (the CLI reads its defaults)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["QuickstartOptions"]


@dataclass
class QuickstartOptions:
    """What the quickstart runs on; recorded so a re-run can reuse finished steps."""

    out: str = "runs/quickstart"
    data: list[str] = field(default_factory=list)  # training specs; empty: synth without UNSEEN_FAMILIES
    eval_data: list[str] = field(default_factory=list)  # labelled held-out specs; empty: synth seen + unseen
    n_train: int = 1200  # synth clips for training (when --data is not given)
    n_eval: int = 300  # synth clips for each evaluation set
    pretrain_recipe: str = "quick"
    pretrain_epochs: int = 8
    teacher_dim: int = 512  # wider than the device needs, so pruning has work to do
    student_preset: str = "mcu_cortex_m4"  # trains in minutes on a CPU; fits stm32h7 many times over
    distill_preset: str = "quick"
    distill_epochs: int = 12
    target: str = "stm32h7"
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
