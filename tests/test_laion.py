"""LAION CLAP teacher: parity with transformers' zero-shot pipeline on real clips, determinism, protocol."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from laion_tiny import ESC10_LABELS, PROJECTION_DIM, save_tiny_clap

from tinyclap.audio import fit_length, load_audio
from tinyclap.teachers.base import Teacher
from tinyclap.teachers.laion import LaionClapTeacher, _pooled
from tinyclap.teachers.registry import load_teacher

TEMPLATE = "This is a sound of {}."  # the pipeline's default hypothesis_template


@pytest.fixture(scope="module", params=[False, True], ids=["unfused", "fused"])
def tiny_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_clap(tmp_path_factory.mktemp("clap") / "tiny", fused=request.param)


@pytest.fixture(scope="module")
def clips(esc10_files: list[Path]) -> np.ndarray:
    """Four real 5 s ESC-10 clips of different classes at 48 kHz, shape (4, 240000).

    (The Ogg files decode to 5.0-5.001 s; fitting them to 5 s keeps them short of
    the 10 s clip, so the extractor's own repeat-padding is exercised.)
    """
    picked = [next(f for f in esc10_files if f.stem.endswith(f"-{target}")) for target in (0, 10, 38, 40)]
    return np.stack([fit_length(load_audio(f, 48000), 240000) for f in picked])


def test_zero_shot_matches_transformers_pipeline(tiny_dir: Path, clips: np.ndarray) -> None:
    from transformers import pipeline

    labels = ESC10_LABELS[:5]
    teacher = load_teacher(str(tiny_dir), quiet=True)
    audio = teacher.embed_audio(clips)
    text = teacher.embed_text([TEMPLATE.format(label) for label in labels])
    ours = torch.softmax(teacher.logit_scale * audio @ text.T, dim=-1).numpy()

    pipe = pipeline("zero-shot-audio-classification", model=str(tiny_dir))
    theirs = np.zeros_like(ours)
    for i, clip in enumerate(clips):
        scores = {r["label"]: r["score"] for r in pipe(clip, candidate_labels=labels, hypothesis_template=TEMPLATE)}
        theirs[i] = [scores[label] for label in labels]

    diff = float(np.abs(ours - theirs).max())
    print(f"max |p_tinyclap - p_pipeline| = {diff:.3g} ({tiny_dir.parent.name})")
    assert diff <= 1e-5
    # The comparison has teeth: probabilities are far from uniform and differ between clips.
    assert (ours.max(axis=1) - ours.min(axis=1)).min() > 0.05
    assert np.abs(ours[0] - ours[1:]).max() > 1e-3


def test_protocol_and_audio_config(tiny_dir: Path, clips: np.ndarray) -> None:
    teacher = load_teacher(str(tiny_dir), quiet=True)
    assert isinstance(teacher, Teacher)
    c = teacher.audio_config
    assert (c.sample_rate, c.clip_seconds, c.clip_samples) == (48000, 10.0, 480000)
    assert (c.n_fft, c.hop_length, c.n_mels, c.fmin, c.fmax) == (1024, 480, 64, 50.0, 14000.0)
    assert teacher.dim == PROJECTION_DIM
    assert teacher.logit_scale == pytest.approx(100.0, rel=1e-5)
    assert "LAION-CLAP" in teacher.licence
    assert teacher.name == str(tiny_dir.resolve())
    for emb, n in ((teacher.embed_audio(clips[:2]), 2), (teacher.embed_text(["a dog", "rain"]), 2)):
        assert emb.shape == (n, PROJECTION_DIM) and emb.dtype == torch.float32 and emb.device.type == "cpu"
        torch.testing.assert_close(emb.norm(dim=-1), torch.ones(n), atol=1e-5, rtol=0)
    assert teacher.embed_audio(clips[0]).shape == (1, PROJECTION_DIM)  # (S,) is one clip
    with pytest.raises(ValueError):
        teacher.embed_text([])
    with pytest.raises(ValueError):
        teacher.embed_text("a dog")  # a bare string is not a list of prompts


def test_batching_does_not_change_embeddings(tiny_dir: Path, clips: np.ndarray) -> None:
    """A clip's vector is independent of its batch (fused checkpoints: no random 'is_longer')."""
    teacher = LaionClapTeacher.from_pretrained(tiny_dir, batch_size=4)
    together = teacher.embed_audio(clips)
    teacher.batch_size = 1
    alone = teacher.embed_audio(clips)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)
    prompts = [TEMPLATE.format(label) for label in ESC10_LABELS]
    one_by_one = teacher.embed_text(prompts)  # batch_size 1: no padding at all
    teacher.batch_size = 16
    torch.testing.assert_close(teacher.embed_text(prompts), one_by_one, atol=1e-5, rtol=0)


def test_long_clips_are_centre_cropped_deterministically(tiny_dir: Path, clips: np.ndarray) -> None:
    teacher = load_teacher(str(tiny_dir), quiet=True)
    long = np.concatenate([clips[0], clips[1], clips[2]])  # 15 s: the extractor alone would crop at random
    np.random.seed(123)
    expected_draw = np.random.rand()
    np.random.seed(123)
    first = teacher.embed_audio(long)
    assert np.random.rand() == expected_draw  # the global numpy RNG was left alone
    torch.testing.assert_close(teacher.embed_audio(long), first, atol=0, rtol=0)
    centre = fit_length(long, teacher.audio_config.clip_samples)
    torch.testing.assert_close(teacher.embed_audio(centre), first, atol=1e-6, rtol=0)
    # ...and it is not simply the first 10 s.
    assert (teacher.embed_audio(long[:480000]) - first).abs().max() > 1e-4


def test_model_card_licence_is_reported(tmp_path: Path) -> None:
    folder = save_tiny_clap(tmp_path / "carded")
    (folder / "README.md").write_text("---\nlicense: mit\ntags: [audio]\n---\n# a fine-tuned CLAP\n")
    teacher = LaionClapTeacher.from_pretrained(folder)
    assert "mit" in teacher.licence and "carded" in teacher.licence


def test_pooled_accepts_tensor_and_output_object() -> None:
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    x = torch.randn(2, 3)
    assert _pooled(x) is x  # transformers 4: get_*_features returns the projected tensor
    assert _pooled(BaseModelOutputWithPooling(last_hidden_state=None, pooler_output=x)) is x  # transformers 5
    with pytest.raises(TypeError):
        _pooled({"nothing": 1})
