"""`tinyclap --help` and `tinyclap <verb> --help` stay fast: no torch (2-4 s to import) before a verb runs."""

from __future__ import annotations

import json
import subprocess
import sys

from tinyclap.cli import VERBS

# Prints the heavy modules a fresh interpreter holds after printing every help text.
_PROBE = """
import contextlib, io, json, sys
from tinyclap.cli import VERBS, main
helps = {}
for argv in [["--help"]] + [[verb, "--help"] for verb in VERBS]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main(argv)
        except SystemExit as stop:
            code = stop.code
    helps[" ".join(argv)] = [code, out.getvalue()]
heavy = sorted(m for m in ("torch", "numpy", "transformers", "torchaudio", "onnxruntime") if m in sys.modules)
print(json.dumps({"heavy": heavy, "helps": helps}))
"""


def test_help_of_every_verb_imports_no_torch() -> None:
    proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    helps = result["helps"]
    # The probe really printed each help (a broken import would have raised instead).
    assert helps["--help"][0] == 0 and all(v in helps["--help"][1] for v in VERBS)
    for verb in VERBS:
        code, text = helps[f"{verb} --help"]
        assert code == 0 and text.startswith(f"usage: tinyclap {verb}"), verb
    assert result["heavy"] == [], f"`tinyclap --help` imported {result['heavy']}"


def test_python_m_tinyclap_help_imports_no_torch() -> None:
    # `python -m tinyclap` (tinyclap/__main__.py, what torchrun runs), then a look at sys.modules.
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['tinyclap', 'quickstart', '--help']\n"
        "try:\n    runpy.run_module('tinyclap', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as stop:\n    code = stop.code\n"
        "print('RESULT', code, 'tinyclap.cli.quickstart' in sys.modules, 'torch' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert "usage: tinyclap quickstart" in proc.stdout
    # Exit 0, the verb module was imported (so the check means something), torch was not.
    assert proc.stdout.strip().splitlines()[-1] == "RESULT 0 True False"
