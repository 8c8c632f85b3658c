"""Tiny students, banks and calibration clips for the export tests.

The student has random weights but BatchNorm statistics measured on real
ESC-10 clips (a train-mode pass with cumulative averages), so activations
have realistic ranges and int8 quantisation is exercised as on a trained
student. The prompt bank's rows are the student's own embeddings of a few
clips (prototypes), so zero-shot decisions depend on the audio and the
agreement figure means something.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tinyclap.audio import AudioConfig, fit_length, load_audio
from tinyclap.bank import PromptBank
from tinyclap.export.calibration import CalibrationSet, calibration_from_clips
from tinyclap.students import AudioStudent, StudentConfig

# 16 kHz, 32 mels, 2 s clips: 201 frames, a small fraction of the default's cost.
TEST_AUDIO = AudioConfig(
    sample_rate=16000, clip_seconds=2.0, n_fft=512, win_length=512, hop_length=160, n_mels=32, fmin=50.0, fmax=7800.0
)
TINY = StudentConfig(alpha=0.25, beta=0.75, t0=2, num_layers=5, embed_width=32, dim=16, head_act="relu")


def load_clips(files: list[Path], n: int, audio: AudioConfig = TEST_AUDIO, offset: int = 0) -> list[np.ndarray]:
    """``n`` clips spread over ``files`` (different ESC-10 classes), fitted to ``audio``'s clip length."""
    picks = np.linspace(offset, len(files) - 1, n).round().astype(int)
    return [fit_length(load_audio(files[i], audio.sample_rate), audio.clip_samples) for i in picks]


def tiny_student(
    clips: list[np.ndarray], config: StudentConfig = TINY, audio: AudioConfig = TEST_AUDIO, seed: int = 0
) -> AudioStudent:
    """A random-weight student whose BatchNorm statistics come from ``clips``."""
    torch.manual_seed(seed)
    student = AudioStudent(config, audio)
    bns = [m for m in student.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the pass
    student.train()
    with torch.no_grad():
        student(student.frontend(torch.from_numpy(np.stack(clips))))
    for m in bns:
        m.momentum = config.bn_momentum
    return student.eval()


def prototype_bank(student: AudioStudent, clips: list[np.ndarray], labels: list[str]) -> PromptBank:
    """A bank whose rows are ``student``'s embeddings of ``clips`` (one per label)."""
    emb = student.embed_audio(np.stack(clips)).numpy()
    return PromptBank(
        emb, labels, [[f"the sound of {x}"] for x in labels], ["the sound of {}"], "test-prototypes", 100.0, student.dim
    )


def calibration(clips: list[np.ndarray], audio: AudioConfig = TEST_AUDIO) -> CalibrationSet:
    return calibration_from_clips(clips, audio, [f"clip{i}" for i in range(len(clips))], source="esc10 test clips")
