"""Streamed vs whole-clip embeddings for windows aligned and not aligned to the student's stride.

A student embeds a 5 s clip either whole or as back-to-back windows (mean of
the windows' pooled vectors, then the head). This prints the cosine between
the two for several window lengths in log-mel frames: multiples of the
student's time stride (64 frames for N=7 PhiNets) and lengths that are not
(138 frames is 1 s at 44.1 kHz / hop 320). Random weights with BatchNorm
statistics measured on the clips; a trained student must be measured with
its own weights (``tinyclap export --window`` reports it).

    python benchmarks/streaming_windows.py [--data DIR] [--clips 16] [--student NAME]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from tinyclap.audio import AudioConfig, fit_length, load_audio
from tinyclap.export.report import cosine_stats
from tinyclap.export.streaming import plan_window, time_stride, window_logmels
from tinyclap.students import AudioStudent, StudentConfig

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared/data/esc10/audio"), help="folder of clips")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--student", default="phinet_alpha_0.50_beta_0.75_t0_4_N_7")
    parser.add_argument("--frames", default="128,138,192,207,256,276", help="window lengths in frames")
    args = parser.parse_args()
    audio = AudioConfig()
    files = sorted(Path(args.data).glob("*.ogg"))
    picks = np.linspace(0, len(files) - 1, args.clips).round().astype(int)
    clips = np.stack([fit_length(load_audio(files[i], audio.sample_rate), audio.clip_samples) for i in picks])
    config = StudentConfig.from_name(args.student, embed_width=512, dim=256, head_act="relu")
    torch.manual_seed(0)
    student = AudioStudent(config, audio)
    for m in student.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    student.train()
    with torch.no_grad():
        student(student.frontend(torch.from_numpy(clips)))
    student.eval()
    whole = student.embed_audio(clips).numpy()
    stride = time_stride(student)
    print(f"{config.name}, stride {stride} frames, {len(clips)} ESC-10 clips of 5 s ({audio.n_frames} frames)")
    print(f"{'frames':>7} {'seconds':>8} {'aligned':>8} {'windows':>8} {'cos mean':>9} {'cos worst':>10}")
    base = plan_window(student, 1.0)
    for frames in (int(f) for f in args.frames.split(",")):
        samples = frames * audio.hop_length
        w = replace(base, frames=frames, samples=samples, audio_config=audio.with_seconds(samples / audio.sample_rate))
        windows = window_logmels(clips, w)
        with torch.no_grad():
            b, n = windows.shape[:2]
            streamed = student.head(student.features(windows.flatten(0, 1)).reshape(b, n, -1).mean(1)).numpy()
        s = cosine_stats(streamed, whole)
        print(f"{frames:>7} {w.seconds:>8.3f} {str(frames % stride == 0):>8} {n:>8} "
              f"{s['cosine_mean']:>9.3f} {s['cosine_worst']:>10.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
