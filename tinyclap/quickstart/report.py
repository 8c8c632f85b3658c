"""`report.md`: the quickstart's figures as one table, with links to every plot."""

from __future__ import annotations

import datetime as _dt
import os
import platform
from pathlib import Path
from typing import Any

from tinyclap.io import atomic_path

__all__ = ["write_report_md", "results_table"]


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * float(x):.1f} %"


def _num(x: Any) -> str:
    if x is None:
        return "–"
    x = float(x)
    for unit, div in (("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.2f} {unit}"
    return f"{x:.0f}"


def _bytes(x: Any) -> str:
    if x is None:
        return "–"
    x = int(x)
    return f"{x / 1024:.0f} KiB ({x:,} B)" if x < 1024 * 1024 else f"{x / 2**20:.2f} MiB ({x:,} B)"


def results_table(evaluation: dict[str, Any]) -> list[str]:
    """Markdown rows: accuracy per model and set, retention against the teacher."""
    results = evaluation["results"]
    sets = list(results)
    models = list(next(iter(results.values())))
    params = evaluation.get("params", {})
    head = "| model | params | " + " | ".join(f"{s} accuracy" for s in sets) + " | " \
        + " | ".join(f"{s} retention" for s in sets) + " | agreement with teacher |"
    rows = [head, "|" + "---|" * (3 + 2 * len(sets))]
    for m in models:
        accs = [results[s][m]["accuracy"] for s in sets]
        teacher = [results[s].get("teacher", {}).get("accuracy") for s in sets]
        ret = [None if (t in (None, 0) or m == "teacher") else a / t for a, t in zip(accs, teacher)]
        agree = results[sets[0]][m].get("agreement")
        rows.append(
            f"| {m} | {_num(params.get(m, params.get('pruned') if m == 'int8' else None))} | "
            + " | ".join(_pct(a) for a in accs) + " | "
            + " | ".join("–" if r is None else f"{r:.3f}" for r in ret) + " | "
            + ("–" if agree is None else _pct(agree)) + " |"
        )
    return rows


def _plots(out: Path) -> list[str]:
    pngs = sorted(p for p in out.rglob("*.png"))
    return [f"- [{p.relative_to(out)}]({p.relative_to(out)})" for p in pngs]


def write_report_md(out: Path, record: dict[str, Any]) -> Path:
    """Write ``out/report.md`` from the step record; returns its path."""
    steps = record["steps"]
    s = lambda k: steps.get(k, {}).get("summary", {})  # noqa: E731
    data, teacher, student, prune, export, ev = (s(k) for k in
                                                  ("data", "teacher", "student", "prune", "export", "evaluate"))
    lines = [
        "# tinyclap quickstart report",
        "",
        f"Generated {_dt.datetime.now().isoformat(timespec='seconds')} on {platform.machine()} "
        f"({os.cpu_count()} CPU cores), {platform.python_implementation()} {platform.python_version()}.",
        "",
        "## Data",
        "",
    ]
    for name, specs in data.get("specs", {}).items():
        lines.append(f"- **{name}**: {data['counts'][name]} clips/windows from `{'`, `'.join(specs)}`")
    if data.get("unseen_families"):
        lines.append(f"- Never trained on (true zero-shot through the text tower): "
                     f"{', '.join(data['unseen_families'])}")
    lines += ["", "## Results", "",
              "Zero-shot accuracy on held-out clips; each set is scored against its own labels. "
              "Retention = model accuracy / teacher accuracy.", ""]
    if ev:
        lines += results_table(ev)
        lat = ev.get("latency", {})
        if lat:
            lines += ["", f"CPU latency per clip (torch, batch 1, median): teacher {lat['teacher_s'] * 1e3:.1f} ms, "
                          f"pruned student {lat['student_s'] * 1e3:.1f} ms, teacher/student {lat['ratio']:.2f}×."]
    lines += ["", "## Deployment", ""]
    if export:
        fit = export.get("target") or {}
        flash, ram = fit.get("flash", {}), fit.get("ram", {})
        # The fit is the plain C firmware's (linked or estimated); the TFLM estimate sits beside it in checks.
        tflm = next((c for c in fit.get("checks", []) if c.get("runtime") == "tflm"), fit)
        arena = sum(v for k, v in tflm.get("ram", {}).get("parts", {}).items() if k.startswith("arena"))
        model = sum(v for k, v in tflm.get("flash", {}).get("parts", {}).items() if k.startswith("model"))
        how = "TFLM estimate"
        if fit.get("runtime") == "c":
            how = "plain C image as linked" if fit.get("figures") == "linked" else "plain C firmware, estimated"
        formats = export.get("formats", {})
        lines += [
            "| figure | value |", "|---|---|",
            f"| target | {fit.get('target', {}).get('description', '–')} |",
            f"| fits | {'yes' if export.get('fits') else 'NO: ' + str(export.get('overflow', ''))} |",
            f"| student parameters after pruning | {_num(prune.get('params_after'))} "
            f"(before {_num(prune.get('params_before'))}) |",
            f"| kept latent dims | {prune.get('k', '–')} of {teacher.get('dim', '–')} |",
            f"| int8 model file | {_bytes(model or None)} |",
            f"| flash used ({how} + firmware reserve) | "
            f"{_bytes(flash.get('used'))} of {_bytes(flash.get('budget'))} |",
            f"| TFLM arena (measured by TFLite Micro) | {_bytes(arena or None)} |",
            f"| RAM used ({how} + firmware reserve) | "
            f"{_bytes(ram.get('used'))} of {_bytes(ram.get('budget'))} |",
            f"| MACs per second of audio | {_num(fit.get('macs_per_second') or export.get('macs', {}).get('per_second'))} |",
        ]
        for fmt, info in formats.items():
            if "cosine_mean" in info:
                lines.append(f"| {fmt} vs torch fp32: mean / worst cosine, zero-shot agreement | "
                             f"{info['cosine_mean']:.4f} / {info['cosine_worst']:.4f}, "
                             f"{_pct(info.get('zeroshot_agreement'))} |")
    lines += ["", "## Steps", "", "| step | seconds |", "|---|---|"]
    lines += [f"| {v['title']} | {v['seconds']:.0f} |" for v in steps.values()]
    lines += ["", "## Plots", ""] + _plots(out)
    lines += ["", f"Teacher licence: {teacher.get('licence', '–')}", ""]
    path = out / "report.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines))
    return path
