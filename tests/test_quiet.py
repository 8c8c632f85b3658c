"""The torchao import noise is dropped where tinyclap imports transformers; nothing else is."""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys

import pytest

from tinyclap._quiet import quiet_torchao_noise

SO_LINE = ("Failed to load /x/site-packages/torchao/_C_mxfp8.cpython-310-x86_64-linux-gnu.so: "
           "Could not load this library: /x/site-packages/torchao/_C_mxfp8.cpython-310-x86_64-linux-gnu.so")
ENUM_LINE = ("<enum 'KernelPreference'> is an Enum subclass and is now natively supported by torch.compile as an "
             "opaque value type. Calling register_constant() on Enum subclasses is deprecated and will be an error "
             "in a future release.")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_only_the_known_messages_are_dropped() -> None:
    quiet_torchao_noise()
    quiet_torchao_noise()  # idempotent: one filter per logger
    assert sum(type(f).__name__ == "_DropKnownNoise" for f in logging.getLogger("torchao").filters) == 1
    # Handlers on the loggers themselves: torch's loggers do not propagate to the root (pytest's caplog).
    seen = _Collect()
    names = ("torchao", "torch.utils._pytree")
    for name in names:
        logging.getLogger(name).addHandler(seen)
    try:
        logging.getLogger("torchao").warning(SO_LINE)
        logging.getLogger("torch.utils._pytree").warning(ENUM_LINE)
        logging.getLogger("torchao").warning("Failed to quantize layer 3")  # a real torchao problem
        logging.getLogger("torch.utils._pytree").warning("some other pytree warning")
        logging.getLogger("torchao.quantization").warning(SO_LINE)  # another logger: not ours to silence
    finally:
        for name in names:
            logging.getLogger(name).removeHandler(seen)
    assert seen.messages == ["Failed to quantize layer 3", "some other pytree warning", SO_LINE]


@pytest.mark.skipif(importlib.util.find_spec("torchao") is None, reason="torchao not installed: no noise to drop")
def test_loading_a_transformers_teacher_prints_no_torchao_noise(tmp_path) -> None:
    from tests.laion_tiny import save_tiny_clap

    folder = save_tiny_clap(tmp_path / "clap")
    # A fresh interpreter (torchao logs on its first import only), loading through the registry as the CLI does.
    code = (
        "import sys\n"
        "from tinyclap.teachers.registry import load_teacher\n"
        f"teacher = load_teacher({str(folder)!r}, quiet=True)\n"
        "print('torchao' in sys.modules, teacher.dim)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert proc.stdout.split()[0] == "True"  # torchao really was imported, so its messages had their chance
    assert "torchao/_C" not in proc.stderr and "Enum subclass" not in proc.stderr, proc.stderr
