"""The picture beside the rankings: the waveform (with the model's windows marked) over its log-mel."""

from __future__ import annotations

import numpy as np
import torch

from tinyclap.audio import AudioConfig, LogMel, window_starts

__all__ = ["clip_figure"]


def clip_figure(wave: np.ndarray, config: AudioConfig, title: str = "") -> np.ndarray:
    """An RGB image (H, W, 3) uint8: the waveform on top, its log-mel (dB) below.

    The log-mel is the model's own front end (:class:`~tinyclap.audio.LogMel` at
    ``config``), so what you see is what the encoder sees; dashed lines mark
    where a long clip is cut into the windows whose embeddings are averaged.
    """
    # An Agg canvas on a bare Figure: no pyplot, no global backend switch, safe from server threads.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    wave = np.asarray(wave, dtype=np.float32)
    rate = config.sample_rate
    with torch.inference_mode():
        mel = LogMel(config)(torch.from_numpy(wave)).squeeze(0).numpy()  # (T, M)
    seconds = len(wave) / rate
    fig = Figure(figsize=(9, 4.2), dpi=100, layout="constrained")
    ax_w, ax_m = fig.subplots(2, 1, sharex=True, height_ratios=[1, 2])
    t = np.arange(len(wave)) / rate
    step = max(1, len(wave) // 20000)  # plotting every sample of a long clip is slow and looks the same
    ax_w.plot(t[::step], wave[::step], linewidth=0.5, color="#1f6f8b")
    ax_w.set_ylabel("amplitude")
    ax_w.set_ylim(-1.05, 1.05)
    n = config.clip_samples
    if len(wave) > n:
        starts = window_starts(len(wave), n)
        for s in starts:
            ax_w.axvline(s / rate, color="#c0392b", linestyle="--", linewidth=0.8)
            ax_m.axvline(s / rate, color="white", linestyle="--", linewidth=0.8)
        title = f"{title}   (dashed: starts of the {len(starts)} windows of {config.clip_seconds:g} s)".strip()
    if title:
        ax_w.set_title(title, fontsize=10)
    peak = float(mel.max())
    image = ax_m.imshow(
        mel.T,
        origin="lower",
        aspect="auto",
        extent=(0.0, seconds, 0, config.n_mels),
        vmin=peak - 80.0,  # an 80 dB range, the usual view; quieter bins are all one colour
        vmax=peak,
        cmap="magma",
    )
    ax_m.set_xlabel("time (s)")
    ax_m.set_ylabel(f"mel bin ({config.fmin:g}–{config.fmax:g} Hz)")
    fig.colorbar(image, ax=ax_m, label="dB", pad=0.01)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[..., :3])
