"""Run a Cortex-M firmware image in QEMU and count the instructions it executes.

The image (``main_qemu.c``) reads int16 PCM clips through semihosting and
prints one line per clip: its top-k labels and approximate cosines, and the
ticks of the board's CMSDK timer spent in each stage (front end, network,
classifier). QEMU runs with ``-icount shift=0``: virtual time advances exactly
1 ns per instruction, so ticks convert to instructions at
``1e9 / timer_hz``. The image times a calibration loop of a known instruction
count first (``subs`` + ``bne``, 2 per iteration, 2^21 in all);
:attr:`FirmwareRun.calibration_error` says how far its instructions per tick
are from the nominal 40 (25 MHz timer) that the counts use. A tick is 40 instructions, so each stage's count is exact to
that (plus the handful of instructions of the timer reads).

Real-time factor: instructions per second of audio / clock, which assumes
one instruction per cycle (a Cortex-M7 is dual-issue but stalls on memory,
an M4 issues one; neither is modelled by QEMU).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tinyclap.firmware.bundle import Bundle, FirmwareError, load_bundle
from tinyclap.firmware.build import ARM_TOOLS_HINT, CPUS, BuiltImage
from tinyclap.firmware.elf import ElfMemory, read_elf_memory

__all__ = [
    "STAGES",
    "NOMINAL_INSTRUCTIONS_PER_TICK",
    "ClipResult",
    "FirmwareRun",
    "to_pcm16",
    "write_input",
    "parse_output",
    "run_firmware",
    "bundle_clips",
]

STAGES = ("frontend", "network", "classifier")
NOMINAL_INSTRUCTIONS_PER_TICK = 40.0  # -icount shift=0 (1 ns / instruction), 25 MHz CMSDK timer


@dataclass
class ClipResult:
    """What the firmware said about one clip."""

    index: int
    windows: int
    samples: int
    top: list[int]
    cosine: list[float]
    labels: list[str]
    instructions: dict[str, int]

    @property
    def label(self) -> str:
        return self.labels[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "windows": self.windows,
            "samples": self.samples,
            "top": self.top,
            "labels": self.labels,
            "cosine": [round(c, 6) for c in self.cosine],
            "instructions": self.instructions,
        }


@dataclass
class FirmwareRun:
    """An emulated run: per-clip answers and the image's figures."""

    machine: str
    elf: Path
    memory: ElfMemory
    clips: list[ClipResult]
    audio_seconds: float
    stack_used: int
    stack_size: int
    arena_bytes: int
    instructions_per_tick: float  # used for the counts: the nominal 40 (1 ns per instruction, 25 MHz timer)
    measured_instructions_per_tick: float | None  # on the calibration loop of known length
    clock_hz: int | None
    target: dict[str, Any] = field(default_factory=dict)

    @property
    def calibration_error(self) -> float | None:
        """Relative difference of the calibration loop's instructions per tick from the nominal 40."""
        if self.measured_instructions_per_tick is None:
            return None
        return self.measured_instructions_per_tick / self.instructions_per_tick - 1.0

    @property
    def instructions(self) -> dict[str, int]:
        """Instructions per stage over all clips."""
        return {s: sum(c.instructions[s] for c in self.clips) for s in STAGES}

    @property
    def instructions_per_second(self) -> dict[str, float]:
        """Instructions per second of audio processed, per stage and in total."""
        per = {s: v / self.audio_seconds for s, v in self.instructions.items()}
        per["total"] = sum(per.values())
        return per

    @property
    def real_time_factor(self) -> float | None:
        """Seconds of compute per second of audio at the target clock, assuming 1 instruction per cycle."""
        if not self.clock_hz:
            return None
        return self.instructions_per_second["total"] / self.clock_hz

    def to_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "elf": str(self.elf),
            "target": self.target,
            "flash_bytes": self.memory.flash_bytes,
            "ram_bytes": self.memory.ram_bytes,
            "flash_sections": self.memory.flash_sections,
            "ram_sections": self.memory.ram_sections,
            "stack_used": self.stack_used,
            "stack_size": self.stack_size,
            "arena_bytes": self.arena_bytes,
            "audio_seconds": self.audio_seconds,
            "instructions": self.instructions,
            "instructions_per_second": {k: round(v) for k, v in self.instructions_per_second.items()},
            "instructions_per_tick": self.instructions_per_tick,
            "calibration_instructions_per_tick": self.measured_instructions_per_tick,
            "clock_hz": self.clock_hz,
            "real_time_factor": self.real_time_factor,
            "real_time_factor_assumes": "1 instruction per cycle at the target clock",
            "clips": [c.to_dict() for c in self.clips],
        }


def to_pcm16(wave: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] -> int16 PCM (x * 32768, rounded, clipped), as a microphone path delivers them."""
    w = np.asarray(wave)
    if w.dtype == np.int16:
        return w
    return np.clip(np.round(w.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def write_input(path: str | Path, clips: Sequence[np.ndarray]) -> Path:
    """The semihosting input file of ``main_qemu.c``: b"TCIN", uint32 clips, per clip uint32 n + int16[n]."""
    path = Path(path)
    with path.open("wb") as f:
        f.write(b"TCIN" + struct.pack("<I", len(clips)))
        for clip in clips:
            pcm = to_pcm16(clip).ravel()
            if pcm.size == 0:
                raise FirmwareError("an empty clip cannot be classified")
            f.write(struct.pack("<I", pcm.size))
            f.write(pcm.astype("<i2").tobytes())
    return path


def parse_output(text: str, labels: Sequence[str], instructions_per_tick: float | None = None) -> dict[str, Any]:
    """Parse the ``TC ...`` lines of a run (see main_qemu.c); raises on ``TC error`` or a missing ``TC done``."""
    out: dict[str, Any] = {"clips": [], "calib": None}
    for line in text.splitlines():
        if not line.startswith("TC "):
            continue
        f = line.split()
        tag = f[1]
        if tag == "error":
            raise FirmwareError(f"the firmware reported: {' '.join(f[2:])}")
        if tag == "calib":
            out["calib"] = (int(f[2]), int(f[3]))
        elif tag == "clip":
            k = int(f[6])
            pairs = f[7 : 7 + 2 * k]
            top = [int(x) for x in pairs[0::2]]
            cos = [int(x) / 1e6 for x in pairs[1::2]]
            ticks = [int(x) for x in f[8 + 2 * k : 11 + 2 * k]]
            out["clips"].append((int(f[2]), int(f[3]), int(f[4]), top, cos, ticks))
        elif tag == "stack":
            out["stack"] = (int(f[2]), int(f[3]))
        elif tag == "arena":
            out["arena"] = int(f[2])
        elif tag == "done":
            out["done"] = int(f[2])
    if "done" not in out:
        tail = " | ".join(text.strip().splitlines()[-3:])
        raise FirmwareError(f"the firmware stopped before the end of its input (last output: {tail or 'none'})")
    ipt = NOMINAL_INSTRUCTIONS_PER_TICK if instructions_per_tick is None else instructions_per_tick
    out["instructions_per_tick"] = ipt
    out["calibration"] = None if out["calib"] is None else out["calib"][0] / out["calib"][1]
    out["clip_results"] = [
        ClipResult(
            index=i,
            windows=w,
            samples=n,
            top=top,
            cosine=cos,
            labels=[labels[t] for t in top],
            instructions={s: int(round(t * ipt)) for s, t in zip(STAGES, ticks)},
        )
        for i, w, n, top, cos, ticks in out["clips"]
    ]
    return out


def run_firmware(
    firmware_dir: str | Path | Bundle,
    clips: Sequence[np.ndarray],
    *,
    cpu: str = "cortex-m7",
    image: BuiltImage | Path | None = None,
    timeout: float = 1800,
    qemu: str = "qemu-system-arm",
) -> FirmwareRun:
    """Classify ``clips`` (float waveforms in [-1, 1] or int16 PCM, at the model's rate) on the emulated core.

    ``image`` defaults to the bundle's ``build/<cpu>/tinyclap.elf`` (build it first with
    :func:`tinyclap.firmware.build.build_firmware`).
    """
    bundle = firmware_dir if isinstance(firmware_dir, Bundle) else load_bundle(firmware_dir)
    if cpu not in CPUS or CPUS[cpu][1] is None:
        raise FirmwareError(f"cannot emulate {cpu!r}; choose cortex-m7 or cortex-m4f")
    elf = image.path if isinstance(image, BuiltImage) else Path(image) if image else bundle.dir / CPUS[cpu][0]
    machine = CPUS[cpu][1]
    if not elf.is_file():
        raise FirmwareError(f"{elf}: no image (run `tinyclap firmware build {bundle.dir}` first)")
    if shutil.which(qemu) is None:
        raise FirmwareError(f"{qemu} not found: {ARM_TOOLS_HINT}")
    if not clips:
        raise FirmwareError("no clips to classify")
    board = bundle.manifest["board"]
    memory = read_elf_memory(
        elf,
        flash=(board["flash_origin"], bundle.target.flash_bytes),
        ram=(board["ram_origin"], bundle.target.ram_bytes),
    )
    pcm = [to_pcm16(c) for c in clips]
    with tempfile.TemporaryDirectory(prefix="tinyclap-qemu-") as tmp:
        inp = write_input(Path(tmp) / "tc_input.bin", pcm)
        cmd = [
            qemu,
            "-M",
            machine,
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "none",
            "-icount",
            "shift=0",
            "-semihosting-config",
            f"enable=on,target=native,arg=tinyclap,arg={inp}",
            "-kernel",
            str(elf.resolve()),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise FirmwareError(f"QEMU ran for over {timeout:.0f} s without finishing ({len(pcm)} clips)") from None
    if proc.returncode != 0 and "TC " not in proc.stdout:
        raise FirmwareError(f"QEMU exited with status {proc.returncode}: {proc.stderr.strip()[-300:]}")
    parsed = parse_output(proc.stdout, bundle.manifest["labels"])  # raises on the firmware's own errors
    if proc.returncode != 0:
        raise FirmwareError(f"QEMU exited with status {proc.returncode}: {proc.stderr.strip()[-300:]}")
    results = parsed["clip_results"]
    if len(results) != len(pcm):
        raise FirmwareError(f"the firmware answered {len(results)} of {len(pcm)} clips")
    sr = float(bundle.manifest["sample_rate"])
    w = int(bundle.manifest["window_samples"])
    seconds = sum(min(len(p), r.windows * w) if len(p) > w else len(p) for p, r in zip(pcm, results)) / sr
    stack_used, stack_size = parsed.get("stack", (0, 0))
    return FirmwareRun(
        machine=machine,
        elf=elf,
        memory=memory,
        clips=results,
        audio_seconds=seconds,
        stack_used=stack_used,
        stack_size=stack_size,
        arena_bytes=int(parsed.get("arena", 0)),
        instructions_per_tick=float(parsed["instructions_per_tick"]),
        measured_instructions_per_tick=parsed["calibration"],
        clock_hz=bundle.target.clock_hz,
        target=bundle.target.to_dict(),
    )


def bundle_clips(
    firmware_dir: str | Path | Bundle,
    *,
    dataset: str | None = None,
    audio_files: Sequence[str | Path] | None = None,
    max_clips: int | None = None,
) -> tuple[list[np.ndarray], list[str], list[str | None]]:
    """Clips for a run, at the model's sample rate and the student's clip length: ``(clips, ids, true labels)``.

    ``dataset`` is a dataset spec (``esc50:ROOT``, ...; up to ``max_clips`` evenly spaced
    clips); ``audio_files`` are read, resampled and kept at their own length (the
    firmware cuts them into windows).
    """
    from tinyclap.audio import AudioConfig, load_audio

    bundle = firmware_dir if isinstance(firmware_dir, Bundle) else load_bundle(firmware_dir)
    if (dataset is None) == (audio_files is None):
        raise FirmwareError("give a dataset spec or audio files (one of them)")
    report = bundle.dir.parent / "report.json"
    if not report.is_file():
        raise FirmwareError(f"{report}: missing (the bundle's export report gives the student's clip length)")
    import json

    audio = AudioConfig.from_dict(json.loads(report.read_text())["student"]["audio_config"])
    if audio_files is not None:
        clips = [np.asarray(load_audio(f, audio.sample_rate), dtype=np.float32) for f in audio_files]
        return clips, [Path(f).name for f in audio_files], [None] * len(clips)
    from tinyclap.data import Skipped, open_dataset

    data = open_dataset(dataset, audio)
    n = len(data)
    if n == 0:
        raise FirmwareError(f"{dataset}: the dataset holds no clips")
    picks = range(n) if max_clips is None else sorted({int(round(i)) for i in np.linspace(0, n - 1, min(max_clips, n))})
    clips, ids, truth = [], [], []
    classes = getattr(data, "class_names", None)
    for i in picks:
        item = data[i]
        if isinstance(item, Skipped):
            continue
        clips.append(np.asarray(item.clip, dtype=np.float32))
        ids.append(item.clip_id)
        target = item.target
        if isinstance(target, (int, np.integer)) and classes is not None:
            target = classes[int(target)]
        truth.append(None if target is None else str(target))
    return clips, ids, truth
