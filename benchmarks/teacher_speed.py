"""Teacher size and audio-embedding speed on this machine (random weights, full size).

Prints parameter counts and the median seconds to embed one 5 s clip (batch 1,
front end included) for MS-CLAP 2022 and 2023 and, when tinyclap.teachers.laion
is present, a LAION CLAP sized by transformers' default ClapConfig. MS-CLAP 2023
takes 7 s clips: the 5 s clip is repeat-padded to 7 s, as its teacher does.

    python benchmarks/teacher_speed.py [--runs 5] [--threads N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import time
from typing import Callable

import torch


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _median_seconds(fn: Callable[[], object], runs: int, device: str) -> float:
    fn()  # warm-up: allocations, kernel selection
    times = []
    for _ in range(runs):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def msclap_rows(runs: int, device: str) -> list[dict]:
    from tinyclap.teachers.msclap import MSClapTeacher, build_msclap

    rows = []
    for version in ("2022", "2023"):
        torch.manual_seed(0)
        model = build_msclap(version)  # default BERT / GPT-2 configs: no network needed
        teacher = MSClapTeacher(model, tokenizer=None, device=device)
        base = model.audio_encoder.base
        head = base.fc_audioset if version == "2022" else torch.nn.ModuleList([base.htsat.tscam_conv, base.htsat.head])
        clip = torch.randn(1, 5 * teacher.audio_config.sample_rate) * 0.1
        rows.append({
            "model": f"msclap-{version}",
            "total": _count(model),
            "audio": _count(model.audio_encoder) - _count(head),
            "text": _count(model.caption_encoder),
            "tagging head": _count(head),
            "s/clip": _median_seconds(lambda t=teacher: t.embed_audio(clip), runs, device),
        })
        del teacher, model
    return rows


def laion_row(runs: int, device: str) -> dict | None:
    if importlib.util.find_spec("tinyclap.teachers.laion") is None:
        return None
    from types import SimpleNamespace

    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    from tinyclap.teachers.laion import LaionClapTeacher

    torch.manual_seed(0)
    model = ClapModel(ClapConfig())
    # No tokenizer offline; audio needs only a (file-free) feature extractor. ClapConfig()
    # is unfused, so pair it with the unfused checkpoints' "rand_trunc" extractor.
    processor = SimpleNamespace(feature_extractor=ClapFeatureExtractor(truncation="rand_trunc"), tokenizer=None)
    teacher = LaionClapTeacher(model, processor, name="laion ClapConfig()", device=device)
    audio = _count(model.audio_model) + _count(model.audio_projection)
    text = _count(model.text_model) + _count(model.text_projection)
    clip = torch.randn(1, 5 * teacher.audio_config.sample_rate) * 0.1  # padded to 10 s by its extractor
    return {"model": "laion ClapConfig()", "total": _count(model), "audio": audio, "text": text,
            "tagging head": 0, "s/clip": _median_seconds(lambda: teacher.embed_audio(clip), runs, device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per model (median is printed)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
          f"load average {os.getloadavg()[0]:.1f} (other work inflates the times)")
    rows = msclap_rows(args.runs, args.device)
    laion = laion_row(args.runs, args.device)
    if laion is not None:
        rows.append(laion)
    print(f"{'model':<20}{'total M':>10}{'audio M':>10}{'text M':>10}{'tag head M':>12}{'s / 5 s clip':>14}")
    for r in rows:
        print(f"{r['model']:<20}{r['total'] / 1e6:>10.2f}{r['audio'] / 1e6:>10.2f}{r['text'] / 1e6:>10.2f}"
              f"{r['tagging head'] / 1e6:>12.2f}{r['s/clip']:>14.3f}")
    print("audio M: encoder + projection, without the AudioSet tagging head. Times include each "
          "teacher's front end; MS-CLAP 2023 pads to 7 s, LAION to 10 s at 48 kHz.")


if __name__ == "__main__":
    main()
