"""How fast each dataset streams clips through a DataLoader, with 0 and 2 workers.

Prints clips per second (median of a few passes) for every dataset available:
ESC-10, UrbanSound8K-mini, Clotho-mini (real copies under ../shared/data, or
TINYCLAP_SHARED_DATA), Synth, and a TUT17 fixture written to a temporary folder
in the documented layout. Compare with how fast a student trains (printed last
when tinyclap.students is importable): the loader must keep up.

    python benchmarks/data_speed.py [--clips 64] [--batch 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from tinyclap.audio import AudioConfig
from tinyclap.data import make_loader, open_dataset

SHARED = Path(os.environ.get("TINYCLAP_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def tut17_fixture(root: Path, scenes: int = 16) -> Path:
    """TUT17 development layout: 10 s, 44.1 kHz stereo noise scenes, fold 1."""
    rng = np.random.default_rng(0)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "evaluation_setup").mkdir(exist_ok=True)
    labels = ["beach", "bus", "car", "park"]
    lines = []
    for k in range(scenes):
        name = f"audio/s{k:03d}_0_10.wav"
        sf.write(root / name, (0.1 * rng.standard_normal((441000, 2))).astype(np.float32), 44100, subtype="PCM_16")
        lines.append(f"{name}\t{labels[k % 4]}\n")
    (root / "meta.txt").write_text("".join(lines))
    (root / "evaluation_setup" / "fold1_evaluate.txt").write_text("".join(lines))
    return root


def rate(dataset, clips: int, batch: int, workers: int, repeats: int) -> float:
    """Median clips/s over ``repeats`` passes of the first ``clips`` items."""
    sub = torch.utils.data.Subset(dataset, range(min(clips, len(dataset))))
    speeds = []
    for _ in range(repeats):
        loader = make_loader(sub, batch_size=batch, num_workers=workers)
        t0 = time.perf_counter()
        n = sum(len(b.ids) for b in loader)
        speeds.append(n / (time.perf_counter() - t0))
    return statistics.median(speeds)


def student_rate(cfg: AudioConfig, batch: int) -> float | None:
    """Clips/s of one training step of the paper's student (forward + backward), if available."""
    try:
        from tinyclap.students.encoder import AudioStudent
    except ImportError:
        return None
    student = AudioStudent.from_name("phinet_alpha_1.50_beta_0.75_t0_6_N_7", audio_config=cfg)
    opt = torch.optim.Adam(student.parameters(), 1e-4)
    clips = torch.randn(batch, cfg.clip_samples) * 0.1
    target = torch.nn.functional.normalize(torch.randn(batch, student.dim), dim=-1)
    times = []
    for _ in range(4):
        t0 = time.perf_counter()
        out = student(student.frontend(clips))
        loss = 1 - (out * target).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return batch / statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(2)
    cfg = AudioConfig()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("TINYCLAP_CACHE_DIR", str(Path(tmp) / "cache"))
        specs = {
            "esc10": f"esc50:{SHARED / 'esc10'}",
            "us8k-mini": f"us8k:{SHARED / 'us8k-mini' / 'UrbanSound8K'}",
            "clotho-mini": f"clotho:{SHARED / 'clotho-mini'}",
            "synth": f"synth?n={args.clips}",
            "tut17 fixture": f"tut17:{tut17_fixture(Path(tmp) / 'tut17')}",
        }
        print(f"AudioConfig: {cfg.sample_rate} Hz, {cfg.clip_seconds} s clips; batch {args.batch}; "
              f"{os.cpu_count()} CPUs; median of {args.repeats}")
        print(f"{'dataset':<14} {'items':>6} {'0 workers':>12} {'2 workers':>12}   (clips/s)")
        for name, spec in specs.items():
            try:
                t0 = time.perf_counter()
                ds = open_dataset(spec, cfg)
                index_s = time.perf_counter() - t0
            except Exception as err:  # noqa: BLE001 - a dataset that is not here is skipped
                print(f"{name:<14} skipped: {err}")
                continue
            r0 = rate(ds, args.clips, args.batch, 0, args.repeats)
            r2 = rate(ds, args.clips, args.batch, 2, args.repeats)
            print(f"{name:<14} {len(ds):>6} {r0:>12.1f} {r2:>12.1f}   (index {index_s:.2f} s)")
        s = student_rate(cfg, args.batch)
        if s is not None:
            print(f"{'student step':<14} {'':>6} {s:>12.1f} {'':>12}   (phinet α1.5 β0.75 t0 6 N7, fwd+bwd, 2 threads)")


if __name__ == "__main__":
    main()
