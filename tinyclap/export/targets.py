"""Device targets (flash, RAM) and the check that an export fits one.

A target is a YAML file in ``tinyclap/configs/targets/`` (or any path)::

    name: stm32h7
    description: STM32H7 (Cortex-M7, 480 MHz)
    flash: 2MB            # binary units, as MCU datasheets use them
    ram: 1MB
    reserved_flash: 256KB # firmware that is not the model: TFLM runtime and kernels, C front end, app
    reserved_ram: 64KB    # stack, heap, drivers, DMA buffers
    clock_hz: 480000000   # optional, only reported
    cpu: cortex-m7        # optional: the core the export links the firmware for (cortex-m7 or cortex-m4f);
                          # default from the description ("Cortex-M4" -> cortex-m4f, else cortex-m7)

:func:`check_fit` adds what an export needs to the reserves and compares.
:class:`FitReport` says, per resource, the parts, the total and the overflow,
for one runtime (``"c"``: the plain C firmware of ``OUT/firmware``, ``"tflm"``:
TensorFlow Lite Micro) and one kind of figures (``"linked"``: read from the
linked ELF, ``"estimate"``: computed before linking); the export keeps the
other checks beside the one that decides as :attr:`FitReport.alternatives`.
:meth:`FitReport.raise_if_over` raises :class:`~tinyclap.errors.BudgetError`
naming each overflow and by how much.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tinyclap.errors import BudgetError, TinyClapError
from tinyclap.students.scaling import format_bytes, parse_size

__all__ = ["CPUS", "TargetError", "Target", "list_targets", "load_target", "ResourceUse", "FitReport", "check_fit"]


CPUS = ("cortex-m7", "cortex-m4f")  # what the firmware bundle's Makefile builds


class TargetError(TinyClapError, ValueError):
    """A target name or file that does not describe a device."""


@dataclass(frozen=True)
class Target:
    """A device's memory, and how much of it the rest of the firmware keeps."""

    name: str
    flash_bytes: int
    ram_bytes: int
    reserved_flash: int = 0
    reserved_ram: int = 0
    description: str = ""
    clock_hz: int | None = None
    cpu: str | None = None

    @property
    def firmware_cpu(self) -> str:
        """The core the firmware image is linked for: ``cpu``, else from the description or name."""
        if self.cpu:
            return self.cpu
        text = f"{self.description} {self.name}".lower().replace("_", "-")
        return "cortex-m4f" if "cortex-m4" in text else "cortex-m7"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "flash_bytes": self.flash_bytes,
            "ram_bytes": self.ram_bytes,
            "reserved_flash": self.reserved_flash,
            "reserved_ram": self.reserved_ram,
            "clock_hz": self.clock_hz,
            "cpu": self.firmware_cpu,
        }


def _target_dir() -> Path:
    return Path(str(resources.files("tinyclap") / "configs" / "targets"))


def list_targets() -> list[str]:
    """Names of the targets shipped in ``tinyclap/configs/targets``."""
    return sorted(p.stem for p in _target_dir().glob("*.yaml"))


def _clock_hz(path: Path, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"clock_hz must be an integer (Hz), got {value!r}") from None  # load_target adds the path


def load_target(name_or_path: str | Path) -> Target:
    """A shipped target by name (see :func:`list_targets`) or a target YAML file."""
    import yaml

    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = _target_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            raise TargetError(f"{name_or_path!r}: no such target (known: {', '.join(list_targets())}, or a YAML path)")
    elif not path.is_file():
        raise TargetError(f"{path}: no such target file")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise TargetError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(doc, dict):
        raise TargetError(f"{path}: a target is a mapping with at least flash and ram")
    known = {"name", "description", "flash", "ram", "reserved_flash", "reserved_ram", "clock_hz", "cpu"}
    unknown = set(doc) - known
    if unknown:
        raise TargetError(f"{path}: unknown keys {sorted(unknown)} (known: {sorted(known)})")
    if doc.get("cpu") is not None and doc["cpu"] not in CPUS:
        raise TargetError(f"{path}: cpu must be one of {', '.join(CPUS)}, got {doc['cpu']!r}")
    missing = [k for k in ("flash", "ram") if k not in doc]
    if missing:
        raise TargetError(f"{path}: missing {', '.join(missing)}")
    try:
        target = Target(
            name=str(doc.get("name") or path.stem),
            flash_bytes=parse_size(doc["flash"]),
            ram_bytes=parse_size(doc["ram"]),
            reserved_flash=parse_size(doc["reserved_flash"]) if doc.get("reserved_flash") else 0,
            reserved_ram=parse_size(doc["reserved_ram"]) if doc.get("reserved_ram") else 0,
            description=str(doc.get("description", "")),
            clock_hz=_clock_hz(path, doc["clock_hz"]) if doc.get("clock_hz") else None,
            cpu=doc.get("cpu"),
        )
    except (TypeError, ValueError) as err:
        raise TargetError(f"{path}: {err}") from None
    if target.reserved_flash >= target.flash_bytes or target.reserved_ram >= target.ram_bytes:
        raise TargetError(f"{path}: the reserves leave nothing for the model")
    return target


@dataclass
class ResourceUse:
    """One resource (flash or RAM): the parts that use it and the budget."""

    name: str
    budget: int
    parts: dict[str, int] = field(default_factory=dict)

    @property
    def used(self) -> int:
        return sum(self.parts.values())

    @property
    def over(self) -> int:
        """Bytes over budget (0 if it fits)."""
        return max(0, self.used - self.budget)

    def describe(self) -> str:
        parts = " + ".join(f"{k} {format_bytes(v)}" for k, v in self.parts.items())
        return f"{self.name} {format_bytes(self.used)} ({parts}) of {format_bytes(self.budget)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "used": self.used,
            "free": self.budget - self.used,
            "over": self.over,
            "use": round(self.used / self.budget, 4),
            "parts": dict(self.parts),
        }


RUNTIMES = {"c": "plain C runtime", "tflm": "TFLite Micro runtime"}


@dataclass
class FitReport:
    """Whether an export fits a target, with the figures behind the answer.

    ``runtime`` (``"c"`` or ``"tflm"``, None when not said) and ``figures``
    (``"linked"`` or ``"estimate"``) say what was counted; ``details`` adds
    what the figures came from (the ELF, the core, ld's message);
    ``alternatives`` are the other checks of the same export, kept for the
    report (they decide nothing).
    """

    target: Target
    flash: ResourceUse
    ram: ResourceUse
    macs_per_second: int | None = None
    runtime: str | None = None
    figures: str = "estimate"
    details: dict[str, Any] = field(default_factory=dict)
    alternatives: list[FitReport] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.flash.over == 0 and self.ram.over == 0

    @property
    def label(self) -> str:
        """``plain C runtime, as linked`` / ``TFLite Micro runtime, estimated`` ('' without a runtime)."""
        if self.runtime is None:
            return ""
        how = "as linked" if self.figures == "linked" else "estimated"
        return f"{RUNTIMES.get(self.runtime, self.runtime)}, {how}"

    def overflow_message(self) -> str:
        """One line naming every resource over budget and by how much ('' if it fits)."""
        over = [r for r in (self.flash, self.ram) if r.over]
        if not over:
            return ""
        parts = "; ".join(f"{r.name} over by {format_bytes(r.over)}: needs {r.describe()}" for r in over)
        return f"does not fit {self.target.name}: {parts}" + (f" ({self.label})" if self.label else "")

    def message(self) -> str:
        """:meth:`overflow_message`, or ``fits NAME (...)``."""
        return self.overflow_message() or f"fits {self.target.name}" + (f" ({self.label})" if self.label else "")

    def raise_if_over(self) -> None:
        """Raise :class:`BudgetError` with :meth:`overflow_message` if anything overflows."""
        if not self.fits:
            raise BudgetError(self.overflow_message())

    def check_dict(self) -> dict[str, Any]:
        """This check alone: runtime, figures, fits, flash, RAM, message and details."""
        return {
            "runtime": self.runtime,
            "figures": self.figures,
            "fits": self.fits,
            "flash": self.flash.to_dict(),
            "ram": self.ram.to_dict(),
            "message": self.message(),
            **self.details,
        }

    def to_dict(self) -> dict[str, Any]:
        """The deciding check at the top level (target, fits, flash, ram, message), every check in ``checks``."""
        return {
            "target": self.target.to_dict(),
            "fits": self.fits,
            "runtime": self.runtime,
            "figures": self.figures,
            "flash": self.flash.to_dict(),
            "ram": self.ram.to_dict(),
            "macs_per_second": self.macs_per_second,
            "message": self.message(),
            "checks": [self.check_dict()] + [a.check_dict() for a in self.alternatives],
        }


def check_fit(
    target: Target,
    flash_parts: dict[str, int],
    ram_parts: dict[str, int],
    macs_per_second: int | None = None,
    *,
    runtime: str | None = None,
    figures: str = "estimate",
    details: dict[str, Any] | None = None,
) -> FitReport:
    """Compare what an export needs with ``target`` (the target's reserves are added as parts)."""
    flash = dict(flash_parts)
    ram = dict(ram_parts)
    if target.reserved_flash:
        flash["reserved"] = target.reserved_flash
    if target.reserved_ram:
        ram["reserved"] = target.reserved_ram
    return FitReport(
        target,
        ResourceUse("flash", target.flash_bytes, flash),
        ResourceUse("RAM", target.ram_bytes, ram),
        macs_per_second,
        runtime,
        figures,
        dict(details or {}),
    )
