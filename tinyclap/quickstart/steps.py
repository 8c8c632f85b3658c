"""A resumable sequence of named steps: finished steps are recorded and skipped on re-runs.

The record (``steps.json`` in the run folder) holds each finished step's summary
(the figures the report needs) and its wall time, written atomically after each
step, so an interrupted run loses at most the step in progress.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tinyclap.errors import TinyClapError
from tinyclap.io import read_json, write_json

__all__ = ["Step", "StepRunner", "OptionsChangedError"]


class OptionsChangedError(TinyClapError, ValueError):
    """A re-run asked for different options than the run folder was made with."""


@dataclass(frozen=True)
class Step:
    key: str  # short id, also the record key ("teacher")
    title: str  # what a person reads in the progress display
    run: Callable[[], dict[str, Any]]  # does the work; returns a JSON-able summary


class StepRunner:
    """Runs steps in order, skipping those already finished in ``out_dir``."""

    def __init__(self, out_dir: Path, options: dict[str, Any], stream: Any = None):
        self.out_dir = out_dir
        self.record_path = out_dir / "steps.json"
        self.stream = stream or sys.stderr
        self.record: dict[str, Any] = {"options": options, "steps": {}}
        if self.record_path.is_file():
            old = read_json(self.record_path)
            if old.get("options") != options:
                changed = sorted(k for k in set(options) | set(old.get("options", {}))
                                 if options.get(k) != old.get("options", {}).get(k))
                raise OptionsChangedError(
                    f"{out_dir} was made with other options ({', '.join(changed)}); "
                    "pass another --out, or --fresh to start this folder over"
                )
            self.record = old

    def summary(self, key: str) -> dict[str, Any]:
        """The recorded summary of a finished step."""
        return self.record["steps"][key]["summary"]

    def done(self, key: str) -> bool:
        return key in self.record["steps"]

    def run(self, steps: list[Step]) -> dict[str, Any]:
        """Run every step not yet finished; returns the full record."""
        total = len(steps)
        for i, step in enumerate(steps, 1):
            head = f"[{i}/{total}] {step.title}"
            if self.done(step.key):
                secs = self.record["steps"][step.key]["seconds"]
                print(f"{head}: done earlier ({secs:.0f} s), reused", file=self.stream, flush=True)
                continue
            print(f"{head} ...", file=self.stream, flush=True)
            start = time.perf_counter()
            summary = step.run()
            seconds = time.perf_counter() - start
            self.record["steps"][step.key] = {"title": step.title, "seconds": seconds, "summary": summary}
            write_json(self.record_path, self.record)
            print(f"{head}: done in {seconds:.0f} s", file=self.stream, flush=True)
        return self.record
