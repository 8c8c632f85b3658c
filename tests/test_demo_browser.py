"""End to end: `tinyclap demo` in a subprocess, driven by Debian's Chromium (headless) through Playwright.

Upload a real clip, type prompts, press Classify, read the ranked labels off the
page and compare them with the ranking ZeroShotClassifier computes in Python.
Everything stays on 127.0.0.1; the test also fails if the page requests any
other host. A screenshot is saved as ``demo.png`` in the test's tmp_path (and
copied to $TINYCLAP_DEMO_SCREENSHOT when set).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
STARTUP_TIMEOUT_S = 240  # imports torch + gradio and loads two models on a busy 2-core machine

pytestmark = pytest.mark.slow

if not CHROMIUM.exists():
    pytest.skip(f"browser test needs Debian's Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api")
pytest.importorskip("gradio")

from demo_support import AUDIO, PROMPTS, demo_run, free_port, python_ranking  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return demo_run(tmp_path_factory)


@pytest.fixture(scope="module")
def server(run, tmp_path_factory):
    """`python -m tinyclap demo --run RUN --port P`; yields its URL and log, stops it afterwards."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("demo-server") / "server.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "tinyclap", "demo", "--run", str(run.root), "--port", str(port)]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while "Running on local URL" not in log_path.read_text():
            if proc.poll() is not None:
                pytest.fail(f"tinyclap demo exited with {proc.returncode}:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"tinyclap demo did not start in {STARTUP_TIMEOUT_S} s:\n{log_path.read_text()}")
            time.sleep(0.5)
        yield url, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def _shown_ranking(page, elem_id: str) -> tuple[str, list[str], list[float]]:
    """(heading, labels best first, bar values) as the page renders a gr.Label."""
    box = page.locator(f"#{elem_id}")
    heading = box.locator("[data-testid=label-output-value]").inner_text().strip()
    meters = box.locator("meter")
    labels = [meters.nth(i).get_attribute("aria-label") for i in range(meters.count())]
    values = [float(meters.nth(i).get_attribute("value")) for i in range(meters.count())]
    return heading, labels, values


def test_browser_upload_prompts_classify(server, browser, run, esc10_files, tmp_path):
    from tinyclap.audio import load_audio
    from tinyclap.bank import PromptBank
    from tinyclap.students import load_student
    from tinyclap.teachers.registry import load_teacher

    url, log_path = server
    clip = esc10_files[0]
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    foreign: list[str] = []
    lock = threading.Lock()

    def note(request) -> None:  # noqa: ANN001 - playwright Request
        if not request.url.startswith(("http://127.0.0.1", "data:", "blob:")):
            with lock:
                foreign.append(request.url)

    page.on("request", note)
    page.goto(url, wait_until="networkidle")
    assert "Custom prompts" in page.locator("#tc-source").inner_text()

    page.locator("#tc-audio input[type=file]").set_input_files(str(clip))
    page.locator("#tc-audio audio, #tc-audio [data-testid=waveform-Audio]").first.wait_for(state="attached", timeout=60_000)
    page.locator("#tc-source").get_by_label("Custom prompts").check()
    page.locator("#tc-prompts textarea").fill("\n".join(PROMPTS))
    page.locator("#tc-classify").click()
    page.locator("#tc-summary h3").get_by_text("Top label").wait_for(timeout=120_000)
    page.locator("#tc-picture img").wait_for(timeout=30_000)

    # The same models, loaded here, ranking the same clip in Python.
    student = load_student(run.student)
    teacher = load_teacher(str(run.teacher), quiet=True)
    bank = PromptBank.build(teacher, PROMPTS, ["{}"])
    wave = load_audio(clip, AUDIO.sample_rate)
    for elem_id, encoder in (("tc-student-label", student), ("tc-teacher-label", teacher)):
        labels, probs = python_ranking(encoder, bank, wave)
        heading, shown, values = _shown_ranking(page, elem_id)
        assert heading == labels[0]
        assert shown == labels
        assert values == pytest.approx(probs, abs=1e-5)
    summary = page.locator("#tc-summary").inner_text()
    assert "Spearman rank correlation over 4 labels" in summary
    assert "latency" in page.locator("#tc-student-info").inner_text()
    # 1 s windows, the last end-aligned: 6 for the real Ogg clip (it decodes to 5.001 s), 5 for a generated 5 s WAV
    windows = -(-len(wave) // AUDIO.clip_samples)
    assert f"{windows} windows" in page.locator("#tc-teacher-info").inner_text()

    shot = tmp_path / "demo.png"  # the page after a classification (see the module docstring)
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    if os.environ.get("TINYCLAP_DEMO_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["TINYCLAP_DEMO_SCREENSHOT"])

    # Picking the saved bank shows its labels, read-only.
    page.locator("#tc-source").get_by_label("Bank: bank (7 labels)").check()
    textarea = page.locator("#tc-prompts textarea")
    page.wait_for_function("() => document.querySelector('#tc-prompts textarea').disabled")
    assert textarea.input_value().splitlines() == PromptBank.load(run.bank).labels

    # An unreadable upload gets our one-line message, not a stack trace.
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    page.locator("#tc-source").get_by_label("Custom prompts").check()
    page.locator("#tc-audio button[aria-label='Clear']").click()
    page.locator("#tc-audio input[type=file]").set_input_files(str(bad))
    page.locator("#tc-classify").click()
    toast = page.get_by_text("broken.wav: not a readable sound file")
    toast.first.wait_for(timeout=60_000)
    page.screenshot(path=str(tmp_path / "demo-error.png"))
    body = page.locator("body").inner_text()
    assert "Traceback" not in body and "/tmp/gradio" not in body
    assert foreign == [], f"the page reached beyond 127.0.0.1: {foreign}"
    assert "Traceback" not in log_path.read_text()
    page.close()
