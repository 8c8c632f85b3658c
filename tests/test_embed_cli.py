"""`tinyclap embed` on a tiny LAION-style ClapModel and real ESC-10 clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from laion_tiny import PROJECTION_DIM, save_tiny_clap

from tinyclap.cli import main
from tinyclap.teachers.embedding import embed_audio_files
from tinyclap.teachers.registry import load_teacher


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_clap(tmp_path_factory.mktemp("embed") / "tiny")


@pytest.fixture(scope="module")
def files(esc10_files: list[Path]) -> list[str]:
    return [str(esc10_files[0]), str(esc10_files[-1])]


@pytest.fixture(scope="module")
def expected(tiny_dir: Path, files: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    teacher = load_teacher(str(tiny_dir), quiet=True)
    return embed_audio_files(teacher, files), teacher.embed_text(["a dog barking", "a chainsaw"])


def test_prints_shapes_values_and_cosines(
    tiny_dir: Path, files: list[str], expected: tuple[torch.Tensor, torch.Tensor], capsys: pytest.CaptureFixture
) -> None:
    rc = main(["embed", "--teacher", str(tiny_dir), "--audio", *files, "--text", "a dog barking", "a chainsaw"])
    out = capsys.readouterr().out
    assert rc == 0
    assert f"audio: (2, {PROJECTION_DIM})" in out and f"text: (2, {PROJECTION_DIM})" in out
    audio, text = expected
    assert f"{audio[0, 0].item():+.4f}" in out.split(files[0])[1].splitlines()[0]  # first values of the first clip
    cos = (audio @ text.T).numpy()
    cos_line = next(line for line in out.splitlines() if line.strip().startswith(files[1]) and "->" in line)
    assert cos_line.split(":")[-1].split("->")[0].split() == [f"{v:+.4f}" for v in cos[1]]


def test_saves_audio_npy(
    tiny_dir: Path, files: list[str], expected: tuple[torch.Tensor, torch.Tensor], tmp_path: Path
) -> None:
    out = tmp_path / "emb.npy"
    rc = main(["embed", "--teacher", str(tiny_dir), "--audio", *files, "--out", str(out), "--batch-size", "1"])
    assert rc == 0
    saved = np.load(out)
    assert saved.shape == (2, PROJECTION_DIM) and saved.dtype == np.float32
    np.testing.assert_allclose(saved, expected[0].numpy(), atol=1e-5)
    assert [p.name for p in tmp_path.iterdir()] == ["emb.npy"]  # no temp file left behind


def test_saves_audio_and_text_npz(
    tiny_dir: Path, files: list[str], expected: tuple[torch.Tensor, torch.Tensor], tmp_path: Path
) -> None:
    out = tmp_path / "emb.npz"
    argv = ["embed", "--teacher", str(tiny_dir), "--audio", *files, "--text", "a dog barking", "a chainsaw"]
    assert main([*argv, "--out", str(out)]) == 0
    with np.load(out) as z:
        np.testing.assert_allclose(z["audio"], expected[0].numpy(), atol=1e-5)
        np.testing.assert_allclose(z["text"], expected[1].numpy(), atol=1e-5)
        assert list(z["files"]) == files and list(z["prompts"]) == ["a dog barking", "a chainsaw"]
        assert str(z["teacher"]) == str(tiny_dir.resolve())
        assert float(z["logit_scale"]) == pytest.approx(100.0, rel=1e-5)


def test_errors_are_one_line_and_write_nothing(
    tiny_dir: Path, files: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_text("this is not audio")
    out = tmp_path / "emb.npy"
    assert main(["embed", "--teacher", str(tiny_dir), "--audio", files[0], str(broken), "--out", str(out)]) == 1
    assert "broken.wav" in capsys.readouterr().err
    assert not out.exists()

    assert main(["embed", "--teacher", str(tiny_dir), "--audio", files[0], "--text", "rain", "--out", str(out)]) == 1
    assert ".npz" in capsys.readouterr().err
    assert main(["embed", "--teacher", str(tiny_dir), "--text", "rain", "--out", str(tmp_path / "e.txt")]) == 1
    assert main(["embed", "--teacher", str(tiny_dir)]) == 1
    assert main(["embed", "--teacher", "no-such-teacher", "--text", "rain"]) == 1
    assert "msclap-2022" in capsys.readouterr().err  # the known names are listed
    assert list(tmp_path.iterdir()) == [broken]
