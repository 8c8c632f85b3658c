"""No verb loses another's work: run folders record their kind; `quickstart --fresh` deletes only its own runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill_tiny import one_thread  # noqa: F401 - fixture
from distill_tiny import ProjTeacher, TINY_AUDIO, synth, tiny_student, tiny_student_config
from tests.pretrain_tiny import build_tiny_text_model, tiny_config
from tinyclap.cli import main
from tinyclap.runs import MARKER, RunKindError, run_kind

pytestmark = pytest.mark.usefixtures("one_thread")
SPEC = "synth?n=40&seed=1"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A finished tiny pretraining run, a finished tiny distillation run, and what distillation needs."""
    from tinyclap.distill import distill
    from tinyclap.distill.cache import build_cache
    from tinyclap.pretrain.train import pretrain
    from tinyclap.students import save_preset

    root = tmp_path_factory.mktemp("dataloss")
    text = build_tiny_text_model(root / "text")
    pretrain(tiny_config(text, epochs=1), root / "pretrain", progress=False)
    build_cache(ProjTeacher(), synth(40), root / "cache", batch_size=16, progress=False)
    distill(tiny_student(), root / "cache", synth(40), out_dir=root / "distill", preset="quick", epochs=1,
            batch_size=8, progress=False)
    preset = save_preset(root / "tiny.yaml", tiny_student_config(), TINY_AUDIO, description="test student")
    return {"root": root, "text": text, "pretrain": root / "pretrain", "distill": root / "distill",
            "cache": root / "cache", "preset": preset}


def _distill_args(runs: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["distill", "--cache", str(runs["cache"]), "--data", SPEC, "--student", str(runs["preset"]),
            "--preset", "quick", "--batch-size", "8", "--epochs", "1", "--out", str(out), "--no-progress", *extra]


def test_runs_record_their_kind(runs) -> None:
    for kind in ("pretrain", "distill"):
        marker = json.loads((runs[kind] / MARKER).read_text())
        assert marker["format"] == "tinyclap-run" and marker["kind"] == kind
        assert run_kind(runs[kind]) == kind


def test_distill_refuses_a_pretraining_run_folder(runs, capsys) -> None:
    metrics = runs["pretrain"] / "metrics.jsonl"
    before = metrics.read_bytes()
    assert main(_distill_args(runs, runs["pretrain"])) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a pretrain run" in err[0] and "choose another --out" in err[0]
    assert metrics.read_bytes() == before  # untouched
    assert not (runs["pretrain"] / "last.json").exists() and not (runs["pretrain"] / "state.pt").exists()
    # --resume is no way around it either.
    assert main(_distill_args(runs, runs["pretrain"], "--resume")) == 1
    assert metrics.read_bytes() == before


def test_pretrain_refuses_a_distillation_run_folder(runs) -> None:
    from tinyclap.pretrain.train import pretrain

    metrics = runs["distill"] / "metrics.jsonl"
    before = metrics.read_bytes()
    with pytest.raises(RunKindError, match="holds a distill run"):
        pretrain(tiny_config(runs["text"], epochs=1), runs["distill"], progress=False)
    with pytest.raises(RunKindError):
        pretrain(tiny_config(runs["text"], epochs=1), runs["distill"], progress=False, resume=True)
    assert metrics.read_bytes() == before
    assert not (runs["distill"] / "recipe.yaml").exists() and not (runs["distill"] / "state").exists()


def test_old_run_folders_without_a_marker_are_recognised_and_keep_working(runs, tmp_path: Path) -> None:
    import shutil

    old = tmp_path / "old-distill"
    shutil.copytree(runs["distill"], old)
    (old / MARKER).unlink()  # as written before run kinds existed
    assert run_kind(old) == "distill"
    from tinyclap.pretrain.train import pretrain

    with pytest.raises(RunKindError):
        pretrain(tiny_config(runs["text"], epochs=1), old, progress=False)
    # Its own verb resumes it as before, and records the kind for next time.
    assert main(_distill_args(runs, old, "--resume", "--epochs", "2")) == 0
    assert json.loads((old / MARKER).read_text())["kind"] == "distill"
    assert len((old / "metrics.jsonl").read_text().splitlines()) == 2


# ----------------------------------------------------------------------------- quickstart --fresh
@pytest.fixture
def fake_steps(monkeypatch):
    """The quickstart with one trivial step (the deletion logic is what is tested, not the pipeline)."""
    from tinyclap.quickstart import pipeline, report
    from tinyclap.quickstart.steps import Step

    monkeypatch.setattr(pipeline.Quickstart, "steps", lambda self: [Step("data", "data", lambda: {"n": 1})])
    monkeypatch.setattr(report, "write_report_md", lambda out, record: _write(out / "report.md", "report"))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _opts(out: Path):
    from tinyclap.quickstart.options import QuickstartOptions

    return QuickstartOptions(out=str(out))


def test_quickstart_fresh_refuses_a_folder_that_is_not_a_quickstart_run(tmp_path: Path, fake_steps, capsys) -> None:
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("years of work")
    assert main(["quickstart", "--out", str(mine), "--fresh"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a quickstart run" in err[0]
    assert (mine / "chapter1.tex").read_text() == "years of work"
    assert sorted(p.name for p in mine.iterdir()) == ["chapter1.tex"]  # nothing written either


def test_quickstart_refuses_run_folders_of_other_verbs(runs, fake_steps) -> None:
    from tinyclap.quickstart.pipeline import run_quickstart

    before = sorted(p.name for p in runs["distill"].iterdir())
    for fresh in (True, False):
        with pytest.raises(RunKindError, match="a distill run folder"):
            run_quickstart(_opts(runs["distill"]), fresh=fresh)
    assert sorted(p.name for p in runs["distill"].iterdir()) == before


def test_quickstart_fresh_starts_its_own_run_folder_over(tmp_path: Path, fake_steps) -> None:
    from tinyclap.quickstart.pipeline import run_quickstart

    out = tmp_path / "qs"
    run_quickstart(_opts(out))  # a new folder
    assert json.loads((out / MARKER).read_text())["kind"] == "quickstart" and (out / "steps.json").is_file()
    (out / "stale.txt").write_text("left by the last run")
    run_quickstart(_opts(out), fresh=True)
    assert not (out / "stale.txt").exists() and (out / "steps.json").is_file()
    # An old quickstart folder (steps.json, no marker) and an empty folder are accepted too.
    (out / MARKER).unlink()
    (out / "stale.txt").write_text("again")
    run_quickstart(_opts(out), fresh=True)
    assert not (out / "stale.txt").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    run_quickstart(_opts(empty), fresh=True)
    assert (empty / "steps.json").is_file()
