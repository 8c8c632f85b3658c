"""`tinyclap distill` end to end: flags reach the recipe, Ctrl-C (SIGINT) saves, --resume finishes the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from distill_tiny import one_thread  # noqa: F401 - fixture
from distill_tiny import ProjTeacher, TINY_AUDIO, synth, tiny_student_config
from tinyclap.checkpoint import load_checkpoint
from tinyclap.cli import main
from tinyclap.distill.cache import build_cache

REPO = Path(__file__).resolve().parent.parent
SPEC = "synth?n=40&seed=1"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup_files(tmp_path_factory) -> tuple[Path, Path]:
    from tinyclap.students import save_preset

    root = tmp_path_factory.mktemp("cli")
    build_cache(ProjTeacher(), synth(40), root / "cache", batch_size=16, progress=False)
    preset = save_preset(root / "tiny.yaml", tiny_student_config(), TINY_AUDIO, description="test student")
    return root / "cache", preset


def _args(cache: Path, preset: Path, out: Path, *extra: str) -> list[str]:
    return ["distill", "--cache", str(cache), "--data", SPEC, "--student", str(preset), "--preset", "quick",
            "--batch-size", "8", "--out", str(out), "--seed", "4", "--no-progress",
            "--set", "scheduler.name=plateau", "--set", "scheduler.patience=1", *extra]


def test_cli_flags_override_the_preset(setup_files, tmp_path: Path, capsys) -> None:
    cache, preset = setup_files
    assert main(_args(cache, preset, tmp_path / "run", "--epochs", "2", "--lr", "0.002", "--augment")) == 0
    assert "done: 2 epochs" in capsys.readouterr().out
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    cfg = run["config"]
    assert (cfg["epochs"], cfg["lr"], cfg["batch_size"], cfg["seed"]) == (2, 0.002, 8, 4)
    assert cfg["augment"]["enabled"] is True and cfg["scheduler"] == {"name": "plateau", "factor": 0.1,
                                                                     "patience": 1, "min_lr": 0.0}
    meta = json.loads((tmp_path / "run" / "last.json").read_text())
    assert meta["name"] == "phinet_alpha_0.25_beta_0.75_t0_4_N_3" and meta["dim"] == 12
    # an existing run is never overwritten without --resume
    assert main(_args(cache, preset, tmp_path / "run", "--epochs", "2")) == 1
    assert "--resume" in capsys.readouterr().err


def test_cli_streaming_flags_reach_the_recipe(setup_files, tmp_path: Path, capsys) -> None:
    cache, preset = setup_files
    flags = ("--epochs", "1", "--stream-window", "0.25", "--stream-weight", "0.25", "--stream-consistency", "2")
    assert main(_args(cache, preset, tmp_path / "run", *flags)) == 0
    cfg = json.loads((tmp_path / "run" / "run.json").read_text())["config"]
    assert (cfg["stream_window"], cfg["stream_weight"], cfg["stream_consistency"]) == (0.25, 0.25, 2.0)
    capsys.readouterr()
    # The consistency term compares the two paths: without a window it is refused before anything is written.
    assert main(_args(cache, preset, tmp_path / "bad", "--epochs", "1", "--stream-consistency", "1")) != 0
    assert "needs stream_window" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_sigint_saves_and_resume_matches_an_uninterrupted_run(setup_files, tmp_path: Path) -> None:
    cache, preset = setup_files
    extra = ("--epochs", "6", "--set", "save_every_steps=1")
    assert main(_args(cache, preset, tmp_path / "full", *extra)) == 0

    out = tmp_path / "cut"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "tests")}
    proc = subprocess.Popen([sys.executable, "-m", "tinyclap", *_args(cache, preset, out, *extra)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "state.pt").is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted at epoch" in err and "--resume" in err

    assert main(_args(cache, preset, out, *extra, "--resume")) == 0
    cut, _ = load_checkpoint(out / "last.json")
    full, _ = load_checkpoint(tmp_path / "full" / "last.json")
    for key in full:
        torch.testing.assert_close(cut[key], full[key], atol=1e-6, rtol=0, msg=key)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3, 4, 5, 6]
