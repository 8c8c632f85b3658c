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

    def __init__(self, out_dir: Path, options: dict[str, Any], stream: Any = None,
                 location_keys: tuple[str, ...] = ()):
        """``location_keys``: options that say where the run folder is, not what it computes
        (``out``); a folder moved or copied elsewhere resumes although they changed."""
        self.out_dir = out_dir
        self.record_path = out_dir / "steps.json"
        self.stream = stream or sys.stderr
        self.record: dict[str, Any] = {"options": options, "steps": {}}
        if self.record_path.is_file():
            old = read_json(self.record_path)
            old_options = old.get("options", {})
            changed = sorted(k for k in set(options) | set(old_options)
                             if options.get(k) != old_options.get(k) and k not in location_keys)
            if changed:
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

    def ran_in(self, key: str) -> Path | None:
        """The run folder as it was named when step ``key`` ran (None in records older than this field)."""
        out = self.record["steps"][key].get("out")
        return Path(out) if out is not None else None

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
            self.record["steps"][step.key] = {"title": step.title, "seconds": seconds, "summary": summary,
                                              "out": str(self.out_dir)}
            write_json(self.record_path, self.record)
            print(f"{head}: done in {seconds:.0f} s", file=self.stream, flush=True)
        return self.record
