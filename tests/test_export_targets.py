"""Targets, the fit check and its overflow message, and the export's refusals of bad input (no model work)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from export_support import TEST_AUDIO, TINY

from tinyclap.bank import PromptBank
from tinyclap.errors import BudgetError
from tinyclap.export.pipeline import ExportError, bank_for_student, export_student, parse_formats
from tinyclap.export.targets import TargetError, check_fit, list_targets, load_target
from tinyclap.students import AudioStudent


def test_shipped_targets():
    assert {"stm32h7", "cortex-m4-512k"} <= set(list_targets())
    h7 = load_target("stm32h7")
    assert (h7.flash_bytes, h7.ram_bytes) == (2 * 1024 * 1024, 1024 * 1024)
    m4 = load_target("cortex-m4-512k")
    assert (m4.flash_bytes, m4.ram_bytes) == (512 * 1024, 128 * 1024)
    assert 0 < m4.reserved_flash < m4.flash_bytes and 0 < m4.reserved_ram < m4.ram_bytes


def test_bad_targets(tmp_path):
    with pytest.raises(TargetError, match="no such target.*stm32h7"):
        load_target("stm32h9")
    bad = tmp_path / "t.yaml"
    bad.write_text("flash: 1MB\nram: 1MB\nrom: 2MB\n")
    with pytest.raises(TargetError, match=r"unknown keys \['rom'\]"):
        load_target(bad)
    bad.write_text("flash: 1MB\n")
    with pytest.raises(TargetError, match="missing ram"):
        load_target(bad)
    bad.write_text("flash: lots\nram: 1MB\n")
    with pytest.raises(TargetError, match="lots"):
        load_target(bad)
    own = tmp_path / "mine.yaml"
    own.write_text("flash: 64KB\nram: 16KB\nreserved_ram: 4KB\n")
    t = load_target(own)
    assert (t.name, t.flash_bytes, t.ram_bytes, t.reserved_ram) == ("mine", 65536, 16384, 4096)


def test_fit_report_names_each_overflow_and_by_how_much():
    m4 = load_target("cortex-m4-512k")
    # flash: 350 KiB + 128 KiB reserved = 478 KiB <= 512; RAM: 100 + 16 = 116 KiB <= 128: fits.
    fit = check_fit(
        m4, {"model features": 300 * 1024, "bank": 50 * 1024}, {"arena features": 100 * 1024}, macs_per_second=1_000_000
    )
    assert fit.fits and fit.overflow_message() == "" and fit.macs_per_second == 1_000_000
    fit = check_fit(m4, {"model features": 400 * 1024}, {"arena features": 120 * 1024})
    assert fit.flash.over == 16 * 1024 and fit.ram.over == 8 * 1024
    msg = fit.overflow_message()
    assert msg.startswith("does not fit cortex-m4-512k")
    assert "flash over by 16.00 KiB" in msg and "RAM over by 8.00 KiB" in msg
    assert "arena features 120.00 KiB" in msg and "reserved 16.00 KiB" in msg
    with pytest.raises(BudgetError, match="RAM over by 8.00 KiB"):
        fit.raise_if_over()
    ok = check_fit(load_target("stm32h7"), {"model": 1000}, {"arena": 1000})
    ok.raise_if_over()
    d = ok.to_dict()
    assert d["fits"] and d["message"] == "fits stm32h7" and d["flash"]["used"] == 1000 + 256 * 1024


def test_parse_formats():
    assert parse_formats("tflite-int8, onnx") == ["onnx", "tflite-int8"]
    with pytest.raises(ExportError, match=r"unknown export format\(s\) \['tflite'\]"):
        parse_formats("onnx,tflite")
    with pytest.raises(ExportError, match="no export format"):
        parse_formats(" , ")


def _bank(dim: int, kept: list[int] | None = None, source_dim: int | None = None) -> PromptBank:
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((3, dim)).astype(np.float32)
    return PromptBank(
        emb / np.linalg.norm(emb, axis=1, keepdims=True),
        ["a", "b", "c"],
        [["a"], ["b"], ["c"]],
        ["{}"],
        "t",
        10.0,
        source_dim or dim,
        kept,
    )


def test_bank_must_match_the_student():
    student = AudioStudent(TINY, TEST_AUDIO)  # dim 16
    assert bank_for_student(student, _bank(16)).dim == 16
    with pytest.raises(ExportError, match="8-dim embeddings but the student outputs 16"):
        bank_for_student(student, _bank(8))
    student.kept_dims = list(range(0, 32, 2))  # a pruned student: 16 of a teacher's 32 dims
    full = _bank(32)
    assert bank_for_student(student, full).kept_dims == student.kept_dims
    with pytest.raises(ExportError, match="cannot serve the student's 16 kept dims"):
        bank_for_student(student, _bank(16, kept=list(range(16)), source_dim=32))


def test_gelu_head_is_refused_for_the_device_before_any_work(tmp_path):
    student = AudioStudent(TINY.replace(head_act="gelu"), TEST_AUDIO)
    with pytest.raises(ExportError, match="GELU head: TensorFlow Lite Micro has no GELU kernel"):
        export_student(student, _bank(16), tmp_path, formats="onnx", calibration="never-read", target="stm32h7")
    assert not (tmp_path / "report.json").exists()


def test_missing_tflite_extra_names_the_install(monkeypatch, tmp_path):
    from tinyclap.export.quantize import QuantizationError, require_tflite
    from tinyclap.export.tflm import TflmError, TflmModel

    monkeypatch.setitem(sys.modules, "litert_torch", None)  # import litert_torch -> ImportError
    with pytest.raises(QuantizationError, match=r"needs litert-torch.*pip install tinyclap\[tflite\]"):
        require_tflite()
    for name in ("tflite_micro", "tflite_micro.python.tflite_micro", "tflite_micro.python.tflite_micro.runtime"):
        monkeypatch.setitem(sys.modules, name, None)  # also when another test imported it already
    with pytest.raises(TflmError, match=r"tflite-micro: pip install tinyclap\[tflite\]"):
        TflmModel(b"not used")


def test_audio_window_is_counted_as_the_int16_pcm_the_c_app_takes():
    """RAM counts the window at 2 bytes a sample because tc_app.h's tc_app_push_window takes int16 PCM
    (the front end converts one n_fft frame at a time): the accounting and the C API must agree."""
    import re
    from pathlib import Path
    from types import SimpleNamespace

    from tinyclap.export.pipeline import _fit
    from tinyclap.export.streaming import plan_window

    header = (Path(__file__).resolve().parents[1] / "tinyclap" / "firmware" / "csrc" / "tc_app.h").read_text()
    assert re.search(r"\bint tc_app_push_window\(const int16_t \*window\);", header)
    student = AudioStudent(TINY, TEST_AUDIO, frontend=False, device="meta")
    bank = PromptBank(np.eye(TINY.dim, dtype=np.float32)[:4], list("abcd"), [["a"]] * 4, ["{}"], "t", 100.0, TINY.dim)
    report = SimpleNamespace(data={"formats": {
        "tflite-int8": {"models": {"features": {"bytes": 5000, "tflm": {"arena_bytes": 7000}},
                                   "head": {"bytes": 900, "tflm": {"arena_bytes": 600}}}},
        "c": {"frontend_table_bytes": 3000},
    }})  # fmt: skip
    for seconds in (None, 0.5):
        windowing = plan_window(student, seconds)
        fit = _fit(load_target("cortex-m4-512k"), report, bank, windowing, student, {"per_second": 1})
        parts = fit.to_dict()["ram"]["parts"]
        assert parts["audio window"] == 2 * windowing.samples == 2 * (32000 if seconds is None else 64 * 160)  # 2 s clip; 64 frames
        assert parts.get("pooled sum") == (4 * TINY.embed_width if windowing.streaming else None)
        assert fit.ram.used == 7000 + 600 + parts["audio window"] + parts.get("pooled sum", 0) + 16 * 1024


def test_target_cpu_and_the_checks_of_a_fit(tmp_path):
    """The core the export links for (cpu, else from the description), and a deciding check with its alternatives."""
    assert load_target("stm32h7").firmware_cpu == "cortex-m7"
    assert load_target("cortex-m4-512k").firmware_cpu == "cortex-m4f"
    own = tmp_path / "mine.yaml"
    own.write_text("flash: 64KB\nram: 16KB\ncpu: cortex-m4f\n")
    assert load_target(own).firmware_cpu == "cortex-m4f" and load_target(own).to_dict()["cpu"] == "cortex-m4f"
    own.write_text("flash: 64KB\nram: 16KB\ncpu: cortex-m33\n")
    with pytest.raises(TargetError, match="cpu must be one of cortex-m7, cortex-m4f"):
        load_target(own)
    m4 = load_target("cortex-m4-512k")
    linked = check_fit(m4, {"image .text": 300 * 1024}, {"image .bss": 120 * 1024}, runtime="c", figures="linked",
                       details={"cpu": "cortex-m4f"})  # fmt: skip
    tflm = check_fit(m4, {"model embed": 360 * 1024}, {"arena embed": 113 * 1024}, runtime="tflm")
    linked.alternatives = [tflm]
    msg = linked.overflow_message()
    assert msg == (
        "does not fit cortex-m4-512k: RAM over by 8.00 KiB: needs RAM 136.00 KiB (image .bss 120.00 KiB + "
        "reserved 16.00 KiB) of 128.00 KiB (plain C runtime, as linked)"
    )
    d = linked.to_dict()
    assert (d["runtime"], d["figures"], d["fits"], d["message"]) == ("c", "linked", False, msg)
    assert [(c["runtime"], c["figures"], c["fits"]) for c in d["checks"]] == [("c", "linked", False), ("tflm", "estimate", False)]
    assert d["checks"][0]["cpu"] == "cortex-m4f"
    assert d["checks"][1]["message"].endswith("(TFLite Micro runtime, estimated)")
    with pytest.raises(BudgetError, match=r"RAM over by 8.00 KiB.*as linked\)$"):
        linked.raise_if_over()
