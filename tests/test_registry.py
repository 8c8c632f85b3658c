"""Teacher registry and weight resolution: names, paths, hub cache, offline errors. Never touches the network."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from laion_tiny import PROJECTION_DIM, save_tiny_clap

import tinyclap
from tinyclap.errors import MissingWeightsError
from tinyclap.teachers.registry import UnknownTeacherError, load_teacher
from tinyclap.teachers.weights import resolve_hf_model, resolve_msclap_weights


@pytest.fixture(autouse=True)
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No network, an empty $TINYCLAP_HOME and an empty Hugging Face cache for every test."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TINYCLAP_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_clap(tmp_path_factory.mktemp("registry") / "tiny")


@pytest.mark.parametrize("version", ["2022", "2023"])
def test_msclap_offline_error_says_what_to_download(version: str, offline: Path) -> None:
    with pytest.raises(MissingWeightsError) as err:
        load_teacher(f"msclap-{version}")
    msg = str(err.value)
    assert f"CLAP_weights_{version}.pth" in msg
    assert f"https://huggingface.co/microsoft/msclap/resolve/main/CLAP_weights_{version}.pth" in msg
    assert str(offline / "home" / "msclap" / f"CLAP_weights_{version}.pth") in msg
    assert "HF_HUB_OFFLINE" in msg


def test_msclap_weights_found_in_tinyclap_home_and_explicit_path(offline: Path) -> None:
    home_copy = offline / "home" / "msclap" / "CLAP_weights_2023.pth"
    home_copy.parent.mkdir(parents=True)
    home_copy.write_bytes(b"not really weights")
    assert resolve_msclap_weights("2023") == home_copy
    explicit = offline / "mine.pth"
    explicit.write_bytes(b"x")
    assert resolve_msclap_weights("2022", explicit) == explicit
    with pytest.raises(MissingWeightsError, match="nope.pth: no such MS-CLAP checkpoint"):
        resolve_msclap_weights("2022", offline / "nope.pth")
    with pytest.raises(ValueError, match="2022"):
        resolve_msclap_weights("2024")


def test_msclap_weights_found_in_hub_cache_offline(offline: Path) -> None:
    """A file already in the Hugging Face cache is used with HF_HUB_OFFLINE=1."""
    repo = offline / "hf" / "models--microsoft--msclap"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    cached = repo / "snapshots" / commit / "CLAP_weights_2022.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"cached")
    assert resolve_msclap_weights("2022").read_bytes() == b"cached"


def test_laion_offline_error_says_what_to_download(offline: Path) -> None:
    with pytest.raises(MissingWeightsError) as err:
        load_teacher("laion/clap-htsat-unfused")
    msg = str(err.value)
    assert "https://huggingface.co/laion/clap-htsat-unfused" in msg
    assert str(offline / "home" / "laion" / "clap-htsat-unfused") in msg
    assert "HF_HUB_OFFLINE" in msg


def test_laion_name_resolves_through_tinyclap_home(tiny_dir: Path, offline: Path, capsys: pytest.CaptureFixture) -> None:
    shutil.copytree(tiny_dir, offline / "home" / "laion" / "tiny-clap")
    teacher = load_teacher("laion/tiny-clap")
    assert teacher.name == "laion/tiny-clap"  # the stable id, not the folder it came from
    assert teacher.dim == PROJECTION_DIM
    assert "LAION-CLAP weights" in capsys.readouterr().err  # licence line printed on load


def test_laion_name_resolves_through_hub_cache(tiny_dir: Path, offline: Path) -> None:
    repo = offline / "hf" / "models--laion--tiny-cached"
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(tiny_dir, repo / "snapshots" / commit)
    assert resolve_hf_model("laion/tiny-cached") == str(repo / "snapshots" / commit)
    teacher = load_teacher("laion/tiny-cached", quiet=True)
    assert teacher.name == "laion/tiny-cached"
    assert teacher.embed_text(["rain"]).shape == (1, PROJECTION_DIM)


def test_local_folder_and_licence_line(tiny_dir: Path, capsys: pytest.CaptureFixture) -> None:
    teacher = tinyclap.load_teacher(tiny_dir)  # the top-level re-export
    assert teacher.name == str(tiny_dir.resolve())
    err = capsys.readouterr().err
    assert teacher.licence in err and teacher.name in err
    load_teacher(str(tiny_dir), quiet=True)
    assert teacher.licence not in capsys.readouterr().err


def test_unknown_name_lists_known_teachers() -> None:
    with pytest.raises(UnknownTeacherError) as err:
        load_teacher("clap-of-thunder")
    msg = str(err.value)
    for known in ("msclap-2022", "msclap-2023", "laion/clap-htsat-unfused", "local:PATH"):
        assert known in msg


def test_bad_paths_and_options(tmp_path: Path, tiny_dir: Path) -> None:
    pth = tmp_path / "clap.pth"
    pth.write_bytes(b"x")
    with pytest.raises(UnknownTeacherError, match="version"):
        load_teacher(str(pth))
    with pytest.raises(UnknownTeacherError, match="'2024'"):
        load_teacher(str(pth), version="2024")
    with pytest.raises(MissingWeightsError, match="missing.pth"):
        load_teacher(str(tmp_path / "missing.pth"), version="2022")

    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(UnknownTeacherError, match="'bert'"):
        load_teacher(str(other))

    student = tmp_path / "student.json"
    student.write_text(json.dumps({"format": "tinyclap", "kind": "student"}))
    with pytest.raises(UnknownTeacherError, match="'student'"):
        load_teacher(str(student))

    with pytest.raises(UnknownTeacherError, match="unexpected option"):
        load_teacher(str(tiny_dir), text_model="bert-base-uncased")
    with pytest.raises(UnknownTeacherError, match="unknown teacher"):
        load_teacher(str(tmp_path / "nowhere" / "teacher.json"))


# ----------------------------------------------------------------------------- MS-CLAP dispatch


@pytest.fixture(scope="module")
def tiny_msclap(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A tiny MS-CLAP 2022 (CNN14 + BERT) saved in the released format, and the options that rebuild it."""
    import torch
    from transformers import BertConfig, BertTokenizer

    from tinyclap.audio import AudioConfig
    from tinyclap.teachers.msclap import build_msclap

    root = tmp_path_factory.mktemp("msclap")
    words = "[PAD] [UNK] [CLS] [SEP] [MASK] a the dog bark ##ing sound of rain".split()
    bert = root / "tiny-bert"
    BertTokenizer(vocab={w: i for i, w in enumerate(words)}).save_pretrained(bert)
    BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=32, max_position_embeddings=128).save_pretrained(bert)  # fmt: skip
    options = dict(
        text_model=str(bert), d_proj=8, channels=(4, 4, 8, 8, 8, 16), out_emb=16,
        audio_config=AudioConfig(sample_rate=16000, clip_seconds=1.0, n_fft=512, win_length=512,
                                 hop_length=160, n_mels=32, fmin=50.0, fmax=8000.0),
    )  # fmt: skip
    torch.manual_seed(0)
    model = build_msclap("2022", **options).eval()
    path = root / "CLAP_weights_2022.pth"
    torch.save({"model": model.state_dict()}, path)
    return path, options


def test_msclap_names_dispatch_to_load_msclap(
    tiny_msclap: tuple[Path, dict], offline: Path, capsys: pytest.CaptureFixture
) -> None:
    import numpy as np
    import torch

    from tinyclap.teachers.msclap import load_msclap

    path, options = tiny_msclap
    clips = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 16000)).astype(np.float32)
    reference = load_msclap("2022", path, **options)
    want_audio, want_text = reference.embed_audio(clips), reference.embed_text(["a dog barking"])

    by_name = load_teacher("msclap-2022", checkpoint=path, **options)
    assert by_name.name == "msclap-2022"
    assert "MS-CLAP" in by_name.licence and by_name.licence in capsys.readouterr().err
    by_pth = load_teacher(str(path), version="2022", quiet=True, **options)
    home = offline / "home" / "msclap" / "CLAP_weights_2022.pth"  # a manual download, found by name
    home.parent.mkdir(parents=True)
    home.write_bytes(path.read_bytes())
    from_home = load_teacher("msclap-2022", quiet=True, **options)
    for teacher in (by_name, by_pth, from_home):
        torch.testing.assert_close(teacher.embed_audio(clips), want_audio, atol=1e-6, rtol=0)
        torch.testing.assert_close(teacher.embed_text(["a dog barking"]), want_text, atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------- local (tinyclap pretrain) dispatch


def test_local_names_dispatch_to_load_local(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``local:PATH``, the ``.json`` itself and the output folder all load the pretrain teacher."""
    import numpy as np
    import torch

    from tinyclap.audio import AudioConfig
    from tinyclap.pretrain import model as model_mod
    from tinyclap.teachers import local

    torch.manual_seed(0)
    config = AudioConfig(sample_rate=16000, clip_seconds=1.0, hop_length=1024, n_mels=32, fmax=8000.0)
    model = model_mod.LocalClap("phinet_alpha_0.25_beta_0.75_t0_2_N_3:embed_width=64", config, dim=16)
    out = tmp_path / "run"
    meta = local.save_local(out / "teacher", model.eval())
    (out / "history.json").write_text("{}")  # other files in the folder do not confuse it

    clips = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 16000)).astype(np.float32)
    reference = local.load_local(meta)
    want_audio, want_text = reference.embed_audio(clips), reference.embed_text(["a dog barking"])
    for name in (f"local:{meta}", str(meta), str(out), f"local:{out}"):
        teacher = load_teacher(name)
        assert teacher.name == reference.name and teacher.licence in capsys.readouterr().err
        torch.testing.assert_close(teacher.embed_audio(clips), want_audio, atol=1e-6, rtol=0)
        torch.testing.assert_close(teacher.embed_text(["a dog barking"]), want_text, atol=1e-6, rtol=0)
