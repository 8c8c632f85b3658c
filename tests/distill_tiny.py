"""Tiny pieces for the distillation tests: a short front end, an honest test teacher, a toy student.

``ProjTeacher`` implements the Teacher protocol for real: a fixed random
projection of per-mel-bin mean and spread of :class:`tinyclap.audio.LogMel`
features, L2-normalised. It is deterministic and cheap, and sounds that differ
in spectrum get different embeddings, which is all the engine needs.
"""

from __future__ import annotations

import zlib

import pytest
import torch
import torch.nn.functional as F

from tinyclap.audio import AudioConfig, LogMel

TINY_AUDIO = AudioConfig(
    sample_rate=8000, clip_seconds=0.5, n_fft=256, win_length=256, hop_length=128, n_mels=16, fmin=50.0, fmax=3800.0
)
DIM = 12


@pytest.fixture
def one_thread():
    """One torch thread: tiny models on a shared 2-core machine run ~7x faster without oversubscription.

    Test modules import it and apply it with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


class ProjTeacher:
    """Teacher protocol over a random projection of log-mel statistics."""

    licence = "test teacher (no licence)"
    logit_scale = 10.0

    def __init__(self, name: str = "test-proj", dim: int = DIM, audio_config: AudioConfig = TINY_AUDIO, seed: int = 0):
        self.name, self.dim, self.audio_config = name, dim, audio_config
        self.mel = LogMel(audio_config)
        g = torch.Generator().manual_seed(seed)
        self.weight = torch.randn(2 * audio_config.n_mels, dim, generator=g)
        self.calls = 0

    def embed_audio(self, clips) -> torch.Tensor:
        self.calls += 1
        x = torch.as_tensor(clips, dtype=torch.float32)
        with torch.no_grad():
            m = self.mel(x)
            stats = torch.cat([m.mean(1), m.std(1)], dim=-1)
            stats = (stats - stats.mean(-1, keepdim=True)) / 10.0
            return F.normalize(stats @ self.weight, dim=-1)

    def embed_text(self, prompts: list[str]) -> torch.Tensor:
        if not prompts:
            raise ValueError("no prompts")
        rows = []
        for p in prompts:  # a stable per-prompt vector (str hashes vary between processes)
            g = torch.Generator().manual_seed(zlib.crc32(p.encode()))
            rows.append(torch.randn(self.dim, generator=g))
        return F.normalize(torch.stack(rows), dim=-1)


def tiny_student_config(dim: int = DIM, dropout: bool = True):
    from tinyclap.students import StudentConfig

    return StudentConfig(
        alpha=0.25, beta=0.75, t0=4, num_layers=3, embed_width=16, dim=dim, downsampling_layers=(2,),
        block_dropout=0.05 if dropout else 0.0, proj_dropout=0.5 if dropout else 0.0,
    )


def tiny_student(seed: int = 0, dim: int = DIM, dropout: bool = True):
    from tinyclap.students import AudioStudent

    torch.manual_seed(seed)
    return AudioStudent(tiny_student_config(dim, dropout), TINY_AUDIO)


def synth(n: int = 40, seed: int = 1, audio_config: AudioConfig = TINY_AUDIO, **kw):
    from tinyclap.data import open_dataset

    return open_dataset(f"synth?n={n}&seed={seed}", audio_config, **kw)
