"""The Gradio demo: its /classify endpoint (through gradio_client) agrees with ZeroShotClassifier in Python.

The app is served in-process on a free 127.0.0.1 port with tiny local models
(see demo_support.py) and a real ESC-10 clip.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")

from demo_support import AUDIO, BANK_LABELS, PROMPTS, demo_run, free_port, python_ranking  # noqa: E402

from tinyclap.audio import load_audio  # noqa: E402
from tinyclap.bank import PromptBank  # noqa: E402
from tinyclap.demo.inference import CUSTOM, DemoInputError, DemoModels, agreement, parse_prompts  # noqa: E402
from tinyclap.demo.resolve import NoModelsError, find_run_outputs, load_demo_models  # noqa: E402

MAX_FILE_SIZE = "1mb"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return demo_run(tmp_path_factory)


@pytest.fixture(scope="module")
def models(run):
    return load_demo_models(run_dir=run.root, teacher_options={"quiet": True})


@pytest.fixture(scope="module")
def reference(run):
    """The same models loaded again, independently of the server's copies."""
    from tinyclap.students import load_student
    from tinyclap.teachers.registry import load_teacher

    return load_student(run.student), load_teacher(str(run.teacher), quiet=True)


@pytest.fixture(scope="module")
def client(models):
    from gradio_client import Client

    from tinyclap.demo.app import build_app, launch

    app = build_app(models)
    url = launch(app, port=free_port(), max_file_size=MAX_FILE_SIZE, block=False, quiet=True)
    assert url.startswith("http://127.0.0.1:")  # loopback by default
    yield Client(url, verbose=False, download_files=False)
    app.close()


@pytest.fixture(scope="module")
def clip(esc10_files) -> Path:
    return esc10_files[0]  # 1-100032-A-0.ogg: a dog bark, 5 s at 44.1 kHz


def _ranked(label_output: dict) -> tuple[list[str], list[float]]:
    conf = label_output["confidences"]
    return [c["label"] for c in conf], [c["confidence"] for c in conf]


def test_typed_prompts_rank_exactly_as_python(client, reference, clip):
    from gradio_client import handle_file

    student, teacher = reference
    out = client.predict(handle_file(str(clip)), CUSTOM, "\n".join(PROMPTS) + "\n\n", False, api_name="/classify")
    summary, s_label, s_info, t_label, t_info, picture, details = out
    bank = PromptBank.build(teacher, PROMPTS, ["{}"])  # typed prompts are embedded as typed
    wave = load_audio(clip, AUDIO.sample_rate)
    for encoder, shown, info in ((student, s_label, s_info), (teacher, t_label, t_info)):
        labels, probs = python_ranking(encoder, bank, wave)
        got_labels, got_probs = _ranked(shown)
        assert got_labels == labels
        np.testing.assert_allclose(got_probs, probs, atol=1e-5)
        assert shown["label"] == labels[0]
        # 1 s windows, the last end-aligned: 6 for the real Ogg clip (it decodes to 5.001 s), 5 for a generated 5 s WAV
        windows = -(-len(wave) // AUDIO.clip_samples)
        assert f"top: **{labels[0]}**" in info and f"{windows} windows" in info
    s_top, t_top = s_label["label"], t_label["label"]
    assert f"**Student:** {s_top}" in summary and f"**Teacher:** {t_top}" in summary
    assert ("**agree on the top label**" in summary) == (s_top == t_top)
    # The details hold the whole ranking with cosines, and the agreement computed from them.
    s, t = details["results"]
    assert [s["role"], t["role"]] == ["student", "teacher"] and sorted(s["labels"]) == sorted(PROMPTS)
    from scipy.stats import spearmanr

    cs, ct = dict(zip(s["labels"], s["cosines"])), dict(zip(t["labels"], t["cosines"]))
    rho = spearmanr([cs[p] for p in PROMPTS], [ct[p] for p in PROMPTS]).statistic
    assert details["agreement"]["spearman"] == pytest.approx(rho)
    assert details["agreement"]["same_top"] == (s_top == t_top)
    assert s["latency_ms"] > 0 and t["latency_ms"] > 0 and s["windows"] == windows
    assert picture["orig_name"].endswith(".png")  # the waveform and log-mel figure


def test_bank_and_templates(client, reference, run, clip):
    from gradio_client import handle_file

    student, teacher = reference
    wave = load_audio(clip, AUDIO.sample_rate)
    saved = PromptBank.load(run.bank)
    out = client.predict(handle_file(str(clip)), "bank:bank", "ignored for a bank", False, api_name="/classify")
    for encoder, shown in ((student, out[1]), (teacher, out[3])):
        labels, probs = python_ranking(encoder, saved, wave)
        assert sorted(labels) == sorted(BANK_LABELS)
        assert _ranked(shown)[0] == labels
        np.testing.assert_allclose(_ranked(shown)[1], probs, atol=1e-5)
    # Templated typed prompts are averaged over the default templates, like a saved bank.
    templated = PromptBank.build(teacher, PROMPTS[:3])
    first = client.predict(handle_file(str(clip)), CUSTOM, "\n".join(PROMPTS[:3]), True, api_name="/classify")
    labels, probs = python_ranking(teacher, templated, wave)
    assert _ranked(first[3])[0] == labels
    np.testing.assert_allclose(_ranked(first[3])[1], probs, atol=1e-5)
    # The same prompts again come from the cache.
    again = client.predict(handle_file(str(clip)), CUSTOM, "\n".join(PROMPTS[:3]), True, api_name="/classify")
    assert "cached" in again[0] and "cached" not in first[0]
    assert again[3] == first[3]


def test_page_errors_are_our_own_short_messages(client, tmp_path, clip):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="no prompts: type at least one"):
        client.predict(handle_file(str(clip)), CUSTOM, " \n\n  ", False, api_name="/classify")
    bad = tmp_path / "not-audio.wav"
    bad.write_text("hello, I am not a sound")
    with pytest.raises(AppError) as err:
        client.predict(handle_file(str(bad)), CUSTOM, "a\nb", False, api_name="/classify")
    message = str(err.value)
    assert message.startswith("not-audio.wav: not a readable sound file")
    assert "/tmp" not in message and "Traceback" not in message  # no server paths, no stack
    # Uploads over the cap are refused: by the client (it reads the server's limit) and by the server itself.
    big = tmp_path / "big.wav"
    sf.write(big, np.zeros(44100 * 13, dtype=np.float32), 44100, subtype="FLOAT")  # 2.3 MB > 1 MB
    with pytest.raises(ValueError, match="exceeds the maximum file size of 1048576 bytes"):
        client.predict(handle_file(str(big)), CUSTOM, "a\nb", False, api_name="/classify")
    import httpx

    for path, status in ((big, 413), (clip, 200)):
        with open(path, "rb") as fh:
            reply = httpx.post(client.src.rstrip("/") + "/gradio_api/upload", files={"files": (path.name, fh)})
        assert reply.status_code == status


def test_long_audio_is_windowed_and_capped(models, reference, clip, esc10_files, tmp_path):
    student, teacher = reference
    waves = [load_audio(f, AUDIO.sample_rate) for f in (clip, esc10_files[50], esc10_files[120])]
    long = np.concatenate(waves)  # ~15 s of three different sounds
    path = tmp_path / "long.flac"
    sf.write(path, long, AUDIO.sample_rate)
    result = models.classify(path, CUSTOM, "\n".join(PROMPTS))
    bank = PromptBank.build(teacher, PROMPTS, ["{}"])
    decoded = load_audio(path, AUDIO.sample_rate)
    for r, encoder in zip(result.results, (student, teacher)):
        labels, probs = python_ranking(encoder, bank, decoded)
        assert r.labels == labels and r.windows == -(-len(decoded) // AUDIO.clip_samples)  # 16 real, 15 generated
        np.testing.assert_allclose(r.probabilities, probs, atol=1e-5)
    capped = DemoModels(models.student, models.teacher, models.banks, max_seconds=10)
    with pytest.raises(DemoInputError, match=r"long\.flac is 15\.0 s long; this demo accepts up to 10 s"):
        capped.classify(path, CUSTOM, "a\nb")
    with pytest.raises(DemoInputError, match="no audio"):
        models.classify(None, CUSTOM, "a\nb")


def test_student_alone_takes_labels_from_a_bank(models, clip):
    from tinyclap.demo.app import _describe, build_app

    only = DemoModels(student=models.student, banks=models.banks)
    assert not only.can_use_prompts and [v for _, v in only.sources()] == ["bank:bank"]
    assert "Custom prompts are unavailable" in _describe(only) and "--teacher" in _describe(only)
    page = {b.elem_id: b for b in build_app(only).blocks.values() if getattr(b, "elem_id", None)}
    assert [v for _, v in page["tc-source"].choices] == ["bank:bank"]
    assert page["tc-prompts"].value.splitlines() == BANK_LABELS and page["tc-prompts"].interactive is False
    assert not page["tc-templated"].visible
    with pytest.raises(DemoInputError, match="custom prompts need a text encoder"):
        only.classify(clip, CUSTOM, "a dog")
    result = only.classify(clip, "bank:bank")
    assert [r.role for r in result.results] == ["student"] and result.agreement is None
    with pytest.raises(DemoInputError, match="--bank"):
        DemoModels(student=models.student)


def test_prompt_parsing_and_agreement():
    prompts, notes = parse_prompts("  dog \n\nrain\ndog\n", max_prompts=5)
    assert prompts == ["dog", "rain"] and notes == ["duplicate prompt 'dog' used once"]
    with pytest.raises(DemoInputError, match="at most 2"):
        parse_prompts("a\nb\nc", max_prompts=2)
    from tinyclap.demo.inference import ModelResult

    a = ModelResult("student", "s", ["x", "y", "z"], [0.5, 0.3, 0.2], [0.9, 0.5, 0.1], 1.0, 1)
    b = ModelResult("teacher", "t", ["z", "y", "x"], [0.5, 0.3, 0.2], [0.8, 0.4, 0.2], 1.0, 1)
    ag = agreement(a, b)
    assert not ag.same_top and ag.spearman == pytest.approx(-1.0)
    assert agreement(a, a).same_top and agreement(a, a).spearman == pytest.approx(1.0)


def test_run_folder_defaults_and_cli(run, tmp_path, monkeypatch, capsys):
    from tinyclap.cli import main

    found = find_run_outputs(run.root)
    assert Path(found.teacher) == run.teacher and found.student == run.student and found.banks == [run.bank]
    # A distillation folder holds best.json and last.json: best wins even when last is newer.
    other = tmp_path / "run2" / "student"
    other.mkdir(parents=True)
    for stem in ("best", "last"):
        (other / f"{stem}.json").write_text(run.student.read_text())
    assert find_run_outputs(tmp_path / "run2").student == other / "best.json"
    # With nothing to serve, the message says how to get models.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NoModelsError, match="tinyclap quickstart"):
        load_demo_models()
    assert main(["demo", "--check"]) == 1
    assert "Run `tinyclap quickstart` first" in capsys.readouterr().err
    assert main(["demo", "--check", "--run", str(run.root)]) == 0
    out = capsys.readouterr().out
    assert "typed prompts: yes" in out and "bank bank: 7 labels" in out
    assert main(["demo", "--check", "--student", str(run.student), "--bank", str(run.bank)]) == 0
    assert "typed prompts: no" in capsys.readouterr().out
    assert main(["demo", "--check", "--student", str(run.student)]) == 1
    assert "--bank" in capsys.readouterr().err


def test_analytics_off(models):
    from tinyclap.demo.app import build_app  # importing it sets the variable before gradio reads it

    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert build_app(models).analytics_enabled is False


def test_models_are_checked_at_start(models, monkeypatch):
    from tinyclap.demo.app import _describe

    assert models.teacher_mismatch() is None  # the student's recorded teacher is the one loaded
    narrow = PromptBank(np.eye(2, 8, dtype=np.float32), ["a", "b"], [["a"], ["b"]], ["{}"], "other", 10.0, 8)
    with pytest.raises(DemoInputError, match="bank 'narrow' does not fit the student: .*8"):
        DemoModels(models.student, models.teacher, {"narrow": narrow})
    monkeypatch.setattr(models.student, "meta", {**models.student.meta, "teacher": "laion/clap-htsat-unfused"})
    assert "distilled from `laion/clap-htsat-unfused`" in models.teacher_mismatch()
    assert "Note: the student was distilled from" in _describe(models)
