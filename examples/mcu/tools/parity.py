"""Measure the C front end against tinyclap.audio.LogMel on real clips and print the figures.

    python examples/mcu/tools/parity.py [AUDIO_DIR] [--clips N]

Builds the host tools (make) in a temporary folder, runs every clip through
both front ends and prints the largest and median per-clip max |difference|
in dB: everywhere, and where the mel energy is within 80 dB of the clip's
peak; also for the float64 build against a float64 librosa computation.
A measurement, not a test: tests/test_mcu_frontend.py holds the asserts.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import librosa
import numpy as np
import torch

from tinyclap.audio import AudioConfig, LogMel, load_audio
from tinyclap.export.mcu import write_frontend_tables

MCU = Path(__file__).resolve().parent.parent


def float64_logmel(wave: np.ndarray, c: AudioConfig) -> np.ndarray:
    spec = np.abs(librosa.stft(wave.astype(np.float64), n_fft=c.n_fft, hop_length=c.hop_length,
                               win_length=c.win_length, window="hann", center=True, pad_mode="reflect")) ** 2
    mel = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax,
                              dtype=np.float64)
    return (10 * np.log10(np.maximum(mel @ spec, 1e-10))).T


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("audio_dir", nargs="?", default=str(MCU.parents[1].parent / "shared/data/esc10/audio"))
    ap.add_argument("--clips", type=int, default=0, help="evenly spaced subset (0: all)")
    args = ap.parse_args()
    files = sorted(p for p in Path(args.audio_dir).iterdir() if p.suffix in {".ogg", ".wav", ".flac"})
    if args.clips:
        files = files[:: max(1, len(files) // args.clips)][: args.clips]
    c = AudioConfig()
    lm = LogMel(c)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        write_frontend_tables(t / "gen", c)
        subprocess.run(["make", "-s", "-C", str(MCU), f"BUILD={t / 'build'}", f"GEN={t / 'gen'}", "host"],
                       check=True)
        for path in files:
            wave = load_audio(path, c.sample_rate)
            wave.tofile(t / "w.f32")
            out = {}
            for tool in ("logmel_host", "logmel_host_f64"):
                subprocess.run([str(t / "build" / tool), "buffer", str(t / "w.f32"), str(t / "o.f32")], check=True)
                out[tool] = np.fromfile(t / "o.f32", np.float32).reshape(-1, c.n_mels)
            with torch.inference_mode():
                py = lm(torch.from_numpy(wave))[0].numpy()
            ref = float64_logmel(wave, c)
            loud = py >= py.max() - 80.0
            d = np.abs(out["logmel_host"] - py)
            dc, dp = np.abs(out["logmel_host"] - ref), np.abs(py - ref)
            rows.append((d.max(), d[loud].max(), dc.max(), dc[loud].max(), dp.max(), dp[loud].max(),
                         np.abs(out["logmel_host_f64"] - ref).max()))
    r = np.array(rows)
    names = ["C f32 vs LogMel, everywhere", "C f32 vs LogMel, within 80 dB of peak",
             "C f32 vs float64 librosa, everywhere", "C f32 vs float64 librosa, within 80 dB",
             "LogMel vs float64 librosa, everywhere", "LogMel vs float64 librosa, within 80 dB",
             "C f64 build vs float64 librosa, everywhere"]
    print(f"{len(files)} clips from {args.audio_dir}; per-clip max |dB difference|:")
    for i, name in enumerate(names):
        print(f"  {name:44s} max {r[:, i].max():.2e}  median {np.median(r[:, i]):.2e}")


if __name__ == "__main__":
    main()
