"""The local teacher: save → load_local round trips, the packaged MiniLM offline, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.pretrain_tiny import TINY_AUDIO, build_tiny_text_model
from tinyclap.audio import AudioConfig
from tinyclap.errors import CheckpointError, MissingWeightsError
from tinyclap.pretrain.model import LocalClap
from tinyclap.teachers.base import Teacher
from tinyclap.teachers.local import load_local, save_local

PROMPTS = ["a dog barking", "a barking dog", "rain falling on a roof"]


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_text_model(tmp_path_factory.mktemp("tiny_text"))


def _tiny_model(text_dir: Path, trainable: bool = False) -> LocalClap:
    torch.manual_seed(0)
    audio_config = AudioConfig(**TINY_AUDIO)
    model = LocalClap("cnn14:width=2,embed=16,dropout=0.0", audio_config, dim=8, text_model=str(text_dir),
                      text_trainable=trainable)
    # A few train-mode passes so BatchNorm statistics are not the initial 0/1 (they must round-trip too).
    with torch.no_grad():
        for _ in range(3):
            model.train().embed_audio_logmel(torch.randn(4, audio_config.n_frames, audio_config.n_mels) * 10 - 40)
    return model.eval()


def _clips(n: int = 3) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal((n, AudioConfig(**TINY_AUDIO).clip_samples))).astype(np.float32)


def test_packaged_minilm_loads_offline_and_embeds(monkeypatch: pytest.MonkeyPatch) -> None:
    from tinyclap.pretrain.text import DEFAULT_TEXT_MODEL, TextTower, default_text_model_dir

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tower = TextTower()
    assert tower.ref == DEFAULT_TEXT_MODEL and tower.width == 384
    emb = torch.nn.functional.normalize(tower.encode(PROMPTS), dim=-1)
    assert emb.shape == (3, 384)
    sims = emb @ emb.t()
    assert sims[0, 1] > sims[0, 2] + 0.2  # a real sentence encoder: paraphrases are close
    st = pytest.importorskip("sentence_transformers")
    reference = st.SentenceTransformer(str(default_text_model_dir()), device="cpu").encode(PROMPTS)
    # Our masked mean pooling is sentence-transformers' own for this model.
    assert np.allclose(emb.numpy(), reference, atol=1e-5)


def test_round_trip_gives_identical_embeddings(tmp_path: Path, text_dir: Path) -> None:
    model = _tiny_model(text_dir)
    json_path = save_local(tmp_path / "t" / "teacher", model, data=["synth?n=4"], epoch=1)
    assert json_path.name == "teacher.json"
    saved = json.loads(json_path.read_text())
    assert saved["kind"] == "teacher" and "text.encoder.embeddings.word_embeddings.weight" not in saved
    teacher = load_local(tmp_path / "t")
    assert isinstance(teacher, Teacher)
    assert teacher.name == f"local:{(tmp_path / 't').resolve()}"
    assert teacher.dim == 8 and teacher.audio_config == model.audio_config
    assert teacher.logit_scale == pytest.approx(float(model.logit_scale().detach()))
    assert "text tower" in teacher.licence and "synth?n=4" in teacher.licence
    clips = _clips()
    with torch.no_grad():
        expected_audio = model.embed_audio_logmel(model.audio.frontend(torch.from_numpy(clips)))
        expected_text = model.embed_text(PROMPTS)
    audio, text = teacher.embed_audio(clips), teacher.embed_text(PROMPTS)
    assert audio.shape == (3, 8) and text.shape == (3, 8)
    assert audio.dtype == torch.float32 and audio.device.type == "cpu"
    assert torch.allclose(audio, expected_audio, atol=1e-6)
    assert torch.allclose(text, expected_text, atol=1e-6)
    assert torch.allclose(audio.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(text.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.equal(teacher.embed_audio(clips), audio)  # deterministic
    assert torch.allclose(teacher.embed_audio(clips[0]), audio[:1], atol=1e-6)  # (S,) is a batch of one
    with pytest.raises(ValueError):
        teacher.embed_text([])


def test_registry_loads_local_teachers(tmp_path: Path, text_dir: Path) -> None:
    registry = pytest.importorskip("tinyclap.teachers.registry")
    model = _tiny_model(text_dir)
    save_local(tmp_path / "teacher", model)
    direct = load_local(tmp_path)
    via_registry = registry.load_teacher(f"local:{tmp_path}", quiet=True)
    assert torch.equal(via_registry.embed_text(PROMPTS), direct.embed_text(PROMPTS))


def test_fine_tuned_text_tower_is_saved_with_the_teacher(tmp_path: Path, text_dir: Path) -> None:
    model = _tiny_model(text_dir, trainable=True)
    fresh = model.embed_text(PROMPTS)
    with torch.no_grad():  # stand-in for fine-tuning: the saved tower must differ from the original
        for p in model.text.parameters():
            p.add_(0.05 * torch.randn_like(p))
        tuned = model.embed_text(PROMPTS)
    assert not torch.allclose(fresh, tuned, atol=1e-3)
    save_local(tmp_path / "ft" / "teacher", model)
    assert (tmp_path / "ft" / "teacher_text" / "config.json").is_file()
    moved = tmp_path / "moved"
    shutil.copytree(tmp_path / "ft", moved)  # the saved folder is self-contained
    teacher = load_local(moved)
    assert torch.allclose(teacher.embed_text(PROMPTS), tuned, atol=1e-6)


def test_load_errors_name_the_problem(tmp_path: Path, text_dir: Path) -> None:
    with pytest.raises(CheckpointError):
        load_local(tmp_path / "nothing-here")
    from tinyclap.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "other" / "x", {"w": torch.zeros(1)}, {"kind": "student"})
    with pytest.raises(CheckpointError, match="student"):
        load_local(tmp_path / "other")
    # A frozen text tower is referenced: when it is gone, the error says where it was looked for ...
    copy = tmp_path / "text_copy"
    shutil.copytree(text_dir, copy)
    save_local(tmp_path / "t" / "teacher", _tiny_model(copy))
    shutil.rmtree(copy)
    with pytest.raises(MissingWeightsError, match="text_copy"):
        load_local(tmp_path / "t")
    # ... and text_model= points at it.
    assert load_local(tmp_path / "t", text_model=str(text_dir)).embed_text(PROMPTS).shape == (3, 8)
