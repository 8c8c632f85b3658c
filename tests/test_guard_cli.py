"""Bad command lines get one specific line, never a traceback (issue 14), and the work is not wasted.

Everything here runs `tinyclap.cli.main` in-process on inputs that are refused before
any model is loaded, so each test takes well under a second.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tinyclap.cli import VERBS, build_parser, main


def _error(capsys, argv: list[str]) -> str:
    """Run the CLI, expect exit status 1, return the one-line message."""
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err.splitlines()[-1]


# ------------------------------------------------------------------ --debug and the handler
def _leaf_parsers(parser, name: str = "tinyclap"):  # noqa: ANN001, ANN202
    """(name, parser) of every runnable command: verbs, and the actions of verbs that have them."""
    import argparse

    nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not nested:
        yield name, parser
    for action in nested:
        for sub_name, sub in action.choices.items():
            yield from _leaf_parsers(sub, f"{name} {sub_name}")


def test_every_verb_has_debug() -> None:
    leaves = dict(_leaf_parsers(build_parser()))
    assert {f"tinyclap {v}" for v in VERBS} - set(leaves) <= {"tinyclap firmware"}  # firmware: build/run
    assert len(leaves) >= len(VERBS)
    for name, parser in leaves.items():
        assert "--debug" in parser._option_string_actions, name
        action = parser._option_string_actions["--debug"]
        assert action.dest == "debug" and action.default is False and action.const is True, name


def test_debug_is_defined_once() -> None:
    cli = Path(__file__).resolve().parents[1] / "tinyclap" / "cli"
    defined = [p.name for p in sorted(cli.glob("*.py")) if re.search(r"add_argument\(\s*[\"']--debug", p.read_text())]
    assert defined == ["__init__.py"]


@pytest.mark.parametrize(
    "exc, shown",
    [
        (PermissionError(13, "Permission denied", "/x/metrics.json"), "/x/metrics.json: Permission denied"),
        (IsADirectoryError(21, "Is a directory", "out.npz"), "out.npz: Is a directory"),
        (OSError(28, "No space left on device"), "No space left on device"),
    ],
)
def test_oserror_is_one_line(monkeypatch, capsys, exc: OSError, shown: str) -> None:
    import tinyclap.cli.scale as scale

    def boom(args):  # noqa: ANN001, ANN202
        raise exc

    monkeypatch.setattr(scale, "run", boom)
    assert _error(capsys, ["scale", "--flash", "1MB"]) == f"tinyclap scale: error: {shown}"


def test_debug_shows_the_traceback(monkeypatch, capsys) -> None:
    import tinyclap.cli.scale as scale

    def boom(args):  # noqa: ANN001, ANN202
        raise PermissionError(13, "Permission denied", "/x")

    monkeypatch.setattr(scale, "run", boom)
    with pytest.raises(PermissionError):
        main(["scale", "--flash", "1MB", "--debug"])


@pytest.mark.parametrize("exc", [TypeError("a bug"), RuntimeError("a torch bug"), KeyError("k")])
def test_bugs_are_not_swallowed(monkeypatch, exc: Exception) -> None:
    import tinyclap.cli.scale as scale

    def boom(args):  # noqa: ANN001, ANN202
        raise exc

    monkeypatch.setattr(scale, "run", boom)
    with pytest.raises(type(exc)):
        main(["scale", "--flash", "1MB"])


# ------------------------------------------------------------------ blocked output paths
# Inputs that do not exist: the output check must come first, so the message is about --out
# (for eval and prune this is what saves the whole run; before, they failed after all their work).
_MISSING = "/nonexistent-tinyclap-input"
_DIR_OUT = {
    "cache": ["cache", "--teacher", "local:" + _MISSING, "--data", "synth?n=2"],
    "distill": ["distill", "--cache", _MISSING, "--data", "synth?n=2", "--student", "mcu_cortex_m4"],
    "prune": ["prune", "--student", _MISSING + ".json", "--cache", _MISSING, "--bank", _MISSING + ".npz", "--dims", "4"],
    "export": ["export", "--student", _MISSING + ".json", "--bank", _MISSING + ".npz", "--calib", "synth?n=2"],
    "pretrain": ["pretrain", "--data", "synth?n=2", "--preset", _MISSING + ".yaml"],
    "quickstart": ["quickstart"],
    "eval": ["eval", "--model", _MISSING + ".json", "--bank", _MISSING + ".npz", "--dataset", "synth?n=2&target=label"],
}
_FILE_OUT = {
    "bank": (["bank", "--teacher", "local:" + _MISSING, "--labels", _MISSING + ".txt"], "--out", "bank.npz"),
    "embed": (["embed", "--teacher", "local:" + _MISSING, "--text", "a dog"], "--out", "emb.npy"),
    "scale": (["scale", "--flash", "4MB", "--window", "1s", "--dims", "64"], "--save", "preset.yaml"),
}


@pytest.mark.parametrize("verb", sorted(_DIR_OUT))
def test_output_folder_blocked_by_a_file(tmp_path: Path, capsys, verb: str) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    msg = _error(capsys, _DIR_OUT[verb] + ["--out", str(blocker)])
    assert msg == f"tinyclap {verb}: error: --out {blocker}: is a file, not a folder; give a folder name"
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("verb", sorted(_DIR_OUT))
def test_output_folder_under_a_file(tmp_path: Path, capsys, verb: str) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("x")
    msg = _error(capsys, _DIR_OUT[verb] + ["--out", str(blocker / "run")])
    assert msg.startswith(f"tinyclap {verb}: error: --out {blocker / 'run'}: {blocker} is a file")


@pytest.mark.parametrize("verb", sorted(_FILE_OUT))
def test_output_file_blocked_by_a_folder(tmp_path: Path, capsys, verb: str) -> None:
    argv, option, name = _FILE_OUT[verb]
    folder = tmp_path / name
    folder.mkdir()
    msg = _error(capsys, argv + [option, str(folder)])
    assert msg == f"tinyclap {verb}: error: {option} {folder}: is a folder; give a file name"


@pytest.mark.parametrize("verb", sorted(_FILE_OUT))
def test_output_file_under_a_file(tmp_path: Path, capsys, verb: str) -> None:
    argv, option, name = _FILE_OUT[verb]
    blocker = tmp_path / "taken"
    blocker.write_text("x")
    msg = _error(capsys, argv + [option, str(blocker / name)])
    assert msg.startswith(f"tinyclap {verb}: error: {option} {blocker / name}: {blocker} is a file")


def test_check_output_accepts_what_can_be_written(tmp_path: Path) -> None:
    from tinyclap.io import OutputPathError, check_output

    assert check_output(tmp_path / "a" / "b", "dir") == tmp_path / "a" / "b"
    assert check_output(tmp_path / "new.npz", "file") == tmp_path / "new.npz"
    (tmp_path / "old.npz").write_bytes(b"")
    check_output(tmp_path / "old.npz", "file")  # overwriting a file is allowed
    check_output(tmp_path, "dir")  # so is an existing folder
    with pytest.raises(OutputPathError):
        check_output(tmp_path / "old.npz", "dir")
    assert not (tmp_path / "a").exists()  # a check creates nothing


# ------------------------------------------------------------------ numbers that overflow
@pytest.mark.parametrize(
    "argv, option",
    [
        (["scale", "--flash", "1e400MB"], "--flash"),
        (["scale", "--ram", "1e400KB"], "--ram"),
        (["scale", "--flash", "1MB", "--macs", "1e400M"], "--macs"),
        (["scale", "--flash", "1MB", "--window", "1e400s"], "--window"),
        (["demo", "--check", "--port", "-1"], "--port"),
        (["demo", "--check", "--port", "99999"], "--port"),
        (["demo", "--check", "--port", "0"], "--port"),
    ],
)
def test_out_of_range_numbers_are_refused(capsys, argv: list[str], option: str) -> None:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"argument {option}:" in err
    assert re.search(r"too large|out of range", err)


def test_parse_size_refuses_infinity() -> None:
    from tinyclap.students.scaling import SizeError, parse_count, parse_size

    for parse, text in ((parse_size, "1e400MB"), (parse_count, "1e400"), (parse_size, float("inf"))):
        with pytest.raises(SizeError):
            parse(text)
    assert parse_size("1.5MB") == 1572864


def test_demo_upload_limit_is_checked_when_parsed(capsys) -> None:
    # It used to pass --check and fail only when the page was launched.
    with pytest.raises(SystemExit) as stop:
        main(["demo", "--check", "--max-file-size", "lots"])
    assert stop.value.code == 2
    assert "argument --max-file-size: not a file size: 'lots'" in capsys.readouterr().err


@pytest.mark.parametrize("verb", ["cache", "distill", "pretrain", "embed", "demo"])
def test_device_is_checked_when_parsed(capsys, verb: str) -> None:
    # A bad --device was a torch RuntimeError from deep inside the first model move.
    with pytest.raises(SystemExit) as stop:
        main([verb, "--device", "gpu0"])
    assert stop.value.code == 2
    assert "argument --device: not a torch device: 'gpu0'" in capsys.readouterr().err


def test_teacher_options_are_checked(capsys) -> None:
    from tinyclap.teachers.registry import UnknownTeacherError, load_teacher

    with pytest.raises(UnknownTeacherError, match=r"teacher option batch_size must be a positive integer, got 'abc'"):
        load_teacher("local:/nonexistent", batch_size="abc")
    with pytest.raises(UnknownTeacherError, match=r"teacher device 'abc' is not a torch device"):
        load_teacher("local:/nonexistent", device="abc")
    msg = _error(capsys, ["bank", "--teacher", "local:/nonexistent", "--teacher-opt", "batch_size=0",
                          "--labels", "/nonexistent.txt", "--out", "/tmp/unused-bank.npz"])
    assert msg.endswith("teacher option batch_size must be a positive integer, got '0'")
