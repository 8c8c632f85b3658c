"""Build a firmware bundle (``OUT/firmware``) with its Makefile: the host program or a Cortex-M image.

:func:`build_firmware` runs ``make <cpu>`` in the bundle. A link that fails
because the image does not fit the target's flash or RAM (ld: "region `RAM'
overflowed by N bytes") becomes a one-line :class:`LinkOverflowError` naming the
region, the overflow and the budget; any other failure a :class:`FirmwareError`
with the compiler's first error line.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tinyclap.firmware.bundle import Bundle, FirmwareError, load_bundle

__all__ = ["CPUS", "ARM_TOOLS_HINT", "LinkOverflowError", "BuiltImage", "arm_tools_missing", "build_firmware"]

# make target -> (output, QEMU machine)
CPUS = {
    "cortex-m7": ("build/cortex-m7/tinyclap.elf", "mps2-an500"),
    "cortex-m4f": ("build/cortex-m4f/tinyclap.elf", "mps2-an386"),
    "host": ("build/host/tinyclap_host", None),
}
ARM_TOOLS_HINT = "install Debian's gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
_OVERFLOW = re.compile(r"region [`'\"]?(\w+)'? overflowed by (\d+) bytes")


class LinkOverflowError(FirmwareError):
    """The image does not fit the target: ld overflowed a memory region of the linker script."""

    def __init__(self, message: str, overflows: dict[str, int]):
        super().__init__(message)
        self.overflows = overflows


@dataclass(frozen=True)
class BuiltImage:
    bundle: Bundle
    cpu: str
    path: Path
    machine: str | None


def arm_tools_missing(*, qemu: bool = True) -> list[str]:
    """Names of the ARM tools not on PATH (empty when the cross build and the emulator can run)."""
    tools = ["arm-none-eabi-gcc"] + (["qemu-system-arm"] if qemu else [])
    return [t for t in tools if shutil.which(t) is None]


def build_firmware(firmware_dir: str | Path, cpu: str = "cortex-m7", *, timeout: float = 900) -> BuiltImage:
    """``make <cpu>`` in the bundle (``cpu``: cortex-m7, cortex-m4f or host); returns the built image."""
    if cpu not in CPUS:
        raise FirmwareError(f"unknown cpu {cpu!r}; choose from {', '.join(CPUS)}")
    bundle = load_bundle(firmware_dir)
    if cpu != "host":
        missing = arm_tools_missing(qemu=False)
        if missing:
            raise FirmwareError(f"{', '.join(missing)} not found: {ARM_TOOLS_HINT}")
    if shutil.which("make") is None:
        raise FirmwareError("make not found: install make (Debian: build-essential)")
    try:
        proc = subprocess.run(
            ["make", "-s", "-C", str(bundle.dir), cpu], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise FirmwareError(f"make {cpu} in {bundle.dir} took over {timeout:.0f} s") from None
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        over = {m.group(1): int(m.group(2)) for m in _OVERFLOW.finditer(log)}
        if over:
            budget = {"FLASH": bundle.target.flash_bytes, "RAM": bundle.target.ram_bytes}
            parts = "; ".join(
                f"region {r} overflowed by {n:,} bytes (budget {budget.get(r, 0):,} B)" for r, n in over.items()
            )
            raise LinkOverflowError(f"the {cpu} image does not fit {bundle.target.name}: {parts}", over)
        first = next((ln.strip() for ln in log.splitlines() if "error" in ln.lower()), log.strip()[-300:])
        raise FirmwareError(f"make {cpu} failed in {bundle.dir}: {first}")
    out, machine = CPUS[cpu]
    return BuiltImage(bundle, cpu, bundle.dir / out, machine)
