"""Audio in: loading, fitting to a clip length, and the log-mel front end.

Every model (teacher or student) carries an :class:`AudioConfig`; the default is
MS-CLAP 2022's, which the tinyCLAP reference code also uses.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from tinyclap.errors import TinyClapError

__all__ = [
    "AudioConfig",
    "AudioError",
    "AudioDecodeError",
    "load_audio",
    "fit_length",
    "split_windows",
    "LogMel",
    "mel_filters",
]


@dataclass(frozen=True)
class AudioConfig:
    """Everything needed to turn a waveform into the features a model expects.

    Defaults are MS-CLAP 2022's (and tinyCLAP's): 44.1 kHz, 5 s clips,
    n_fft = win = 1024, hop 320, 64 Slaney mels from 50 Hz to 14 kHz.
    """

    sample_rate: int = 44100
    clip_seconds: float = 5.0
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 320
    n_mels: int = 64
    fmin: float = 50.0
    fmax: float = 14000.0

    def __post_init__(self) -> None:
        # A preset, checkpoint or option with a wrong value fails here, naming the field
        # (not later, as a TypeError in a multiplication or a 'hop_seconds' the user never gave).
        for f in fields(self):
            value = getattr(self, f.name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if f.type == "int" and number and float(value).is_integer():
                object.__setattr__(self, f.name, int(value))
            elif f.type == "float" and number:
                object.__setattr__(self, f.name, float(value))
            else:
                kind = "an integer" if f.type == "int" else "a number"
                raise AudioError(f"audio config: {f.name} must be {kind}, got {value!r}")
            if getattr(self, f.name) < 0 or (f.name != "fmin" and getattr(self, f.name) == 0):
                what = "clip length (clip_seconds)" if f.name == "clip_seconds" else f.name
                raise AudioError(f"audio config: {what} must be positive, got {value!r}")

    @property
    def clip_samples(self) -> int:
        """Samples in one clip."""
        return int(round(self.sample_rate * self.clip_seconds))

    @property
    def n_frames(self) -> int:
        """Log-mel frames of one clip (centre padding adds one frame)."""
        return self.frames_for(self.clip_samples)

    def frames_for(self, n_samples: int) -> int:
        """Log-mel frames for a waveform of ``n_samples`` samples."""
        return n_samples // self.hop_length + 1

    def with_seconds(self, seconds: float) -> "AudioConfig":
        """The same front end over a different clip (or window) length."""
        return replace(self, clip_seconds=float(seconds))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AudioConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"AudioConfig: unknown fields {sorted(unknown)}")
        return cls(**d)

    def digest(self) -> str:
        """Short stable hash, used to refuse mixing front ends in one cache."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class AudioError(TinyClapError, ValueError):
    """Base class for audio input errors."""


class AudioDecodeError(AudioError):
    """A file that cannot be read as sound, is empty, or holds non-finite samples."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """Decode with libsndfile (wav, flac, ogg, mp3); librosa/audioread as a fallback."""
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        return data, int(rate)
    except Exception as sf_err:  # noqa: BLE001 - re-raised as AudioDecodeError below
        first = sf_err
    try:
        import warnings

        import librosa

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data, rate = librosa.load(str(path), sr=None, mono=False, dtype=np.float32)
        data = np.atleast_2d(data).T  # (S, C)
        return data, int(rate)
    except Exception:  # noqa: BLE001
        reason = str(first).splitlines()[0] if str(first) else type(first).__name__
        raise AudioDecodeError(path, f"not a readable sound file ({reason})") from None


# A file holding less than this share of the samples its header declares is truncated (an
# interrupted copy or download), not a short sound: refused instead of being tiled into a clip.
TRUNCATED_SHARE = 0.9


def min_clip_samples(config: AudioConfig) -> int:
    """Shortest sound worth embedding at ``config``: one analysis window (``n_fft`` samples, 23 ms at 44.1 kHz).

    Anything shorter would be tiled dozens of times into a clip of a few samples' repeats.
    """
    return int(config.n_fft)


def declared_frames(path: str | Path) -> int | None:
    """Frames a WAV file's header declares (its ``data`` chunk size / block size); None if not a WAV or unknown.

    libsndfile reports the frames actually present, so a WAV cut short reads as a short
    sound; comparing with this finds the cut.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return None
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, block = 12, 0
    while pos + 8 <= len(head):
        chunk, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        if chunk == b"fmt " and pos + 22 <= len(head):
            block = int.from_bytes(head[pos + 20 : pos + 22], "little")  # nBlockAlign
        elif chunk == b"data":
            if block <= 0 or size in (0, 0xFFFFFFFF):  # streaming writers leave the size unset
                return None
            return size // block
        pos += 8 + size + (size & 1)
    return None


def check_not_truncated(path: str | Path, frames: int) -> None:
    """Raise :class:`AudioDecodeError` when ``frames`` is far fewer than the file's header declares."""
    declared = declared_frames(path)
    if declared and frames < TRUNCATED_SHARE * declared:
        raise AudioDecodeError(path, f"truncated: holds {frames:,} of the {declared:,} samples its header declares")


def load_audio(path: str | Path, sample_rate: int, min_samples: int = 1) -> np.ndarray:
    """Read a sound file as mono float32 at ``sample_rate``.

    Stereo is averaged to mono (MS-CLAP concatenates channels instead, which
    doubles the clip's length: a known bug we do not reproduce). Raises
    :class:`AudioDecodeError` naming the file when it is missing, corrupt,
    empty, truncated (far fewer samples than its header declares), shorter than
    ``min_samples`` at ``sample_rate`` (too short to embed), or holds NaN/Inf samples.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(path, "no such file")
    if path.stat().st_size == 0:
        raise AudioDecodeError(path, "empty file")
    data, rate = _decode(path)
    if data.size == 0 or data.shape[0] == 0:
        raise AudioDecodeError(path, "no samples")
    if not np.all(np.isfinite(data)):
        raise AudioDecodeError(path, "contains NaN or infinite samples")
    check_not_truncated(path, data.shape[0])
    wave = data.mean(axis=1, dtype=np.float32)
    if rate != sample_rate:
        wave = resample(wave, rate, sample_rate)
    if len(wave) < min_samples:
        raise AudioDecodeError(
            path, f"too short to embed: {len(wave)} samples at {sample_rate} Hz (needs at least {min_samples})"
        )
    return np.ascontiguousarray(wave, dtype=np.float32)


def resample(wave: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling (soxr, as librosa does by default)."""
    import librosa

    if orig_rate <= 0 or target_rate <= 0:
        raise AudioError(f"sample rates must be positive, got {orig_rate} -> {target_rate}")
    if orig_rate == target_rate:
        return wave.astype(np.float32, copy=False)
    return librosa.resample(wave, orig_sr=orig_rate, target_sr=target_rate).astype(np.float32)


PadMode = Literal["repeat", "zero"]


def _pad(wave: np.ndarray, n: int, pad: PadMode) -> np.ndarray:
    if len(wave) == 0:
        raise AudioError("cannot fit an empty waveform")
    if pad == "repeat":
        reps = math.ceil(n / len(wave))
        return np.tile(wave, reps)[:n]
    if pad == "zero":
        out = np.zeros(n, dtype=wave.dtype)
        out[: len(wave)] = wave
        return out
    raise ValueError(f"pad must be 'repeat' or 'zero', got {pad!r}")


def fit_length(wave: np.ndarray, n: int, mode: PadMode = "repeat") -> np.ndarray:
    """Make a mono waveform exactly ``n`` samples long.

    Short audio is padded (``"repeat"`` tiles it, as MS-CLAP does; ``"zero"``
    appends silence). Long audio is centre-cropped: MS-CLAP crops at random,
    which makes its embeddings non-deterministic; we crop the middle.
    """
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise AudioError(f"fit_length expects mono (S,), got shape {wave.shape}")
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if len(wave) < n:
        return _pad(wave, n, mode)
    start = (len(wave) - n) // 2
    return wave[start : start + n].copy()


def window_starts(length: int, n: int, hop: int | None = None) -> list[int]:
    """Start samples of the windows :func:`split_windows` cuts (stable ids for caches)."""
    hop = hop or n
    if hop <= 0:
        raise ValueError(f"hop must be positive, got {hop}")
    if length <= n:
        return [0]
    starts = list(range(0, length - n + 1, hop))
    if starts[-1] + n < length:
        starts.append(length - n)  # last window ends at the end: nothing is dropped
    return starts


def split_windows(
    wave: np.ndarray, n: int, hop: int | None = None, pad: PadMode = "repeat"
) -> np.ndarray:
    """Cut long audio into deterministic windows of ``n`` samples, shape (W, n).

    Windows start every ``hop`` samples (default ``n``: no overlap); when the
    audio does not divide evenly a last window is aligned to the end, so every
    sample is covered and no window is padded. Audio no longer than ``n`` gives
    one window, padded with ``pad``.
    """
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise AudioError(f"split_windows expects mono (S,), got shape {wave.shape}")
    if len(wave) <= n:
        return fit_length(wave, n, pad)[None]
    return np.stack([wave[s : s + n] for s in window_starts(len(wave), n, hop)])


def mel_filters(config: AudioConfig) -> np.ndarray:
    """Slaney-scale, Slaney-normalised mel filters (librosa's default), shape (n_fft//2+1, n_mels)."""
    import librosa

    return librosa.filters.mel(
        sr=config.sample_rate,
        n_fft=config.n_fft,
        n_mels=config.n_mels,
        fmin=config.fmin,
        fmax=config.fmax,
        htk=False,
        norm="slaney",
    ).T.astype(np.float32)


def _exporting() -> bool:
    """True while torch.export / the ONNX exporter / the JIT tracer runs the module."""
    checks = (
        getattr(torch.compiler, "is_exporting", lambda: False),
        getattr(torch.compiler, "is_compiling", lambda: False),
        torch.onnx.is_in_onnx_export,
        torch.jit.is_tracing,
    )
    return any(check() for check in checks)


class LogMel(nn.Module):
    """Waveform (B, S) or (S,) → log-mel power (B, T, n_mels) in dB.

    Numerically the torchlibrosa front end of MS-CLAP 2022 and tinyCLAP: Hann
    window (periodic), centre padding by reflection, power spectrogram, Slaney
    mels, 10·log10(max(x, 1e-10)) with no top_db.

    Two paths compute the same function: in eager PyTorch a float64 FFT (exact
    to ~1e-6 dB); when exporting (``torch.export`` / ONNX / tracing, or
    ``exportable=True``) a float32 strided conv1d against a fixed DFT basis, as
    torchlibrosa does, since complex tensors do not export to ONNX or TFLite.
    The two agree to 1e-3 dB wherever the mel energy is within 80 dB of the
    clip's peak (float32 rounds near-silent bins, ≤ 0.1 dB).
    """

    amin: float = 1e-10

    def __init__(self, config: AudioConfig | None = None, exportable: bool = False):
        super().__init__()
        self.config = config or AudioConfig()
        self.exportable = exportable
        c = self.config
        if c.win_length > c.n_fft:
            raise ValueError("win_length must not exceed n_fft")
        n = np.arange(c.win_length)
        window = 0.5 - 0.5 * np.cos(2 * np.pi * n / c.win_length)  # periodic Hann
        lpad = (c.n_fft - c.win_length) // 2
        full = np.zeros(c.n_fft)
        full[lpad : lpad + c.win_length] = window
        k = np.arange(c.n_fft // 2 + 1)[:, None]
        phase = 2 * np.pi * k * np.arange(c.n_fft)[None, :] / c.n_fft
        # Basis computed in float64 then rounded once, to keep near-silent bins accurate.
        real = (np.cos(phase) * full).astype(np.float32)
        imag = (-np.sin(phase) * full).astype(np.float32)
        basis = np.concatenate([real, imag])[:, None, :]  # (2F, 1, n_fft)
        self.register_buffer("basis", torch.from_numpy(basis), persistent=False)
        self.register_buffer("window64", torch.from_numpy(full), persistent=False)
        self.register_buffer("mel", torch.from_numpy(mel_filters(c)), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 1:
            wave = wave.unsqueeze(0)
        if wave.dim() != 2:
            raise AudioError(f"LogMel expects (B, S) or (S,), got shape {tuple(wave.shape)}")
        if self.exportable or _exporting():
            return self._forward_conv(wave)
        # Eager path: a float64 FFT. A float32 DFT rounds bins that sit far below
        # their frame's loudest bin (measured: up to 9e-3 dB within 80 dB of a real
        # clip's peak); in float64 the error is ~1e-6 dB, and an FFT is cheaper
        # than the conv. Chunked so a big batch does not hold all frames at once.
        chunks = [self._forward_fft(part) for part in wave.split(8)]
        return torch.cat(chunks).to(wave.dtype if wave.is_floating_point() else torch.float32)

    def _frames(self, wave: torch.Tensor) -> torch.Tensor:
        pad = self.config.n_fft // 2
        x = nn.functional.pad(wave.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        return x.unfold(-1, self.config.n_fft, self.config.hop_length)  # (B, T, n_fft)

    def _forward_fft(self, wave: torch.Tensor) -> torch.Tensor:
        frames = self._frames(wave.to(torch.float64)) * self.window64
        spec = torch.fft.rfft(frames, dim=-1)
        power = spec.real**2 + spec.imag**2
        mel = torch.matmul(power, self.mel.to(torch.float64))
        return (10.0 * torch.log10(torch.clamp(mel, min=self.amin))).to(torch.float32)

    def _forward_conv(self, wave: torch.Tensor) -> torch.Tensor:
        """Real-valued float32 ops only, for ONNX / TFLite export."""
        c = self.config
        pad = c.n_fft // 2
        x = nn.functional.pad(wave.unsqueeze(1), (pad, pad), mode="reflect")
        spec = nn.functional.conv1d(x, self.basis, stride=c.hop_length)  # (B, 2F, T)
        f = c.n_fft // 2 + 1
        power = spec[:, :f] ** 2 + spec[:, f:] ** 2
        mel = torch.matmul(power.transpose(1, 2), self.mel)  # (B, T, M)
        return 10.0 * torch.log10(torch.clamp(mel, min=self.amin))

    def extra_repr(self) -> str:
        return json.dumps(self.config.to_dict())
