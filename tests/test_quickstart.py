"""The quickstart's step runner (resume, refusal of changed options) and its report."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyclap.quickstart.report import results_table, write_report_md
from tinyclap.quickstart.steps import OptionsChangedError, Step, StepRunner


def test_finished_steps_are_reused_and_a_failed_step_loses_nothing(tmp_path: Path):
    calls: list[str] = []

    def make(key: str, fail: bool = False) -> Step:
        def run() -> dict:
            calls.append(key)
            if fail:
                raise RuntimeError(f"{key} broke")
            return {"value": len(calls)}

        return Step(key, f"step {key}", run)

    runner = StepRunner(tmp_path, {"seed": 0})
    with pytest.raises(RuntimeError, match="b broke"):
        runner.run([make("a"), make("b", fail=True), make("c")])
    assert calls == ["a", "b"]

    again = StepRunner(tmp_path, {"seed": 0})  # a new process would read the record like this
    assert again.done("a") and not again.done("b")
    record = again.run([make("a"), make("b"), make("c")])
    assert calls == ["a", "b", "b", "c"]  # "a" was not run a second time
    assert record["steps"]["a"]["summary"] == {"value": 1}
    assert list(record["steps"]) == ["a", "b", "c"]


def test_changed_options_are_refused(tmp_path: Path):
    StepRunner(tmp_path, {"seed": 0, "target": "stm32h7"}).run([Step("a", "a", lambda: {})])
    with pytest.raises(OptionsChangedError, match="target"):
        StepRunner(tmp_path, {"seed": 0, "target": "cortex-m4-512k"})


def test_report_table_computes_retention_against_the_teacher(tmp_path: Path):
    evaluation = {
        "results": {
            "seen": {"teacher": {"accuracy": 0.8, "agreement": None}, "student": {"accuracy": 0.6, "agreement": 0.7}},
            "unseen": {"teacher": {"accuracy": 0.5, "agreement": None}, "student": {"accuracy": 0.25, "agreement": 0.4}},
        },
        "params": {"teacher": 1_000_000, "student": 250_000},
    }
    rows = results_table(evaluation)
    student = next(r for r in rows if r.startswith("| student"))
    assert "0.750" in student and "0.500" in student  # 0.6/0.8 and 0.25/0.5
    assert "70.0 %" in student and "250.00 k" in student
    record = {"options": {}, "steps": {"evaluate": {"title": "evaluate", "seconds": 1.0, "summary": evaluation}}}
    text = write_report_md(tmp_path, record).read_text()
    assert "| student |" in text and "## Deployment" in text
