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

