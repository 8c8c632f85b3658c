"""Tiny models for the demo tests, laid out like a ``tinyclap quickstart`` run folder.

The teacher is an *untrained* local CLAP (a width-2 CNN14 audio tower and a tiny
random BERT text tower, 16-d space): the demo tests check that the page shows
exactly what the Python classifier computes, which needs a deterministic model,
not a good one. Building everything takes a few seconds on one core.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from tinyclap.audio import AudioConfig

# 44.1 kHz like the ESC-10 files (no resampling), 1 s windows so a 5 s clip is cut into 5, coarse frames.
AUDIO = AudioConfig(sample_rate=44100, clip_seconds=1.0, hop_length=1024, n_mels=32)
DIM = 16
STUDENT_NAME = "phinet_alpha_0.25_beta_0.75_t0_2_N_3"
BANK_LABELS = ["dog", "rooster", "rain", "sea waves", "crackling fire", "crying baby", "clock tick"]
PROMPTS = ["a dog barking", "rain falling on a roof", "a clock ticking", "a chainsaw cutting wood"]


@dataclass
class DemoRun:
    root: Path  # the run folder (what `tinyclap demo --run` points at)
    teacher: Path  # teacher .json
    student: Path  # student .json
    bank: Path  # bank .npz


def build_demo_run(root: Path) -> DemoRun:
    """Write a teacher, a student and a bank under ``root`` (teacher/, student/, bank.npz)."""
    from pretrain_tiny import build_tiny_text_model

    from tinyclap.bank import PromptBank
    from tinyclap.pretrain.model import LocalClap
    from tinyclap.students import AudioStudent, save_student
    from tinyclap.teachers.local import load_local, save_local

    text = build_tiny_text_model(root / "text")
    torch.manual_seed(0)
    clap = LocalClap("cnn14:width=2,embed=32,dropout=0.0", AUDIO, dim=DIM, text_model=str(text)).eval()
    teacher_path = save_local(root / "teacher" / "teacher.json", clap, data=["none (untrained test model)"])
    teacher = load_local(teacher_path)
    torch.manual_seed(1)
    student = AudioStudent.from_name(STUDENT_NAME, dim=DIM, audio_config=AUDIO, embed_width=64, head_act="relu").eval()
    student_path = save_student(root / "student" / "best.json", student, teacher=teacher.name)
    bank_path = PromptBank.build(teacher, BANK_LABELS).save(root / "bank.npz")
    return DemoRun(root, Path(teacher_path), Path(student_path), bank_path)


def demo_run(tmp_path_factory) -> DemoRun:  # noqa: ANN001 - pytest's TempPathFactory
    """The session's tiny run folder, built on first use and shared by the demo test modules."""
    root = tmp_path_factory.getbasetemp() / "demo-run"
    if not (root / "bank.npz").is_file():
        return build_demo_run(root)
    return DemoRun(root, root / "teacher" / "teacher.json", root / "student" / "best.json", root / "bank.npz")


def free_port() -> int:
    """A loopback port nobody is listening on right now."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def python_ranking(encoder, bank, wave) -> tuple[list[str], list[float]]:  # noqa: ANN001
    """Labels best first and their probabilities, computed directly with ZeroShotClassifier."""
    import numpy as np

    from tinyclap.zeroshot import ZeroShotClassifier

    p = ZeroShotClassifier(encoder, bank).predict_proba([wave])[0]
    order = np.argsort(-p, kind="stable")
    return [bank.labels[j] for j in order], [float(p[j]) for j in order]
