"""MS-CLAP teachers: full-size layout vs the released files, tiny models round-tripped
through the released checkpoint format, tokenisation, pooling, preprocessing, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch

from tinyclap.audio import AudioConfig, fit_length, load_audio
from tinyclap.errors import CheckpointError, MissingWeightsError
from tinyclap.teachers.base import Teacher
from tinyclap.teachers.msclap import SPECS, build_msclap, load_msclap
from tinyclap.teachers.msclap_audio import HTSATConfig, MSClapFrontEnd

# Key/shape lists of the released checkpoints (facts, no weights): tests/data/README.md.
REFERENCE = Path(__file__).resolve().parent / "data"
FIXED = re.compile(r"position_ids|spectrogram_extractor|logmel_extractor")

# A short, narrow front end keeps the tiny models fast on a shared 2-core machine.
TINY_AUDIO = AudioConfig(sample_rate=16000, clip_seconds=1.0, n_fft=512, win_length=512, hop_length=160,
                         n_mels=32, fmin=50.0, fmax=8000.0)
TINY_WIDTHS = {
    "2022": dict(channels=(4, 4, 8, 8, 8, 16), out_emb=16),
    "2023": dict(htsat=HTSATConfig(spec_size=128, patch_size=4, embed_dim=8, depths=(2, 2), num_heads=(2, 4),
                                   window_size=4, num_classes=5)),
}
PROMPTS = ["a dog barking", "the sound of rain", "a car engine and a siren"]


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def text_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny BERT and GPT-2 configs plus tokenizers built here, saved like hub copies."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import BertConfig, BertTokenizer, GPT2Config, GPT2TokenizerFast

    root = tmp_path_factory.mktemp("text")
    words = ("[PAD] [UNK] [CLS] [SEP] [MASK] a an and the dog cat bark ##ing ##s sound of rain car "
             "engine siren bird !").split()
    bert = root / "tiny-bert"
    BertTokenizer(vocab={w: i for i, w in enumerate(words)}).save_pretrained(bert)
    BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=32, max_position_embeddings=128).save_pretrained(bert)

    gpt = root / "tiny-gpt2"
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(PROMPTS * 4, vocab_size=300, min_frequency=1)
    bpe.add_special_tokens(["<|endoftext|>"])  # last id, as in GPT-2 (50256)
    tok = GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>",
                            bos_token="<|endoftext|>", unk_token="<|endoftext|>")
    tok.save_pretrained(gpt)
    GPT2Config(vocab_size=len(tok), n_embd=16, n_layer=1, n_head=2, n_positions=128,
               bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id).save_pretrained(gpt)
    return {"2022": bert, "2023": gpt}


def _calibrate(model, seed: int) -> None:
    """Set BatchNorm statistics from data (as training would) and a non-default logit
    scale, so the tiny audio tower is neither dead nor trivially loaded."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batch
    model.audio_encoder.train()
    model.audio_encoder(_clips(4, TINY_AUDIO.clip_samples, seed=seed + 100))
    model.logit_scale.data.fill_(3.2)


def _tiny(version: str, text_dir: Path, seed: int = 0):
    torch.manual_seed(seed)
    model = build_msclap(version, str(text_dir), audio_config=TINY_AUDIO, d_proj=8, **TINY_WIDTHS[version])
    with torch.no_grad():
        _calibrate(model, seed)
    return model.eval()


def _release(model, path: Path, extra: dict | None = None) -> Path:
    """Save as Microsoft does: {"model": state_dict} plus the fixed buffers their classes hold."""
    state = dict(model.state_dict())
    prefix = "audio_encoder.base." + ("htsat." if model.spec.audio_tower == "htsat" else "")
    n_freq = model.audio_config.n_fft // 2 + 1
    state[prefix + "spectrogram_extractor.stft.conv_real.weight"] = torch.randn(n_freq, 1, model.audio_config.n_fft)
    state[prefix + "spectrogram_extractor.stft.conv_imag.weight"] = torch.randn(n_freq, 1, model.audio_config.n_fft)
    state[prefix + "logmel_extractor.melW"] = model.audio_encoder.frontend.mel.clone()
    if model.spec.text_family == "bert":
        state["caption_encoder.base.embeddings.position_ids"] = torch.arange(128)[None]
    state.update(extra or {})
    torch.save({"model": state}, path)
    return path


def _clips(n: int, samples: int, seed: int = 1) -> torch.Tensor:
    """Distinct test sounds: a tone (a different pitch per clip) over noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / TINY_AUDIO.sample_rate
    pitch = 110.0 * 2.0 ** (torch.rand(n, 1, generator=g) * 5)
    level = torch.rand(n, 1, generator=g) * 0.2 + 0.01
    return 0.3 * torch.sin(2 * torch.pi * pitch * t) + level * torch.randn(n, samples, generator=g)


def _load(version: str, path: Path, text_dir: Path, **kw):
    return load_msclap(version, path, text_model=str(text_dir), audio_config=TINY_AUDIO, d_proj=8,
                       **TINY_WIDTHS[version], **kw)


# ----------------------------------------------------------------------------- full size


@pytest.mark.parametrize("version", ["2022", "2023"])
def test_full_size_layout_matches_released_files(version: str) -> None:
    ref_file = REFERENCE / f"msclap_{version}_state_dict_shapes.json"
    expected = {k: v for k, v in json.loads(ref_file.read_text())["keys"].items() if not FIXED.search(k)}
    with torch.device("meta"):
        model = build_msclap(version)  # default BertConfig()/GPT2Config(): no network
    got = {k: list(t.shape) for k, t in model.state_dict().items()}
    assert sorted(set(expected) - set(got)) == []
    assert sorted(set(got) - set(expected)) == []
    assert {k: v for k, v in got.items() if v != expected[k]} == {}


def test_full_size_2022_audio_tower_is_82_8_million_parameters() -> None:
    with torch.device("meta"):
        model = build_msclap("2022")
    audio = sum(p.numel() for p in model.audio_encoder.parameters())
    tagging = sum(p.numel() for p in model.audio_encoder.base.fc_audioset.parameters())
    assert abs((audio - tagging) - 82.8e6) < 0.05e6  # CNN14 + fc1 + projection (tinyCLAP's 82.8 M)
    assert model.audio_encoder.base.out_dim == 2048 and model.spec.d_proj == 1024


def test_2023_front_end_uses_htsat_32khz_filters() -> None:
    spec = SPECS["2023"]
    assert spec.audio_config.sample_rate == 44100 and spec.audio_config.clip_samples == 7 * 44100
    front = MSClapFrontEnd(spec.audio_config, mel_sample_rate=spec.mel_sample_rate)
    want = librosa.filters.mel(sr=32000, n_fft=1024, n_mels=64, fmin=50, fmax=14000).T
    np.testing.assert_allclose(front.mel.numpy(), want, rtol=1e-5, atol=1e-9)
    assert SPECS["2022"].audio_config == AudioConfig()  # tinyCLAP's default front end


# ----------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("version", ["2022", "2023"])
def test_released_format_round_trip(version: str, text_dirs, tmp_path: Path) -> None:
    model = _tiny(version, text_dirs[version])
    path = _release(model, tmp_path / f"CLAP_weights_{version}.pth")
    teacher = _load(version, path, text_dirs[version], batch_size=2)
    assert isinstance(teacher, Teacher)
    assert teacher.name == f"msclap-{version}" and teacher.dim == 8
    assert teacher.logit_scale == pytest.approx(float(np.exp(3.2)), rel=1e-6)
    assert "MIT" in teacher.licence

    clips = _clips(3, TINY_AUDIO.clip_samples)
    with torch.no_grad():
        want_audio = torch.nn.functional.normalize(model.audio_encoder(clips), dim=-1)
    audio = teacher.embed_audio(clips)
    assert audio.dtype == torch.float32 and audio.shape == (3, 8) and audio.device.type == "cpu"
    torch.testing.assert_close(audio, want_audio, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(audio.norm(dim=-1), torch.ones(3))
    assert torch.equal(teacher.embed_audio(clips), audio)  # deterministic
    torch.testing.assert_close(teacher.embed_audio(clips, batch_size=3), audio, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(audio[0], audio[1], atol=1e-3)  # different clips, different vectors

    text = teacher.embed_text(PROMPTS)
    again = _load(version, path, text_dirs[version]).embed_text(PROMPTS)  # an independent second load
    assert text.shape == (3, 8)
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(text, again)
    tokens = teacher.tokenize(PROMPTS)
    with torch.no_grad():
        want_text = torch.nn.functional.normalize(model.caption_encoder(**tokens), dim=-1)
    torch.testing.assert_close(text, want_text, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("version", ["2022", "2023"])
def test_text_pooling_ignores_padding(version: str, text_dirs, tmp_path: Path) -> None:
    """A prompt embeds the same alone as padded next to a longer one (CLS / last real token)."""
    teacher = _load(version, _release(_tiny(version, text_dirs[version]), tmp_path / "w.pth"), text_dirs[version])
    together = teacher.embed_text(PROMPTS)
    for i, prompt in enumerate(PROMPTS):
        torch.testing.assert_close(teacher.embed_text([prompt])[0], together[i], atol=1e-5, rtol=1e-5)


def test_gpt2_prompts_end_with_endoftext(text_dirs, tmp_path: Path) -> None:
    teacher = _load("2023", _release(_tiny("2023", text_dirs["2023"]), tmp_path / "w.pth"), text_dirs["2023"])
    tokens = teacher.tokenize(["a dog", "the sound of rain"])
    last = tokens["attention_mask"].sum(1) - 1
    eos = teacher.tokenizer.eos_token_id
    assert tokens["input_ids"][torch.arange(2), last].tolist() == [eos, eos]
    assert tokens["attention_mask"][0, -1] == 0  # the shorter prompt is right-padded


def test_bert_tokens_truncate_at_text_len(text_dirs, tmp_path: Path) -> None:
    teacher = _load("2022", _release(_tiny("2022", text_dirs["2022"]), tmp_path / "w.pth"), text_dirs["2022"])
    tokens = teacher.tokenize([" ".join(["dog"] * 300)])
    assert tokens["input_ids"].shape[1] == SPECS["2022"].text_len == 100
    assert set(tokens) == {"input_ids", "attention_mask", "token_type_ids"}


def test_audio_is_fitted_deterministically(text_dirs, tmp_path: Path) -> None:
    """Long clips are centre-cropped, short ones tiled, as tinyclap.audio.fit_length does."""
    teacher = _load("2022", _release(_tiny("2022", text_dirs["2022"]), tmp_path / "w.pth"), text_dirs["2022"])
    n = TINY_AUDIO.clip_samples
    long = _clips(1, 2 * n + 123, seed=3)[0]
    short = _clips(1, n // 3, seed=4)[0]
    torch.testing.assert_close(teacher.embed_audio(long), teacher.embed_audio(fit_length(long.numpy(), n)))
    torch.testing.assert_close(teacher.embed_audio(short), teacher.embed_audio(fit_length(short.numpy(), n)))
    assert torch.equal(teacher.embed_audio(long), teacher.embed_audio(long))


def test_real_clip_embeds(text_dirs, tmp_path: Path, esc10_files: list[Path]) -> None:
    teacher = _load("2023", _release(_tiny("2023", text_dirs["2023"]), tmp_path / "w.pth"), text_dirs["2023"])
    wave = load_audio(esc10_files[0], teacher.audio_config.sample_rate)
    emb = teacher.embed_audio(wave)
    assert emb.shape == (1, 8) and torch.isfinite(emb).all()
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(1))


def test_checkpoint_mel_filters_are_adopted(text_dirs, tmp_path: Path) -> None:
    model = _tiny("2022", text_dirs["2022"])
    other = torch.from_numpy(librosa.filters.mel(sr=16000, n_fft=512, n_mels=32, fmin=300, fmax=6000).T.copy())
    path = _release(model, tmp_path / "w.pth", {"audio_encoder.base.logmel_extractor.melW": other})
    with pytest.warns(UserWarning, match="mel filterbank differs"):
        teacher = _load("2022", path, text_dirs["2022"])
    torch.testing.assert_close(teacher.model.audio_encoder.frontend.mel, other)


# ----------------------------------------------------------------------------- errors


def test_empty_prompts_raise(text_dirs, tmp_path: Path) -> None:
    teacher = _load("2022", _release(_tiny("2022", text_dirs["2022"]), tmp_path / "w.pth"), text_dirs["2022"])
    with pytest.raises(ValueError, match="at least one prompt"):
        teacher.embed_text([])


def test_unexpected_missing_and_misshapen_keys_are_listed(text_dirs, tmp_path: Path) -> None:
    model = _tiny("2022", text_dirs["2022"])
    path = _release(model, tmp_path / "extra.pth", {"audio_encoder.base.fc2.weight": torch.zeros(3)})
    with pytest.raises(CheckpointError, match=r"1 unexpected keys: audio_encoder\.base\.fc2\.weight"):
        _load("2022", path, text_dirs["2022"])

    state = dict(model.state_dict())
    del state["audio_encoder.projection.linear2.weight"]
    torch.save({"model": state}, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match=r"missing keys: audio_encoder\.projection\.linear2\.weight"):
        _load("2022", tmp_path / "missing.pth", text_dirs["2022"])

    # A full-size file read into a tiny model: shapes disagree.
    state = dict(model.state_dict())
    state["audio_encoder.base.fc1.weight"] = torch.zeros(2048, 2048)
    torch.save({"model": state}, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match=r"wrong shape: audio_encoder\.base\.fc1\.weight \(2048, 2048\)"):
        _load("2022", tmp_path / "shape.pth", text_dirs["2022"])


def test_missing_and_broken_files(text_dirs, tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="CLAP_weights_2022.pth"):
        _load("2022", tmp_path / "nowhere.pth", text_dirs["2022"])
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pth"):
        _load("2022", bad, text_dirs["2022"])
    torch.save({"something": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="logit_scale"):
        _load("2022", tmp_path / "other.pth", text_dirs["2022"])
    good = _release(_tiny("2022", text_dirs["2022"]), tmp_path / "w.pth")
    with pytest.raises(MissingWeightsError, match="text model directory .*no-such-bert"):
        _load("2022", good, tmp_path / "no-such-bert")


def test_text_model_found_in_tinyclap_home_or_named_in_error(text_dirs, tmp_path: Path, monkeypatch) -> None:
    import shutil

    monkeypatch.setenv("TINYCLAP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never touch the network
    good = _release(_tiny("2022", text_dirs["2022"]), tmp_path / "w.pth")
    shutil.copytree(text_dirs["2022"], tmp_path / "home" / "bert-base-uncased")
    teacher = load_msclap("2022", good, audio_config=TINY_AUDIO, d_proj=8, **TINY_WIDTHS["2022"])  # default id
    assert teacher.embed_text(["a dog"]).shape == (1, 8)
    with pytest.raises(MissingWeightsError) as err:
        _load("2022", good, "tinyclap-test/no-such-text-model")
    assert "https://huggingface.co/tinyclap-test/no-such-text-model" in str(err.value)
    assert str(tmp_path / "home" / "tinyclap-test" / "no-such-text-model") in str(err.value)


def test_wrong_text_family_and_version(text_dirs, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a gpt2 text tower"):
        build_msclap("2023", str(text_dirs["2022"]), audio_config=TINY_AUDIO, **TINY_WIDTHS["2023"])
    with pytest.raises(ValueError, match="unknown MS-CLAP version"):
        build_msclap("2021")
