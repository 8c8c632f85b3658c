"""Bad values in specs, tables, presets, checkpoints, caches and audio: errors that name the file or field (issue 14).

No test here reads ../shared or the network: clips are generated (numpy + soundfile,
tinyclap.data.synth), models are tiny and built under tmp_path.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyclap.cli import main
from tinyclap.errors import DataError, TinyClapError


def _cli_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err.splitlines()[-1]


# ------------------------------------------------------------------ data specs
@pytest.mark.parametrize(
    "spec, option, kind",
    [
        ("synth?n=abc", "n", "an integer"),
        ("synth?n=1.5", "n", "an integer"),
        ("synth?seed=x", "seed", "an integer"),
        ("synth?hop=abc", "hop", "a number"),
        ("synth?strict=maybe", "strict", "true or false"),
        ("tut17:/nowhere?fold=a", "fold", "an integer"),
    ],
)
def test_spec_option_of_the_wrong_type(spec: str, option: str, kind: str) -> None:
    from tinyclap.data import open_dataset

    with pytest.raises(DataError, match=rf"^dataset spec '.*': option {option} must be {kind}, got "):
        open_dataset(spec)


def test_spec_option_types_through_the_cli(capsys) -> None:
    msg = _cli_error(capsys, ["data", "synth?n=abc"])
    assert msg == "tinyclap data: error: dataset spec 'synth?n=abc': option n must be an integer, got 'abc'"


def test_good_spec_options_still_work() -> None:
    from tinyclap.data import open_dataset

    ds = open_dataset("synth?n=3&seed=2&hop=0.5&strict=true")
    assert len(ds) == 3 and ds.strict and ds.hop_seconds == 0.5


def test_folds_that_are_not_numbers() -> None:
    from tinyclap.data.esc50 import parse_folds

    with pytest.raises(DataError, match=r"folds: expected fold numbers such as 1,2, got 'a,2'"):
        parse_folds("a,2", {1, 2})
    assert parse_folds("1+2", {1, 2, 3}) == {1, 2}


def _esc50(root: Path, rows: list[str]) -> Path:
    import numpy as np
    import soundfile as sf

    (root / "meta").mkdir(parents=True)
    (root / "audio").mkdir()
    (root / "meta" / "esc50.csv").write_text("filename,fold,target,category,esc10,src_file,take\n" + "\n".join(rows) + "\n")
    for row in rows:
        sf.write(root / "audio" / row.split(",")[0], np.zeros(4410, dtype=np.float32), 44100)
    return root


def test_csv_metadata_that_is_not_an_integer_names_file_line_and_column(tmp_path: Path) -> None:
    from tinyclap.data import open_dataset

    root = _esc50(tmp_path / "esc", ["1-1-A-0.wav,1,0,dog,True,1,A", "1-2-A-0.wav,one,0,dog,True,2,A"])
    with pytest.raises(DataError, match=r"esc50\.csv, line 3: column 'fold' must be an integer, got 'one'"):
        open_dataset(f"esc50:{root}")


# ------------------------------------------------------------------ recipes, presets, dims files
def test_distill_setting_of_the_wrong_type_is_named() -> None:
    from tinyclap.distill.presets import PresetError, make_config

    with pytest.raises(PresetError, match=r"^setting epochs: expected an integer, got 'abc'$"):
        make_config("quick", epochs="abc")
    with pytest.raises(PresetError, match=r"^setting lr: expected a number, got 'fast'$"):
        make_config("quick", lr="fast")


def test_distill_recipe_file_is_named(tmp_path: Path) -> None:
    from tinyclap.distill.presets import PresetError, make_config

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("epochs: many\n")
    with pytest.raises(PresetError, match=r"recipe\.yaml: setting epochs: expected an integer, got 'many'"):
        make_config(recipe)


def test_distill_dims_file_names_the_bad_value(tmp_path: Path) -> None:
    from tinyclap.cli.distill import _read_dims

    dims = tmp_path / "dims.txt"
    dims.write_text("0\n3\ndog\n")
    with pytest.raises(ValueError, match=r"--dims .*dims\.txt: expected latent dim indices .*, found 'dog'$"):
        _read_dims(dims)
    dims.write_text("[1, 2.5]")
    with pytest.raises(ValueError, match=r"found '2\.5'$"):
        _read_dims(dims)
    dims.write_text("4\n1\n")
    assert _read_dims(dims) == [4, 1]


def test_student_preset_field_of_the_wrong_type(tmp_path: Path) -> None:
    from tinyclap.students.encoder import StudentConfigError, load_preset

    bad = tmp_path / "s.yaml"
    bad.write_text("student:\n  alpha: big\n  beta: 0.75\n  t0: 4\n  num_layers: 7\n")
    with pytest.raises(StudentConfigError, match=r"s\.yaml: student config: alpha must be a number, got 'big'"):
        load_preset(bad)
    bad.write_text("student:\n  alpha: 0.5\n  beta: 0.75\n  t0: 4\n  num_layers: 7\naudio:\n  sample_rate: fast\n")
    with pytest.raises(StudentConfigError, match=r"s\.yaml: bad 'audio:' section .*sample_rate must be an integer"):
        load_preset(bad)


def test_student_preset_audio_type_through_the_cli(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("student:\n  alpha: 0.5\n  beta: 0.75\n  t0: 4\n  num_layers: 7\naudio:\n  sample_rate: fast\n")
    msg = _cli_error(capsys, ["scale", "--profile", str(bad)])  # was: TypeError traceback
    assert "sample_rate must be an integer, got 'fast'" in msg


# ------------------------------------------------------------------ clip lengths
def test_audio_config_refuses_bad_values() -> None:
    from tinyclap.audio import AudioConfig, AudioError

    with pytest.raises(AudioError, match=r"clip length \(clip_seconds\) must be positive, got -1"):
        AudioConfig(clip_seconds=-1)
    with pytest.raises(AudioError, match=r"n_mels must be an integer, got 'x'"):
        AudioConfig(n_mels="x")
    assert AudioConfig(sample_rate=16000.0).sample_rate == 16000  # an integral float from JSON is fine
    assert isinstance(AudioConfig(sample_rate=16000.0).sample_rate, int)


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "synth?n=2", "--clip-seconds", "-1"],
        ["data", "synth?n=2", "--clip-seconds", "0"],
        ["cache", "--teacher", "local:/nowhere", "--data", "synth?n=2", "--out", "/tmp/unused", "--clip-seconds", "0"],
        ["pretrain", "--data", "synth?n=2", "--out", "/tmp/unused", "--clip-seconds", "-0.5"],
    ],
)
def test_clip_seconds_names_the_option(capsys, argv: list[str]) -> None:
    # `cache --clip-seconds 0` used to be ignored silently (the teacher's length was used);
    # a negative length reported 'hop_seconds must be positive', an option nobody gave.
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "argument --clip-seconds: must be a positive number" in err and "hop_seconds" not in err



# ------------------------------------------------------------------ malformed checkpoint JSON
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):  # noqa: ANN001, ANN201 - a demo_support.DemoRun
    from demo_support import build_demo_run

    return build_demo_run(tmp_path_factory.mktemp("guard-run"))


def _copy_checkpoint(src_json: Path, dst_dir: Path, name: str, meta: object) -> Path:
    import json
    import shutil

    dst_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(src_json.with_suffix(".safetensors"), dst_dir / f"{name}.safetensors")
    if isinstance(meta, dict):
        meta = {**meta, "weights": f"{name}.safetensors"}
    (dst_dir / f"{name}.json").write_text(json.dumps(meta))
    return dst_dir / f"{name}.json"


def test_checkpoint_json_that_is_not_an_object(tmp_path: Path) -> None:
    from tinyclap.checkpoint import load_checkpoint
    from tinyclap.errors import CheckpointError

    (tmp_path / "m.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match=r"m\.json: not a tinyclap checkpoint \(the JSON holds a list"):
        load_checkpoint(tmp_path / "m.json")


def test_student_json_with_bad_fields(tiny_run, tmp_path: Path) -> None:
    import json

    from tinyclap.errors import CheckpointError
    from tinyclap.students import load_student

    meta = json.loads(tiny_run.student.read_text())
    bad = _copy_checkpoint(tiny_run.student, tmp_path, "kept", {**meta, "kept_dims": "abc"})
    with pytest.raises(CheckpointError, match=r"kept\.json: bad student metadata \('dim' must be an integer"):
        load_student(bad)
    bad = _copy_checkpoint(tiny_run.student, tmp_path, "dim", {**meta, "dim": "x"})
    with pytest.raises(CheckpointError, match=r"dim\.json: bad student metadata"):
        load_student(bad)


@pytest.mark.parametrize("verb", ["eval", "prune", "export", "demo"])
def test_cli_on_a_list_json_student(tiny_run, tmp_path: Path, capsys, verb: str) -> None:
    bad = _copy_checkpoint(tiny_run.student, tmp_path, "student", [1, 2])
    bank = str(tiny_run.bank)
    argv = {
        "eval": ["eval", "--model", str(bad), "--bank", bank, "--dataset", "synth?n=2&target=label", "--quiet"],
        "prune": ["prune", "--student", str(bad), "--cache", str(tmp_path), "--bank", bank, "--dims", "4",
                  "--out", str(tmp_path / "p")],
        "export": ["export", "--student", str(bad), "--bank", bank, "--calib", "synth?n=2", "--out", str(tmp_path / "e")],
        "demo": ["demo", "--student", str(bad), "--bank", bank, "--check"],
    }[verb]
    msg = _cli_error(capsys, argv)  # was: AttributeError: 'list' object has no attribute 'get'
    assert str(bad) in msg and "not a tinyclap checkpoint" in msg


def test_local_teacher_json_with_a_bad_model_field(tiny_run, tmp_path: Path) -> None:
    import json

    from tinyclap.errors import CheckpointError
    from tinyclap.teachers.registry import load_teacher

    meta = json.loads(tiny_run.teacher.read_text())
    for name, change in (("enc", {"audio_encoder": 5}), ("dim", {"dim": "x"})):
        bad = _copy_checkpoint(tiny_run.teacher, tmp_path, name, {**meta, "model": {**meta["model"], **change}})
        with pytest.raises(CheckpointError, match=rf"{name}\.json: bad teacher metadata in 'model'"):
            load_teacher(f"local:{bad}")


# ------------------------------------------------------------------ LAION folder with a pickle only
def test_laion_folder_with_only_pytorch_model_bin(tmp_path: Path, capsys) -> None:
    import torch
    from laion_tiny import save_tiny_clap
    from safetensors.torch import load_file

    from tinyclap.errors import CheckpointError
    from tinyclap.teachers.registry import load_teacher

    folder = save_tiny_clap(tmp_path / "clap")
    weights = folder / "model.safetensors"
    torch.save(load_file(str(weights)), folder / "pytorch_model.bin")
    weights.unlink()
    with pytest.raises(CheckpointError, match=r"holds only pytorch_model\.bin \(a pickle; tinyclap loads safetensors only\)"):
        load_teacher(str(folder))
    msg = _cli_error(capsys, ["embed", "--teacher", str(folder), "--text", "a dog"])
    assert "pytorch_model.bin" in msg and "save_pretrained" in msg


# ------------------------------------------------------------------ offline without HF_HUB_OFFLINE
@pytest.fixture
def no_network(monkeypatch, tmp_path: Path):  # noqa: ANN201
    """The hub endpoint points at a loopback port nobody listens on; the hub caches are empty."""
    from demo_support import free_port
    from huggingface_hub import constants as hf_constants

    from tinyclap.teachers import weights

    for var in ("HF_HUB_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("TINYCLAP_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(weights, "_REACHABLE", {}, raising=False)
    online: list[str] = []

    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if not kwargs.get("local_files_only"):
            online.append(str(args[:2]))  # an online attempt: the ~30 s of retries this test is about
        raise OSError("not cached")

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    return online


def test_hub_probe_sees_a_dead_and_a_live_endpoint(no_network, monkeypatch) -> None:
    import socket

    from tinyclap.teachers import weights

    assert weights.hub_reachable() is False
    assert "no network: could not connect to 127.0.0.1" in weights.offline_reason()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert weights.hub_reachable() is True and weights.offline_reason() is None


@pytest.mark.parametrize("name", ["msclap-2022", "laion/clap-htsat-unfused"])
def test_offline_teacher_fails_fast_without_a_download_attempt(no_network, name: str) -> None:
    from tinyclap.errors import MissingWeightsError
    from tinyclap.teachers.registry import load_teacher

    with pytest.raises(MissingWeightsError, match=r"no network: could not connect to 127\.0\.0\.1"):
        load_teacher(name)
    assert no_network == []  # never went online (that is what took ~29 s of retries)


# ------------------------------------------------------------------ quickstart options up front
@pytest.mark.parametrize(
    "change, option",
    [
        ({"target": "no-such-mcu"}, "--target"),
        ({"student_preset": "no_such_preset"}, "--student-preset"),
        ({"distill_epochs": 0}, "--distill-epochs"),
        ({"pretrain_epochs": -1}, "--pretrain-epochs"),
        ({"data": ["synth?n=abc&x"]}, "--data"),
    ],
)
def test_quickstart_refuses_bad_options_before_any_step(monkeypatch, tmp_path: Path, change: dict, option: str) -> None:
    from tinyclap.quickstart import pipeline
    from tinyclap.quickstart.options import QuickstartOptionError, QuickstartOptions

    def no_steps(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("a quickstart step would run (pretraining) before the options were checked")

    monkeypatch.setattr(pipeline, "Quickstart", no_steps)
    out = tmp_path / "qs"
    with pytest.raises(QuickstartOptionError, match=rf"^{option}"):
        pipeline.run_quickstart(QuickstartOptions(out=str(out), **change))
    assert not out.exists()


def test_quickstart_default_options_pass_the_check() -> None:
    from tinyclap.quickstart.options import QuickstartOptions, check_options

    check_options(QuickstartOptions())


# ------------------------------------------------------------------ damaged cache shards
def _tiny_cache(root: Path):  # noqa: ANN202 - (teacher, dataset, cache)
    from distill_tiny import ProjTeacher, synth

    from tinyclap.distill.cache import build_cache

    teacher, ds = ProjTeacher(), synth(n=10)
    return teacher, ds, build_cache(teacher, ds, root, batch_size=4, shard_size=4, progress=False)


@pytest.mark.parametrize("damage", ["truncate", "drop_rows"])
def test_damaged_shard_is_reported_and_rebuilt(tmp_path: Path, damage: str, capsys) -> None:
    import numpy as np

    from tinyclap.distill.cache import CacheError, EmbeddingCache, build_cache, cache_summary

    root = tmp_path / "cache"
    teacher, ds, cache = _tiny_cache(root)
    before = np.asarray(cache.embeddings).copy()
    shard = root / "shard-00001.npy"
    if damage == "truncate":
        data = shard.read_bytes()
        shard.write_bytes(data[: len(data) // 2])  # a full disk or a killed copy
    else:
        np.save(shard, before[4:6])  # a readable shard with fewer rows than its ids
    summary = cache_summary(root)
    assert "complete" not in summary and "DAMAGED (1 of 3 shards: shard 1: shard-00001.npy" in summary
    assert "re-run the same `tinyclap cache` command" in summary
    with pytest.raises(CacheError, match="shard-00001.npy"):
        EmbeddingCache.open(root)
    calls = teacher.calls
    rebuilt = build_cache(teacher, ds, root, batch_size=4, shard_size=4, progress=False)  # was: CacheError, every time
    assert 0 < teacher.calls - calls <= 1  # only the damaged shard (4 clips, one batch) was embedded again
    assert "rebuilding 1 damaged shard(s)" in capsys.readouterr().err
    np.testing.assert_allclose(np.asarray(rebuilt.embeddings), before, atol=1e-6)
    assert ", complete," in cache_summary(root)


def test_cache_info_on_a_damaged_cache_through_the_cli(tmp_path: Path, capsys) -> None:
    root = tmp_path / "cache"
    _tiny_cache(root)
    (root / "shard-00002.npy").write_bytes(b"\x93NUMPY")
    assert main(["cache", "--info", "--out", str(root)]) == 0
    out = capsys.readouterr().out
    assert "DAMAGED" in out and "shard 2" in out and ", complete," not in out


# ------------------------------------------------------------------ bad audio
def _wav(path: Path, samples: int, rate: int = 44100, keep_bytes: int | None = None) -> Path:
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    sf.write(path, (0.1 * rng.standard_normal(samples)).astype(np.float32), rate, subtype="PCM_16")
    if keep_bytes is not None:
        path.write_bytes(path.read_bytes()[:keep_bytes])  # header intact, data cut short
    return path


def test_wav_truncated_after_its_header_is_refused(tmp_path: Path) -> None:
    from tinyclap.audio import AudioDecodeError, declared_frames, load_audio

    cut = _wav(tmp_path / "cut.wav", 44100, keep_bytes=44 + 16)  # 8 of 44,100 samples
    assert declared_frames(cut) == 44100
    with pytest.raises(AudioDecodeError, match=r"cut\.wav: truncated: holds 8 of the 44,100 samples its header declares"):
        load_audio(cut, 44100)
    whole = _wav(tmp_path / "whole.wav", 44100)
    assert len(load_audio(whole, 44100)) == 44100


def test_too_short_to_embed_is_refused(tmp_path: Path) -> None:
    from tinyclap.audio import AudioConfig, AudioDecodeError, load_audio, min_clip_samples

    tiny = _wav(tmp_path / "tiny.wav", 8)  # a complete file, 8 samples long
    with pytest.raises(AudioDecodeError, match=r"tiny\.wav: too short to embed: 8 samples at 44100 Hz"):
        load_audio(tiny, 44100, min_samples=min_clip_samples(AudioConfig()))
    assert len(load_audio(tiny, 44100)) == 8  # the reader alone still reads it


def test_datasets_count_truncated_and_tiny_clips_as_broken(tmp_path: Path) -> None:
    from tinyclap.data import broken_report, open_dataset

    folder = tmp_path / "sounds"
    folder.mkdir()
    _wav(folder / "good.wav", 22050)
    _wav(folder / "cut.wav", 44100, keep_bytes=44 + 16)
    _wav(folder / "tiny.wav", 8)
    ds = open_dataset(f"folder:{folder}?cache=false")
    assert [e.path.name for e in ds.entries] == ["good.wav"]
    reasons = {Path(b.path).name: b.reason for b in ds.broken}
    assert reasons["cut.wav"].startswith("truncated: holds 8 of the 44,100 samples")
    assert reasons["tiny.wav"].startswith("too short to embed: 8 samples")
    assert "2 broken" in broken_report(ds)


def test_embed_cli_refuses_a_truncated_wav(tiny_run, tmp_path: Path, capsys) -> None:
    cut = _wav(tmp_path / "cut.wav", 44100, keep_bytes=44 + 16)
    msg = _cli_error(capsys, ["embed", "--teacher", f"local:{tiny_run.teacher}", "--audio", str(cut)])
    assert msg.endswith("cut.wav: truncated: holds 8 of the 44,100 samples its header declares")


# ------------------------------------------------------------------ more values that named no field
def test_nested_distill_settings_name_their_field() -> None:
    from tinyclap.distill.presets import PresetError, make_config

    with pytest.raises(PresetError, match=r"^setting scheduler\.patience: expected an integer, got 'abc'$"):
        make_config("quick", **{"scheduler.patience": "abc"})
    with pytest.raises(PresetError, match=r"^augment\.gain_db: expected a number, got 'abc'$"):
        make_config("quick", **{"augment.gain_db": "abc"})
    assert make_config("quick", **{"augment.gain_db": 3}).augment.gain_db == 3.0


def test_target_yaml_clock_names_file_and_field(tmp_path: Path) -> None:
    from tinyclap.export.targets import TargetError, load_target

    bad = tmp_path / "mcu.yaml"
    bad.write_text("name: x\nflash: 1MB\nram: 256KB\nclock_hz: fast\n")
    with pytest.raises(TargetError, match=r"mcu\.yaml: clock_hz must be an integer \(Hz\), got 'fast'$"):
        load_target(bad)


def test_audio_encoder_spec_options_name_their_field() -> None:
    from tinyclap.audio import AudioConfig
    from tinyclap.pretrain.encoders import AudioEncoderSpecError, build_audio_encoder

    with pytest.raises(AudioEncoderSpecError, match=r"cnn14: width must be a positive integer, got 'abc'"):
        build_audio_encoder("cnn14:width=abc", 16, AudioConfig(clip_seconds=0.25, n_mels=32))


def test_negative_hop_names_the_spec_option() -> None:
    from tinyclap.data import open_dataset

    with pytest.raises(DataError, match=r"window hop \(hop=SECONDS\) must be positive, got -1"):
        open_dataset("synth?n=2&hop=-1")
