"""Shared by the zero-shot / bank / prune / eval tests: one tiny real teacher per pytest session.

The teacher is trained by ``tinyclap.pretrain`` (the code behind ``tinyclap
pretrain``) on a few synth sounds: a PhiNet audio tower on 1 s clips at 44.1 kHz and
the packaged MiniLM text tower, 32-dim shared space. It is written once under the
session's base temp dir and reused by every test module that asks for it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tinyclap.audio import AudioConfig

# 44.1 kHz like the ESC-10 files (no resampling: it dominates the cost of reading them), 1 s clips,
# coarse frames: the tests check plumbing and arithmetic, not accuracy, on a shared 2-core machine.
AUDIO = {"sample_rate": 44100, "clip_seconds": 1.0, "n_fft": 1024, "win_length": 1024, "hop_length": 1024,
         "n_mels": 32, "fmax": 14000.0}  # fmt: skip
DIM = 32
STUDENT_NAME = "phinet_alpha_0.25_beta_0.75_t0_2_N_3"
TEACHER_AUDIO = "phinet_alpha_0.50_beta_0.75_t0_2_N_3:embed_width=256"
ESC10_LABELS = ["dog", "rooster", "rain", "sea waves", "crackling fire", "crying baby", "sneezing", "clock tick",
                "helicopter", "chainsaw"]  # fmt: skip


def audio_config() -> AudioConfig:
    return AudioConfig(**AUDIO)


def teacher_path(tmp_path_factory) -> Path:
    """``teacher.json`` of the session's tiny local teacher (trained on first use, ~15 s of CPU)."""
    root = tmp_path_factory.getbasetemp() / "zeroshot-teacher"
    path = root / "teacher.json"
    if not path.is_file():
        from tinyclap.pretrain.config import PretrainConfig
        from tinyclap.pretrain.train import pretrain

        cfg = PretrainConfig(data=["synth?n=48&seed=0"], audio_encoder=TEACHER_AUDIO,
                             dim=DIM, epochs=1, batch_size=16, audio=dict(AUDIO), val_fraction=0.1, device="cpu")
        path = pretrain(cfg, root, progress=False).teacher_path
    return path


def load_tiny_teacher(tmp_path_factory):
    from tinyclap.teachers.registry import load_teacher

    return load_teacher(f"local:{teacher_path(tmp_path_factory)}")


def tiny_student(seed: int = 0, dim: int = DIM):
    """An untrained (seeded) tiny student at the teacher's front end and dim, in eval mode."""
    from tinyclap.students import AudioStudent

    torch.manual_seed(seed)
    student = AudioStudent.from_name(STUDENT_NAME, dim=dim, audio_config=audio_config(), embed_width=128,
                                     head_act="relu")
    return student.eval()


def _ogg_bytes(path: Path) -> bytes:
    """The Ogg Vorbis file ``path`` (real ESC-10), or ``path`` encoded as one (the generated WAV stand-in)."""
    if path.suffix == ".ogg":
        return path.read_bytes()
    import io

    import soundfile as sf

    raw, rate = sf.read(str(path), dtype="float32")
    buf = io.BytesIO()
    sf.write(buf, raw, rate, format="OGG", subtype="VORBIS")
    return buf.getvalue()


def esc_layout(esc10_root: Path, out: Path, per_class_per_fold: int = 1, folds: tuple[int, ...] = (1, 2),
               broken: bool = False) -> Path:
    """A small ESC-50 folder under ``out`` linking ESC-10 clips (real or generated; optionally two broken files)."""
    (out / "audio").mkdir(parents=True)
    (out / "meta").mkdir()
    header, *rows = (esc10_root / "meta" / "esc50.csv").read_text().splitlines()
    keep, seen = [], {}
    for row in rows:
        name, fold, target = row.split(",")[:3]
        key = (int(fold), target)
        if int(fold) in folds and seen.get(key, 0) < per_class_per_fold:
            seen[key] = seen.get(key, 0) + 1
            keep.append(row)
            (out / "audio" / name).symlink_to(esc10_root / "audio" / name)
    if broken:
        # One file that is not audio at all, one cut to its first bytes (the header probe passes).
        first = keep[0].split(",")[0]
        (out / "audio" / "1-999999-A-0.ogg").write_bytes(b"not audio")
        (out / "audio" / "1-999998-A-0.ogg").write_bytes(_ogg_bytes(esc10_root / "audio" / first)[:300])
        keep += [keep[0].replace(first, "1-999999-A-0.ogg"), keep[0].replace(first, "1-999998-A-0.ogg")]
    (out / "meta" / "esc50.csv").write_text("\n".join([header] + keep) + "\n")
    return out
