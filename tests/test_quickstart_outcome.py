"""The quickstart's outcome, not just its exit code: floors on the run the README's first command made.

CI runs ``tinyclap quickstart`` in its install step (the README's first
command), so ``runs/quickstart`` holds a full default run when the tests start;
this file checks what that run measured. The floors sit below the worst of
three seeds measured side by side (README, "What the quickstart measured"),
so a regression fails while the seed-to-seed spread does not.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tinyclap.io import read_json

REPO = Path(__file__).resolve().parent.parent
RUN = Path(os.environ.get("TINYCLAP_QUICKSTART_RUN", REPO / "runs" / "quickstart"))

# Floors under the three-seed spread measured 2026-12-03 (README): teacher seen
# accuracy 0.873-0.907, student retention 0.857-0.958, pruned retention
# 0.912-0.938, TFLite int8 agreement with the fp32 student 0.975-1.0 on 40
# held-out clips (one clip = 0.025), int8 cosine 0.9997-0.9998. The margins
# allow for an earlier run's teacher at 0.827 and three flipped clips.
FLOORS = {
    "teacher_seen_accuracy": 0.78,
    "student_seen_retention": 0.78,
    "pruned_seen_retention": 0.85,
    "int8_zeroshot_agreement": 0.925,  # TFLite int8 vs the fp32 pruned student, on its held-out verification clips
    "int8_cosine_mean": 0.995,
}


def outcome(record: dict[str, Any]) -> dict[str, Any]:
    """The figures the floors apply to, read from a quickstart step record (``steps.json``)."""
    steps = record["steps"]
    seen = steps["evaluate"]["summary"]["results"]["seen"]
    teacher = seen["teacher"]["accuracy"]
    export = steps["export"]["summary"]
    int8 = export["formats"]["tflite-int8"] if "tflite-int8" in export.get("formats", {}) else export["formats"]["onnx-int8"]
    return {
        "teacher_seen_accuracy": teacher,
        "student_seen_retention": seen["student"]["accuracy"] / teacher,
        "pruned_seen_retention": seen["pruned"]["accuracy"] / teacher,
        "int8_zeroshot_agreement": int8["zeroshot_agreement"],
        "int8_cosine_mean": int8["cosine_mean"],
        "fits": bool(export.get("fits")),
    }


def below_floors(figures: dict[str, Any]) -> list[str]:
    """One line per figure under its floor (empty when the run is as good as measured); a run that does not fit fails."""
    bad = [f"{k} = {figures[k]:.3f} < {floor}" for k, floor in FLOORS.items() if not figures[k] >= floor]
    if not figures["fits"]:
        bad.append("the exported student does not fit the target")
    return bad


def test_the_default_quickstart_run_meets_its_floors():
    path = RUN / "steps.json"
    if not path.is_file():
        pytest.skip(f"no quickstart run at {RUN}: run the README's first command (tinyclap quickstart) first")
    record = read_json(path)
    if "evaluate" not in record.get("steps", {}) or record["steps"]["evaluate"].get("summary") is None:
        pytest.fail(f"{RUN}: the quickstart did not finish (no evaluate step in steps.json)")
    figures = outcome(record)
    print("\nquickstart:", {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()})
    assert below_floors(figures) == []


def test_the_floor_check_fails_a_worse_run():
    good = {"teacher_seen_accuracy": 0.85, "student_seen_retention": 0.9, "pruned_seen_retention": 0.95,
            "int8_zeroshot_agreement": 1.0, "int8_cosine_mean": 0.9998, "fits": True}
    assert below_floors(good) == []
    for key in FLOORS:
        worse = dict(good, **{key: FLOORS[key] - 0.01})
        assert any(line.startswith(key) for line in below_floors(worse))
    assert below_floors(dict(good, int8_cosine_mean=float("nan")))  # NaN is a failure, not a pass
    assert below_floors(dict(good, fits=False)) == ["the exported student does not fit the target"]
