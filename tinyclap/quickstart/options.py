"""The quickstart's options: a plain dataclass, importable without torch (the CLI reads its defaults)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tinyclap.errors import TinyClapError

__all__ = ["QuickstartOptions", "QuickstartOptionError", "check_options"]


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


class QuickstartOptionError(TinyClapError, ValueError):
    """A quickstart option that cannot work (found before any step runs)."""


def check_options(opts: QuickstartOptions) -> None:
    """Refuse bad options before the first step runs (not after minutes of pretraining).

    Checks the device target, the student preset, the counts and the data specs'
    syntax; raises the :class:`~tinyclap.errors.TinyClapError` that names the option.
    """
    from tinyclap.data.spec import parse_spec
    from tinyclap.export.targets import load_target
    from tinyclap.students.encoder import load_preset

    for name, value, least in (
        ("--distill-epochs", opts.distill_epochs, 1), ("--pretrain-epochs", opts.pretrain_epochs, 1),
        ("--n-train", opts.n_train, 1), ("--n-eval", opts.n_eval, 2), ("--seed", opts.seed, 0),
    ):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise QuickstartOptionError(f"{name} must be an integer >= {least}, got {value!r}")
    try:
        load_target(opts.target)
    except TinyClapError as err:
        raise QuickstartOptionError(f"--target: {err}") from None
    try:
        load_preset(opts.student_preset)
    except TinyClapError as err:
        raise QuickstartOptionError(f"--student-preset: {err}") from None
    for option, specs in (("--data", opts.data), ("--eval-data", opts.eval_data)):
        for spec in specs:
            try:
                parse_spec(spec)
            except TinyClapError as err:
                raise QuickstartOptionError(f"{option}: {err}") from None

