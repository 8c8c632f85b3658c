"""Streaming inference: a clip as short windows, pooled vectors averaged, one head at the end.

A student is ``head(features(log-mel))`` where ``features`` ends with a mean
pool. On a device the clip never needs to be in memory: each window's log-mel
goes through ``features``, the pooled vectors are averaged, and ``head`` runs
once on the mean. The tensor arena then scales with the window, not the clip.

Windows are cut the way the device cuts them: back to back from the start
(hop = window), each with its own log-mel (centre reflect padding inside the
window), a tail shorter than a window dropped, a clip shorter than one window
repeated to fill it (:func:`tinyclap.audio.fit_length`).

**Windows are aligned to the student's stride.** A PhiNet student downsamples
time by ``time_stride`` (64 log-mel frames for the tinyCLAP students: five
stride-2 stages in PhiNet and the stride-2 1x1 conv), and its pooled vector
averages positions on that grid. A window whose frame count is not a multiple
of the stride samples the feature map at other positions than the whole clip
does. Measured on 16 real ESC-10 clips with a random-weight α0.5 N7 student
whose BatchNorms were calibrated on them (``benchmarks/streaming_windows.py``),
mean cosine between streamed and whole-clip embeddings: 0.887 with 128-frame
windows (aligned) against 0.719 with 138 (1 s, not aligned); 0.930 with 192
against 0.718 with 207. So :func:`plan_window` rounds a window
to the nearest multiple of the stride (``1 s`` → 128 frames = 0.929 s at
44.1 kHz / hop 320). What remains is mostly the zero padding at window
borders. Random weights are a pessimistic case; a trained student must be
measured with its own weights (``tinyclap export --window`` reports it), and
one that needs it can be distilled with the same windowing
(:class:`StreamingStudent` is a trainable module for that).

The graphs exported to files are built here too: :class:`FeaturesGraph`,
:class:`HeadGraph` and :class:`EmbedGraph`, with the mel-bin BatchNorm
(``bn0``) either inside or folded out into a per-mel affine map that the
front end applies (:func:`mel_affine`), so that an int8 model takes int8 log-mel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from tinyclap.audio import AudioConfig, LogMel, fit_length
from tinyclap.errors import TinyClapError
from tinyclap.teachers.base import as_batch

__all__ = [
    "WindowError",
    "Windowing",
    "time_stride",
    "plan_window",
    "cut_windows",
    "window_logmels",
    "mel_affine",
    "StreamingStudent",
    "mean_pooled",
    "stream_embed",
    "clip_embeddings",
    "FeaturesGraph",
    "HeadGraph",
    "EmbedGraph",
]


class WindowError(TinyClapError, ValueError):
    """A streaming window that the student cannot use (too short, not positive)."""


def time_stride(student: nn.Module) -> int:
    """Log-mel frames per position of the pooled feature map: the product of the time strides.

    Every convolution of the student's chain (backbone and the 1x1 conv before
    the pool) multiplies; squeeze-excite convs have stride 1 and do not count.
    """
    stride = 1
    for module in (student.backbone, student.conv):
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                stride *= int(m.stride[0])
    return stride


@dataclass(frozen=True)
class Windowing:
    """How a clip is cut for one model input.

    ``frames`` log-mel frames per window (the model input's time size),
    ``samples`` waveform samples per window (the hop too), ``audio_config`` the
    front end of one window (its ``clip_samples`` == ``samples``; its log-mel
    has ``frames + 1`` frames, of which the model takes the first ``frames``
    so that windows tile the clip's frame grid exactly). ``streaming`` is False
    when the window is the student's whole clip (then ``frames`` is the clip's
    frame count and the model is the whole student).
    """

    frames: int
    samples: int
    audio_config: AudioConfig
    stride: int
    streaming: bool
    requested_seconds: float | None = None

    @property
    def seconds(self) -> float:
        return self.samples / self.audio_config.sample_rate

    def to_dict(self) -> dict[str, Any]:
        return {
            "streaming": self.streaming,
            "seconds": self.seconds,
            "requested_seconds": self.requested_seconds,
            "frames": self.frames,
            "samples": self.samples,
            "time_stride": self.stride,
        }


def plan_window(student: nn.Module, window_seconds: float | None = None) -> Windowing:
    """The windowing of ``student`` for a window of about ``window_seconds`` (None: the whole clip).

    The frame count is rounded to the nearest multiple of :func:`time_stride`
    (at least one stride); see the module docstring for why.
    """
    clip = student.audio_config
    stride = time_stride(student)
    if window_seconds is None:
        return Windowing(clip.n_frames, clip.clip_samples, clip, stride, streaming=False)
    if not (isinstance(window_seconds, (int, float)) and math.isfinite(window_seconds) and window_seconds > 0):
        raise WindowError(f"window must be a positive number of seconds, got {window_seconds!r}")
    raw = window_seconds * clip.sample_rate / clip.hop_length
    frames = max(stride, int(round(raw / stride)) * stride)
    samples = frames * clip.hop_length
    if frames >= clip.n_frames:
        raise WindowError(
            f"a {window_seconds:g} s window ({frames} frames after aligning to the student's stride of "
            f"{stride} frames) is not shorter than the student's {clip.clip_seconds:g} s clip "
            f"({clip.n_frames} frames): use a shorter window, or none (whole clips)"
        )
    audio = clip.with_seconds(samples / clip.sample_rate)
    if audio.clip_samples != samples:  # float round trip; never seen, but the C side relies on it
        raise WindowError(f"window of {samples} samples does not round-trip through AudioConfig")
    return Windowing(frames, samples, audio, stride, streaming=True, requested_seconds=float(window_seconds))


def cut_windows(wave: np.ndarray, windowing: Windowing) -> np.ndarray:
    """``(W, samples)`` windows of a mono waveform, as the device cuts them (see module docstring)."""
    wave = np.asarray(wave, dtype=np.float32)
    n = windowing.samples
    if wave.ndim != 1:
        raise WindowError(f"cut_windows expects a mono (S,) waveform, got shape {wave.shape}")
    if len(wave) <= n:
        return fit_length(wave, n)[None]
    count = len(wave) // n
    return wave[: count * n].reshape(count, n).copy()


def window_logmels(clips: np.ndarray | torch.Tensor, windowing: Windowing) -> torch.Tensor:
    """Log-mel of every window of every clip: ``(B, W, frames, n_mels)`` float32 (raw dB, before bn0).

    Clips are ``(B, S)`` or ``(S,)`` of one length; for a non-streaming
    windowing each clip is fitted to the clip length and is its own window.
    """
    batch = as_batch(clips)
    if not windowing.streaming:
        waves = np.stack([fit_length(w, windowing.samples) for w in batch.numpy()])[:, None]
    else:
        waves = np.stack([cut_windows(w, windowing) for w in batch.numpy()])
    b, w, s = waves.shape
    frontend = LogMel(windowing.audio_config)
    with torch.inference_mode():
        mel = frontend(torch.from_numpy(waves.reshape(b * w, s)))[:, : windowing.frames]
    return mel.reshape(b, w, windowing.frames, -1).clone()


def mel_affine(student: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """The student's ``bn0`` at inference as float32 ``(scale, shift)`` per mel bin: ``x * scale + shift``."""
    scale, shift = student.mel_affine()
    return scale.float().numpy().astype(np.float32), shift.float().numpy().astype(np.float32)


def mean_pooled(student: nn.Module, windows: torch.Tensor) -> torch.Tensor:
    """``(B, W, frames, M)`` window log-mels → ``(B, embed_width)``: the mean of the windows' pooled vectors."""
    if windows.dim() != 4:
        raise ValueError(f"expected windows of shape (B, W, frames, n_mels), got {tuple(windows.shape)}")
    b, w = windows.shape[:2]
    return student.features(windows.flatten(0, 1)).reshape(b, w, -1).mean(dim=1)


class StreamingStudent(nn.Module):
    """A student that embeds clips window by window, exactly as the device does.

    ``forward(windows)`` takes ``(B, W, frames, n_mels)`` log-mels (from
    :func:`window_logmels`) and returns ``(B, D)`` unit embeddings: the mean
    of the windows' pooled vectors through the head. It shares the wrapped
    student's parameters, so it can be trained ("distil with the same
    windowing"). ``embed_audio`` makes it an AudioEncoder (waveforms in).
    """

    def __init__(self, student: nn.Module, window_seconds: float):
        super().__init__()
        self.student = student
        self.windowing = plan_window(student, window_seconds)
        if not self.windowing.streaming:
            raise WindowError("StreamingStudent needs a window shorter than the student's clip")

    @property
    def audio_config(self) -> AudioConfig:
        return self.student.audio_config

    @property
    def dim(self) -> int:
        return int(self.student.dim)

    @property
    def kept_dims(self) -> list[int] | None:
        return getattr(self.student, "kept_dims", None)

    def pooled(self, windows: torch.Tensor) -> torch.Tensor:
        """``(B, W, frames, M)`` → mean pooled vector ``(B, embed_width)``."""
        return mean_pooled(self.student, windows)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.student.head(self.pooled(windows))

    def embed_audio(self, clips: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Waveforms ``(B, S)`` or ``(S,)`` → ``(B, D)`` unit float32 on CPU (eval mode, no grad)."""
        windows = window_logmels(clips, self.windowing)
        device = next(self.student.parameters()).device
        was_training = self.student.training
        self.student.eval()
        try:
            with torch.inference_mode():
                out = self(windows.to(device))
        finally:
            self.student.train(was_training)
        return out.float().cpu()


def stream_embed(student: nn.Module, wave: np.ndarray | torch.Tensor, window_seconds: float) -> torch.Tensor:
    """Embed ``wave`` ((S,) or (B, S)) window by window: ``(B, D)`` unit vectors (see :class:`StreamingStudent`)."""
    return StreamingStudent(student, window_seconds).embed_audio(wave)


# --------------------------------------------------------------------------- export graphs


class FeaturesGraph(nn.Module):
    """Log-mel window ``(B, frames, M)`` → pooled vector ``(B, embed_width)``.

    With ``fold_bn0`` the input is the log-mel already mapped by
    :func:`mel_affine` (so it can be quantised to int8 directly) and ``bn0``
    is left out of the graph; without, the input is raw log-mel in dB.
    """

    def __init__(self, student: nn.Module, fold_bn0: bool = False):
        super().__init__()
        self.student = student
        self.fold_bn0 = fold_bn0

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        s = self.student
        if not self.fold_bn0:
            return s.features(logmel)
        return s.pool(s.conv(s.backbone(logmel.unsqueeze(1))))


class HeadGraph(nn.Module):
    """Pooled vector ``(B, embed_width)`` → unit embedding ``(B, D)``.

    The L2 norm is written as ``e * rsqrt(sum(e^2) + eps)``: it lowers to
    SUM, RSQRT and MUL, kernels TFLite Micro has (``F.normalize`` lowers to
    ABS/SQRT/MAXIMUM/DIV). Equal to the student's head up to float rounding.
    """

    eps: float = 1e-12

    def __init__(self, student: nn.Module):
        super().__init__()
        self.student = student

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        e = self.student.projection(pooled)
        return e * torch.rsqrt((e * e).sum(dim=-1, keepdim=True) + self.eps)


class EmbedGraph(nn.Module):
    """Log-mel ``(B, frames, M)`` → unit embedding ``(B, D)``: the whole student in one graph."""

    def __init__(self, student: nn.Module, fold_bn0: bool = False):
        super().__init__()
        self.features = FeaturesGraph(student, fold_bn0)
        self.head = HeadGraph(student)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(logmel))


# --------------------------------------------------------------------------- exported graphs on numpy


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def clip_embeddings(
    windows: np.ndarray, run: dict[str, Callable[[np.ndarray], np.ndarray]]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Clip embeddings ``(N, D)`` from windows ``(N, W, T, M)``.

    ``run`` maps ``"embed"``, or ``"features"`` and ``"head"``, to functions of numpy batches.

    Returns ``(embeddings, mean pooled vectors or None)``: the streaming
    procedure of the device (mean of the windows' pooled vectors, then the head).
    """
    n, w = windows.shape[:2]
    flat = windows.reshape(n * w, *windows.shape[2:])
    if "embed" in run:
        emb = run["embed"](flat).reshape(n, w, -1)
        return _unit(emb.mean(axis=1)), None
    pooled = run["features"](flat).reshape(n, w, -1).mean(axis=1).astype(np.float32)
    return _unit(run["head"](pooled)), pooled
