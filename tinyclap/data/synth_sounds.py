"""Procedural sound families for :mod:`tinyclap.data.synth`.

Each family is a function ``(Spec) -> float32 waveform`` that renders one sound
from attributes (pitch, speed, repetitions, active length) and a seeded numpy
Generator. The families are chosen to be acoustically distinct (tonal vs noisy,
steady vs impulsive, low vs high bands, regular vs random timing) so a small
CLAP can learn to tell them apart, and the attributes change the sound in ways
a log-mel front end can see (band, modulation rate, event count, level).

Everything is vectorised numpy/scipy: a 5 s clip at 44.1 kHz renders in a few
milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["Spec", "RENDERERS"]

TWO_PI = 2.0 * np.pi


@dataclass
class Spec:
    """What to render: the attributes a caption speaks, and the room available."""

    rng: np.random.Generator
    sr: int
    n: int  # samples available (the clip length): a sound never exceeds it
    length: int  # active samples wanted, for continuous families
    pitch: str  # "low" | "medium" | "high"
    speed: str  # "slow" | "fast"
    reps: int  # events, for event families (1, 2, or 3+)
    direction: str = "rising"  # chirps only

    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def pick(self, table: dict[str, tuple[float, float]], key: str) -> float:
        lo, hi = table[key]
        return self.u(lo, hi)

    def noise(self, n: int) -> np.ndarray:
        """Unit-variance white noise. Uniform, not Gaussian: the same flat spectrum, 4x cheaper."""
        return (self.rng.random(n, dtype=np.float32) - np.float32(0.5)) * np.float32(3.4641016)

    @property
    def nyq(self) -> float:
        return 0.45 * self.sr  # keep partials clear of Nyquist at any rate


def lfilter(b, a, x):  # noqa: ANN001 - scipy's signature
    """scipy.signal.lfilter, imported on first use (importing scipy.signal takes seconds)."""
    from scipy.signal import lfilter as _lfilter

    return _lfilter(b, a, x)


def _sin(x: np.ndarray | float) -> np.ndarray:
    """sin in float32: 5x faster than float64, and a clip is stored as float32 anyway."""
    return np.sin(np.asarray(x, dtype=np.float32))


def _cos(x: np.ndarray | float) -> np.ndarray:
    return np.cos(np.asarray(x, dtype=np.float32))


def _t(n: int, sr: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / sr


def _phase(freq: np.ndarray | float, n: int, sr: int, phase0: float = 0.0) -> np.ndarray:
    """Phase of an oscillator whose frequency may vary per sample (float64: no drift)."""
    if np.isscalar(freq):
        return phase0 + TWO_PI * float(freq) * _t(n, sr)
    return phase0 + TWO_PI * np.cumsum(freq, dtype=np.float64) / sr


def _resonator(x: np.ndarray, freq: float, tau: float, sr: int) -> np.ndarray:
    """Two-pole resonance at ``freq`` Hz ringing with time constant ``tau`` s."""
    r = np.exp(-1.0 / max(tau * sr, 1.0))
    w = TWO_PI * freq / sr
    return lfilter([1.0 - r], [1.0, -2.0 * r * np.cos(w), r * r], x)


def _bandpass(x: np.ndarray, freq: float, q: float, sr: int) -> np.ndarray:
    """RBJ constant-peak band-pass biquad."""
    w = TWO_PI * freq / sr
    alpha = np.sin(w) / (2.0 * q)
    b = np.array([alpha, 0.0, -alpha])
    a = np.array([1.0 + alpha, -2.0 * np.cos(w), 1.0 - alpha])
    return lfilter(b / a[0], a / a[0], x)


def _lowpass1(x: np.ndarray, freq: float, sr: int) -> np.ndarray:
    a = np.exp(-TWO_PI * freq / sr)
    return lfilter([1.0 - a], [1.0, -a], x)


def _events(s: Spec, spacing: tuple[float, float], render: Callable[[], np.ndarray]) -> np.ndarray:
    """``s.reps`` events, each ``render()``-ed afresh, ``spacing`` seconds apart (onset to onset)."""
    onsets = [0]
    for _ in range(s.reps - 1):
        onsets.append(onsets[-1] + int(s.u(*spacing) * s.sr))
    grains = [render() for _ in onsets]
    total = min(s.n, max(o + len(g) for o, g in zip(onsets, grains)))
    out = np.zeros(total)
    for o, g in zip(onsets, grains):
        if o >= total:
            break
        seg = g[: total - o]
        out[o : o + len(seg)] += seg
    return out


def _scatter(n: int, positions: np.ndarray, grain: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Add ``grain`` scaled by ``gains`` at ``positions`` (cropped to ``n``)."""
    out = np.zeros(n + len(grain))
    for p, g in zip(positions, gains):
        out[p : p + len(grain)] += g * grain
    return out[:n]


# ----------------------------------------------------------------------------- continuous families
def tone(s: Spec) -> np.ndarray:
    f0 = min(s.pick({"low": (110, 220), "medium": (300, 600), "high": (1200, 2500)}, s.pitch), s.nyq / 3)
    ph = _phase(f0, s.length, s.sr, s.u(0, TWO_PI))
    return _sin(ph) + s.u(0, 0.3) * _sin(2 * ph) + s.u(0, 0.2) * _sin(3 * ph)


def beeping(s: Spec) -> np.ndarray:
    f0 = min(s.pick({"low": (380, 600), "medium": (800, 1300), "high": (2000, 3500)}, s.pitch), s.nyq / 3)
    rate = s.pick({"slow": (1.5, 2.5), "fast": (5.0, 8.0)}, s.speed)
    duty = s.u(0.3, 0.55)
    t = _t(s.length, s.sr)
    pos = (t * rate) % 1.0
    ramp = 0.004 * rate  # 4 ms edges, in cycles
    env = np.clip(np.minimum(pos, duty - pos) / ramp, 0.0, 1.0)
    ph = _phase(f0, s.length, s.sr)
    return env * np.tanh(2.5 * _sin(ph))  # square-ish: odd harmonics, like an alarm


def chirp(s: Spec) -> np.ndarray:
    lo, hi = {"low": (200, 600), "medium": (500, 1600), "high": (1500, 5000)}[s.pitch]
    hi = min(hi, s.nyq)
    sweep = s.pick({"slow": (0.6, 1.0), "fast": (0.12, 0.25)}, s.speed)
    period = sweep * (1.0 + s.u(0.1, 0.5))
    t = _t(s.length, s.sr)
    pos = t % period
    frac = np.clip(pos / sweep, 0.0, 1.0)
    if s.direction == "falling":
        frac = 1.0 - frac
    freq = lo * np.exp(frac.astype(np.float32) * np.float32(np.log(hi / lo)))  # exponential sweep
    ramp = 0.005
    env = np.clip(np.minimum(pos, sweep - pos) / ramp, 0.0, 1.0)
    return env * _sin(_phase(freq, s.length, s.sr))


def siren(s: Spec) -> np.ndarray:
    fc = s.pick({"low": (380, 600), "medium": (700, 1000), "high": (1200, 1800)}, s.pitch)
    fm = s.pick({"slow": (0.25, 0.5), "fast": (3.0, 6.0)}, s.speed)
    depth = s.u(0.2, 0.35)
    t = _t(s.length, s.sr)
    freq = fc * (1.0 + depth * _sin(TWO_PI * fm * t + s.u(0, TWO_PI)))
    ph = _phase(freq, s.length, s.sr)
    return _sin(ph) + 0.35 * _sin(2 * ph) + 0.15 * _sin(3 * ph)


def ticking(s: Spec) -> np.ndarray:
    rate = s.pick({"slow": (1.0, 2.0), "fast": (5.0, 10.0)}, s.speed)
    fr = min(s.pick({"low": (600, 1200), "medium": (1500, 3000), "high": (4000, 8000)}, s.pitch), s.nyq)
    x = np.zeros(s.length)
    step = s.sr / rate
    ticks = np.arange(s.u(0, step), s.length, step).astype(int)
    x[ticks] = 1.0
    x[ticks[1::2]] = 0.65  # tick-tock
    return _resonator(x, fr, s.u(0.0015, 0.004), s.sr) * 40.0


def engine(s: Spec) -> np.ndarray:
    # Speed is the engine's firing rate: idling versus revving.
    fr = s.pick({"slow": (20, 35), "fast": (70, 120)}, s.speed)
    t = _t(s.length, s.sr)
    freq = fr * (1.0 + 0.06 * _sin(TWO_PI * s.u(0.3, 1.2) * t))
    pulses = (0.5 + 0.5 * _cos(_phase(freq, s.length, s.sr))) ** 8  # narrow pulses: many harmonics
    noise = s.noise(s.length)
    x = pulses + 0.25 * noise * pulses
    x = _lowpass1(_lowpass1(x, s.u(600, 1400), s.sr), 2500, s.sr)
    return x - x.mean()


def rain(s: Spec) -> np.ndarray:
    # Speed is the rain's intensity: light (sparse drops) or heavy (dense crackle).
    density = s.pick({"slow": (60, 150), "fast": (600, 1500)}, s.speed)
    count = max(1, int(density * s.length / s.sr))
    x = np.zeros(s.length)
    pos = s.rng.integers(0, s.length, count)
    np.add.at(x, pos, s.rng.lognormal(0.0, 0.6, count))
    drops = _resonator(x, min(s.u(2500, 6000), s.nyq), 0.0008, s.sr) + 0.6 * _resonator(
        x, s.u(900, 1800), 0.0012, s.sr
    )
    hiss = _lowpass1(s.noise(s.length), 3000, s.sr)
    return drops * 30.0 + 0.08 * hiss * (1.0 + 0.5 * (s.speed == "fast"))


_VOWELS = np.array(
    [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410), (660, 1720, 2410)]
)


def speech(s: Spec) -> np.ndarray:
    f0 = s.pick({"low": (85, 130), "medium": (130, 180), "high": (190, 260)}, s.pitch)
    scale = {"low": 1.0, "medium": 1.08, "high": 1.17}[s.pitch]  # shorter vocal tract, higher formants
    rate = s.pick({"slow": (2.5, 3.5), "fast": (5.5, 7.0)}, s.speed)
    t = _t(s.length, s.sr)
    contour = f0 * (1.0 + 0.12 * _sin(TWO_PI * s.u(0.3, 0.8) * t + s.u(0, TWO_PI)) - 0.08 * t / max(t[-1], 1e-9))
    cycles = np.floor(_phase(contour, s.length, s.sr) / TWO_PI)
    excitation = np.zeros(s.length)
    excitation[1:] = np.diff(cycles)  # one impulse per glottal cycle
    excitation += 0.02 * s.noise(s.length)
    out = np.zeros(s.length)
    pos = 0
    syllables_left = int(s.rng.integers(2, 5))
    while pos < s.length:
        dur = int(s.sr / rate * s.u(0.75, 1.25))
        seg = excitation[pos : pos + dur]
        if len(seg) == 0:
            break
        f1, f2, f3 = _VOWELS[int(s.rng.integers(len(_VOWELS)))] * scale
        y = _resonator(seg, f1, 0.006, s.sr) + 0.6 * _resonator(seg, f2, 0.004, s.sr)
        y += 0.3 * _resonator(seg, min(f3, s.nyq), 0.003, s.sr)
        out[pos : pos + len(seg)] = y * np.maximum(_sin(np.linspace(0, np.pi, len(seg))), 0.0) ** 0.6
        pos += len(seg)
        syllables_left -= 1
        if syllables_left == 0:  # a pause between words
            pos += int(s.u(0.08, 0.25) * s.sr)
            syllables_left = int(s.rng.integers(2, 5))
    return out


def bubbles(s: Spec) -> np.ndarray:
    rate = s.pick({"slow": (4, 10), "fast": (25, 60)}, s.speed)
    lo, hi = {"low": (200, 500), "medium": (500, 1200), "high": (1200, 3000)}[s.pitch]
    grains = []
    for _ in range(6):  # a few bubble shapes, reused with random gains
        dur = s.u(0.02, 0.06)
        m = int(dur * s.sr)
        f = s.u(lo, hi) * (1.0 + s.u(0.2, 0.6) * np.linspace(0, 1, m))  # bubbles rise in pitch
        grains.append(_sin(_phase(f, m, s.sr)) * np.exp(-np.linspace(0, 5, m)))
    count = max(1, int(rate * s.length / s.sr))
    pos = np.sort(s.rng.integers(0, s.length, count))
    which = s.rng.integers(0, len(grains), count)
    gains = s.rng.uniform(0.3, 1.0, count)
    out = np.zeros(s.length + max(len(g) for g in grains))
    for p, k, g in zip(pos, which, gains):
        out[p : p + len(grains[k])] += g * grains[k]
    gurgle = _lowpass1(s.noise(s.length), 300, s.sr)
    return out[: s.length] + 0.3 * gurgle


def wind(s: Spec) -> np.ndarray:
    fc = s.pick({"low": (200, 450), "medium": (450, 800), "high": (800, 1600)}, s.pitch)
    gust = s.pick({"slow": (0.1, 0.3), "fast": (0.8, 1.6)}, s.speed)
    noise = s.noise(s.length)
    t = _t(s.length, s.sr)
    lfo = (
        _sin(TWO_PI * gust * t + s.u(0, TWO_PI))
        + 0.5 * _sin(TWO_PI * gust * 1.7 * t + s.u(0, TWO_PI))
        + 0.25 * _sin(TWO_PI * gust * 3.1 * t + s.u(0, TWO_PI))
    )
    env = np.clip(0.55 + 0.45 * lfo / 1.75, 0.05, 1.0)
    howl = _bandpass(noise, fc, 6.0, s.sr) + 0.7 * _bandpass(noise, fc * 1.5, 5.0, s.sr)
    rumble = _lowpass1(_lowpass1(noise, 250, s.sr), 250, s.sr) * 3.0
    return env * (howl + rumble)


def birdsong(s: Spec) -> np.ndarray:
    lo, hi = {"low": (1500, 2500), "medium": (2500, 4000), "high": (4000, 7000)}[s.pitch]
    rate = s.pick({"slow": (4, 7), "fast": (12, 20)}, s.speed)
    out = np.zeros(s.length)
    pos = 0
    while pos < s.length:
        for _ in range(int(s.rng.integers(3, 9))):  # one phrase of notes
            m = int(s.u(0.03, 0.09) * s.sr)
            fc = min(s.u(lo, hi), s.nyq / 1.3)
            tt = np.arange(m) / s.sr
            f = fc * (1.0 + 0.15 * _sin(TWO_PI * s.u(20, 60) * tt) + s.u(-0.25, 0.25) * tt / max(tt[-1], 1e-9))
            note = _sin(_phase(f, m, s.sr)) * _sin(np.linspace(0, np.pi, m))
            end = min(pos + m, s.length)
            out[pos:end] += note[: end - pos]
            pos += int(s.sr / rate)
            if pos >= s.length:
                break
        pos += int(s.u(0.3, 0.8) * s.sr)
    return out


# ----------------------------------------------------------------------------- event families
def noise_burst(s: Spec) -> np.ndarray:
    def burst() -> np.ndarray:
        m = int(s.u(0.08, 0.3) * s.sr)
        env = np.exp(-np.linspace(0, 4, m))
        env[: int(0.002 * s.sr)] *= np.linspace(0, 1, int(0.002 * s.sr))
        return s.noise(m) * env

    return _events(s, (0.5, 0.9) if s.speed == "slow" else (0.15, 0.3), burst)


_BELL = np.array([0.56, 0.92, 1.19, 1.71, 2.0, 2.74, 3.0, 4.07])


def bell(s: Spec) -> np.ndarray:
    f0 = s.pick({"low": (180, 300), "medium": (400, 700), "high": (900, 1500)}, s.pitch)
    m = min(int(1.6 * s.sr), s.n)
    t = _t(m, s.sr)
    strike = np.zeros(m)
    for k, ratio in enumerate(_BELL):  # inharmonic partials: what makes a bell a bell
        f = f0 * ratio
        if f < s.nyq:
            strike += np.exp(-t * (1.5 + 1.2 * ratio)) * _sin(TWO_PI * f * t + k) / (1 + 0.3 * k)
    return _events(s, (0.8, 1.2) if s.speed == "slow" else (0.25, 0.45), lambda: strike * s.u(0.8, 1.0))


def dog_bark(s: Spec) -> np.ndarray:
    lo, hi = {"low": (250, 400), "medium": (400, 550), "high": (550, 900)}[s.pitch]

    def bark() -> np.ndarray:
        m = int(s.u(0.12, 0.25) * s.sr)
        u = np.linspace(0, 1, m)
        f = s.u(lo, hi) * (1.0 + 0.25 * np.minimum(u * 8, 1.0) - 0.45 * u)  # quick rise, long fall
        ph = _phase(f, m, s.sr)
        x = sum(_sin(k * ph) / k for k in range(1, 7)) + 0.4 * s.noise(m)
        env = np.minimum(u * 25, 1.0) * np.exp(-u * 4)
        return _resonator(x * env, s.u(900, 1500), 0.004, s.sr) * 20.0

    return _events(s, (0.6, 1.0) if s.speed == "slow" else (0.25, 0.4), bark)


def knocking(s: Spec) -> np.ndarray:
    fr = s.pick({"low": (100, 200), "medium": (200, 400), "high": (400, 800)}, s.pitch)

    def knock() -> np.ndarray:
        m = int(0.15 * s.sr)
        t = _t(m, s.sr)
        body = _sin(TWO_PI * fr * s.u(0.95, 1.05) * t) * np.exp(-t / s.u(0.02, 0.04))
        click = np.zeros(m)
        c = int(0.003 * s.sr)
        click[:c] = s.noise(c) * 0.5
        return body + click

    return _events(s, (0.4, 0.7) if s.speed == "slow" else (0.12, 0.2), knock)


RENDERERS: dict[str, Callable[[Spec], np.ndarray]] = {
    "tone": tone,
    "beeping": beeping,
    "chirp": chirp,
    "siren": siren,
    "ticking": ticking,
    "engine": engine,
    "rain": rain,
    "speech": speech,
    "bubbles": bubbles,
    "wind": wind,
    "birdsong": birdsong,
    "noise burst": noise_burst,
    "bell": bell,
    "dog bark": dog_bark,
    "knocking": knocking,
}
