"""The Gradio page: audio in, labels from typed prompts or a saved bank, rankings out.

``build_app(models)`` returns the ``gr.Blocks``; ``launch(app, ...)`` serves it
on 127.0.0.1 unless told otherwise, with upload size capped and Gradio's
analytics off (the page makes no network calls: fonts are local, nothing is
shared). The computation lives in :mod:`tinyclap.demo.inference`; this file
only lays out components and turns errors into short messages on the page.

The one API endpoint, ``/classify`` (also what the button calls), takes
``(audio file, label source, prompts text, templated)`` and returns
``(summary, student label, student info, teacher label, teacher info, picture, details)``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

# Before gradio is imported: it reads this at import time to decide on telemetry and version checks.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import gradio as gr  # noqa: E402

from tinyclap.audio import AudioDecodeError  # noqa: E402
from tinyclap.demo.inference import CUSTOM, DemoModels, DemoResult, ModelResult  # noqa: E402
from tinyclap.demo.plots import clip_figure  # noqa: E402
from tinyclap.errors import TinyClapError  # noqa: E402

__all__ = ["build_app", "launch", "classify_outputs", "DEFAULT_HOST", "DEFAULT_MAX_FILE_SIZE"]

log = logging.getLogger("tinyclap.demo")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_MAX_FILE_SIZE = "25mb"
TOP_SHOWN = 10  # bars per model; the details JSON holds the full ranking
EXAMPLE_PROMPTS = ["a dog barking", "rain falling", "a clock ticking", "a baby crying", "a chainsaw"]
ROLE_TITLE = {"student": "Student", "teacher": "Teacher"}
CSS = "#tc-summary {min-height: 2.5em}"


def _describe(models: DemoModels) -> str:
    """The header: what is loaded, and why typed prompts are or are not available."""
    lines = ["# tinyclap: zero-shot audio classification"]
    if models.student is not None:
        s = models.student
        ac = s.audio_config
        kept = f", {s.dim} of its teacher's dims kept" if getattr(s, "kept_dims", None) is not None else ""
        lines.append(
            f"- **Student** `{models.model_name('student')}`: {s.num_parameters():,} parameters, "
            f"{s.dim}-dim embeddings{kept}, {ac.sample_rate} Hz, {ac.clip_seconds:g} s windows"
        )
    if models.teacher is not None:
        t = models.teacher
        ac = t.audio_config
        lines.append(
            f"- **Teacher** `{models.model_name('teacher')}`: {t.dim}-dim embeddings, "
            f"{ac.sample_rate} Hz, {ac.clip_seconds:g} s windows"
        )
    for name, bank in models.banks.items():
        lines.append(f"- **Bank** `{name}`: {len(bank)} labels from teacher `{bank.teacher}`")
    mismatch = models.teacher_mismatch()
    if mismatch:
        lines.append(f"\n> Note: {mismatch}.")
    if not models.can_use_prompts:
        lines.append(
            "\n> Custom prompts are unavailable: a student has no text encoder, so its labels come from a saved "
            "bank (text embeddings a teacher computed earlier). Restart with `--teacher NAME` to type your own."
        )
    lines.append(
        f"\nUpload or record audio (up to {models.max_seconds:g} s; longer than one window is cut into windows "
        "whose embeddings are averaged), choose the labels, and press **Classify**."
    )
    return "\n".join(lines)


def _model_info(r: ModelResult, duration: float) -> str:
    windows = f"{r.windows} window{'s' if r.windows != 1 else ''}"
    return f"top: **{r.top}** · latency **{r.latency_ms:.1f} ms** for {duration:.1f} s of audio ({windows})"


def _summary(result: DemoResult) -> str:
    parts = [f"**{ROLE_TITLE[r.role]}:** {r.top} ({r.probabilities[0]:.0%})" for r in result.results]
    text = "### Top label: " + " · ".join(parts)
    a = result.agreement
    if a is not None:
        verdict = "agree on the top label" if a.same_top else "disagree on the top label"
        rho = "n/a" if a.spearman is None else f"{a.spearman:.2f}"
        text += (
            f"\n\nStudent and teacher **{verdict}**; "
            f"Spearman rank correlation over {len(result.labels)} labels: **{rho}**"
        )
    if result.source == CUSTOM:
        text += (
            "\n\nPrompts embedded by the teacher in "
            + (f"{result.text_ms:.0f} ms" if result.text_ms is not None else "0 ms (cached)")
        )
    return text


def classify_outputs(
    models: DemoModels, audio: str | None, source: str, prompts: str | None, templated: bool
) -> tuple[Any, ...]:
    """Run one classification and shape it for the page's outputs (raises ``gr.Error`` with a short message)."""
    name = Path(audio).name if audio else None
    try:
        result = models.classify(audio, source, prompts, bool(templated), display_name=name)
    except AudioDecodeError as err:
        # The upload lives under a server temp folder: name the file the user chose, never the server path.
        reason = err.reason.replace(str(audio), name or "audio")
        raise gr.Error(f"{name or 'audio'}: {reason}. Try a WAV, FLAC, OGG or MP3 file.", print_exception=False) from None
    except TinyClapError as err:
        raise gr.Error(str(err), print_exception=False) from None
    except Exception:  # noqa: BLE001 - log the details for the operator, show the user a plain sentence
        log.exception("demo: classification failed for %s", name)
        raise gr.Error("classification failed on the server; its log has the details", print_exception=False) from None
    for note in result.notes:
        gr.Warning(note)
    by_role = {r.role: r for r in result.results}
    labels, infos = [], []
    for role in ("student", "teacher"):
        r = by_role.get(role)
        labels.append(r.confidences() if r else None)
        infos.append(_model_info(r, result.duration_s) if r else "")
    picture = clip_figure(result.wave, result.audio_config, title=name or "") if result.wave is not None else None
    return _summary(result), labels[0], infos[0], labels[1], infos[1], picture, result.to_dict()


def build_app(models: DemoModels, title: str = "tinyclap demo") -> gr.Blocks:
    """The demo page for ``models`` (see the module docstring for its endpoint)."""
    sources = models.sources()
    first_bank = next(iter(models.banks.values()), None)
    default_source = sources[0][1]
    default_prompts = "\n".join(first_bank.labels if first_bank is not None else EXAMPLE_PROMPTS)

    with gr.Blocks(title=title, analytics_enabled=False) as app:
        gr.Markdown(_describe(models), elem_id="tc-header")
        with gr.Row():
            with gr.Column(scale=2, min_width=320):
                audio = gr.Audio(
                    sources=["upload", "microphone"], type="filepath", label="Audio", elem_id="tc-audio"
                )
                source = gr.Radio(sources, value=default_source, label="Labels from", elem_id="tc-source")
                prompts = gr.Textbox(
                    value=default_prompts,
                    lines=8,
                    max_lines=30,
                    label="Prompts, one per line" if models.can_use_prompts else "Labels (from the bank)",
                    info=None if models.can_use_prompts else "Typing prompts needs a teacher's text encoder.",
                    interactive=default_source == CUSTOM,
                    elem_id="tc-prompts",
                )
                templated = gr.Checkbox(
                    value=False,
                    label="Expand each prompt with the bank templates ('the sound of {}', ...)",
                    visible=models.can_use_prompts,
                    elem_id="tc-templated",
                )
                button = gr.Button("Classify", variant="primary", elem_id="tc-classify")
            with gr.Column(scale=3, min_width=420):
                summary = gr.Markdown(elem_id="tc-summary")
                with gr.Row():
                    with gr.Column(visible=models.student is not None):
                        student_label = gr.Label(
                            num_top_classes=TOP_SHOWN, label=f"Student: {models.short_name('student')}"
                            if models.student is not None else "Student", elem_id="tc-student-label",
                        )
                        student_info = gr.Markdown(elem_id="tc-student-info")
                    with gr.Column(visible=models.teacher is not None):
                        teacher_label = gr.Label(
                            num_top_classes=TOP_SHOWN, label=f"Teacher: {models.short_name('teacher')}"
                            if models.teacher is not None else "Teacher", elem_id="tc-teacher-label",
                        )
                        teacher_info = gr.Markdown(elem_id="tc-teacher-info")
                picture = gr.Image(
                    label="Waveform and log-mel", show_label=False, type="numpy", format="png", interactive=False,
                    elem_id="tc-picture",
                )
                with gr.Accordion("Details (full ranking, cosines, latencies)", open=False):
                    details = gr.JSON(elem_id="tc-details")

        def on_source(choice: str) -> dict[str, Any]:
            if choice == CUSTOM:
                return gr.update(interactive=True, label="Prompts, one per line")
            bank = models.banks.get(choice.removeprefix("bank:"))
            labels = "\n".join(bank.labels) if bank is not None else ""
            return gr.update(value=labels, interactive=False, label="Labels (from the bank)")

        source.change(on_source, inputs=source, outputs=prompts, api_visibility="private")
        button.click(
            lambda a, s, p, t: classify_outputs(models, a, s, p, t),
            inputs=[audio, source, prompts, templated],
            outputs=[summary, student_label, student_info, teacher_label, teacher_info, picture, details],
            api_name="classify",
            concurrency_limit=1,  # one clip at a time: the models share the CPU
        )
    return app


def launch(
    app: gr.Blocks,
    host: str = DEFAULT_HOST,
    port: int | None = None,
    max_file_size: str | int = DEFAULT_MAX_FILE_SIZE,
    block: bool = True,
    quiet: bool = False,
) -> str:
    """Serve ``app``; returns its local URL. ``block=False`` returns at once (tests, notebooks)."""
    app.queue(default_concurrency_limit=1)
    _, url, _ = app.launch(
        server_name=host,
        server_port=port,
        max_file_size=max_file_size,
        share=False,
        show_error=False,  # only our own gr.Error messages reach the page, never a traceback
        ssr_mode=False,  # server-side rendering would need node and a second port
        inbrowser=False,
        prevent_thread_lock=not block,
        quiet=quiet,
        css=CSS,
        footer_links=["api"],
    )
    return url
