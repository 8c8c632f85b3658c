"""Write ``OUT/firmware/``: everything a firmware engineer needs to build the classifier for a target.

``tinyclap export --target NAME --out OUT`` calls :func:`write_bundle` after the
int8 ``.tflite`` files and ``OUT/c/`` (:func:`tinyclap.export.mcu.write_c_model`)
exist. The bundle is self-contained (no checkout of this repository needed)::

    OUT/firmware/Makefile              make host | cortex-m7 | cortex-m4f
    OUT/firmware/CMakeLists.txt        the same as a CMake project (+ arm-none-eabi.cmake toolchain file)
    OUT/firmware/tc_link.ld            FLASH / RAM lengths = the target's budget: over budget fails to link
    OUT/firmware/src/                  C runtime, copied from tinyclap/firmware/csrc (package data)
    OUT/firmware/model/                generated: tinyclap_model.c/.h, front-end tables, the network as C, tc_net.h
    OUT/firmware/tinyclap_firmware.json  what build and run need (target, models, window, labels, estimates)

The region ORIGINs are those of QEMU's MPS2 boards (``mps2-an500`` Cortex-M7,
``mps2-an386`` Cortex-M4), which ``tinyclap firmware run`` emulates; the
linker script's header and docs/mcu.md give a real STM32H7's.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tinyclap.errors import TinyClapError
from tinyclap.export.targets import Target, load_target

__all__ = [
    "FirmwareError",
    "Bundle",
    "BOARD",
    "RUNTIME_SOURCES",
    "csrc_dir",
    "write_bundle",
    "load_bundle",
    "update_manifest",
]

MANIFEST = "tinyclap_firmware.json"
DEFAULT_STACK_BYTES = 8 * 1024

# The board the linker script places the image on: QEMU's MPS2 (AN500 Cortex-M7, AN386 Cortex-M4)
# memory map, `info mtree` in QEMU 7.2: ZBT SSRAM1 0x00000000 (4 MB, code), ZBT SSRAM2/3 0x20000000 (4 MB).
BOARD = {
    "name": "QEMU mps2-an500 (Cortex-M7) / mps2-an386 (Cortex-M4)",
    "flash_origin": 0x00000000,
    "flash_max": 4 * 1024 * 1024,
    "ram_origin": 0x20000000,
    "ram_max": 4 * 1024 * 1024,
}

# Copied from csrc/ into OUT/firmware/src/.
RUNTIME_SOURCES = (
    "tc_app.c",
    "tc_app.h",
    "tc_logmel.c",
    "tc_logmel.h",
    "tc_rfft.c",
    "tc_rfft.h",
    "tc_classify.c",
    "tc_classify.h",
    "tc_nn.c",
    "tc_nn.h",
    "tc_startup_cm.c",
    "tc_startup_cm.h",
    "main_qemu.c",
    "main_host.c",
)


class FirmwareError(TinyClapError, RuntimeError):
    """A firmware bundle that cannot be written, built or run (missing files, tools, or an image over budget)."""


def csrc_dir() -> Path:
    """The C sources shipped in the package (``tinyclap/firmware/csrc``)."""
    return Path(str(resources.files("tinyclap.firmware") / "csrc"))


@dataclass
class Bundle:
    """A written ``firmware/`` folder and what its manifest says."""

    dir: Path
    target: Target
    models: list[str]
    arena_bytes: int
    stack_bytes: int
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST


def _fill(template: str, values: dict[str, Any]) -> str:
    for key, value in values.items():
        template = template.replace(f"@{key}@", str(value))
    leftover = sorted(set(re.findall(r"@[A-Z_]+@", template)))
    if leftover:
        raise FirmwareError(f"template placeholders left unfilled: {leftover}")
    return template


def write_bundle(
    export_dir: str | Path,
    target: str | Path | Target,
    *,
    out_dir: str | Path | None = None,
    stack_bytes: int = DEFAULT_STACK_BYTES,
) -> Bundle:
    """Write the firmware bundle of the export in ``export_dir`` for ``target`` (default ``export_dir/firmware``).

    Needs ``export_dir/report.json``, the ``*.int8.tflite`` files it names and
    ``export_dir/c/`` (an export with ``--target`` or the ``c`` format). The
    network is generated with :func:`tinyclap.firmware.netgen.write_c_network`.
    """
    export_dir = Path(export_dir)
    tgt = target if isinstance(target, Target) else load_target(target)
    if tgt.flash_bytes > BOARD["flash_max"] or tgt.ram_bytes > BOARD["ram_max"]:
        raise FirmwareError(
            f"target {tgt.name}: {tgt.flash_bytes} B flash / {tgt.ram_bytes} B RAM do not fit the emulated "
            f"board's 4 MB + 4 MB ({BOARD['name']})"
        )
    if stack_bytes < 1024 or stack_bytes % 8:
        raise FirmwareError(f"stack_bytes must be a multiple of 8 and at least 1024, got {stack_bytes}")
    report_path = export_dir / "report.json"
    c_dir = export_dir / "c"
    if not report_path.is_file() or not (c_dir / "tinyclap_model.c").is_file():
        raise FirmwareError(
            f"{export_dir}: no report.json and c/tinyclap_model.c (run `tinyclap export --target ...` first)"
        )
    report = json.loads(report_path.read_text())
    models = list(report.get("models", []))
    tfl = report.get("formats", {}).get("tflite-int8", {}).get("models", {})
    if models not in (["embed"], ["features", "head"]) or any(m not in tfl for m in models):
        raise FirmwareError(f"{report_path}: expected an int8 'embed' model or 'features' + 'head', got {models}")
    src = csrc_dir()
    missing = [n for n in RUNTIME_SOURCES if not (src / n).is_file()]
    if missing:
        raise FirmwareError(f"the installed tinyclap lacks C sources {missing} (in {src})")
    try:
        from tinyclap.firmware.netgen import write_c_network
    except ImportError as err:
        raise FirmwareError(f"the plain C network generator is unavailable ({err})") from None

    fw = Path(out_dir) if out_dir is not None else export_dir / "firmware"
    if fw.exists():
        shutil.rmtree(fw)
    (fw / "src").mkdir(parents=True)
    (fw / "model").mkdir()
    for name in RUNTIME_SOURCES:
        shutil.copyfile(src / name, fw / "src" / name)
    for p in sorted(c_dir.iterdir()):
        if p.suffix in (".c", ".h"):
            shutil.copyfile(p, fw / "model" / p.name)

    nets: dict[str, Any] = {}
    for name in models:
        files = write_c_network(export_dir / f"{name}.int8.tflite", fw / "model", name)
        if files.input.dtype != "int8" or files.output.dtype != "int8":
            raise FirmwareError(
                f"{name}.int8.tflite has {files.input.dtype} input / {files.output.dtype} output: "
                "tc_app.c takes int8 tensors"
            )
        nets[name] = {
            "c": Path(files.c_path).name,
            "h": Path(files.h_path).name,
            "arena_bytes": int(files.arena_bytes),
            "weights_bytes": int(files.weights_bytes),
            "input_elems": int(files.input.size),
            "output_elems": int(files.output.size),
            "ops": sorted(set(files.ops)),
            "op_count": len(files.ops),
        }
    arena = max(n["arena_bytes"] for n in nets.values())
    first = nets[models[0]]
    h = [
        "/* Generated by tinyclap.firmware.bundle. Do not edit: regenerate instead. */",
        "/* The network(s) as plain C (tinyclap.firmware.netgen) and the sizes tc_app.c needs. */",
        "#ifndef TC_NET_H",
        "#define TC_NET_H",
        "",
        *[f'#include "{n["h"]}"' for n in nets.values()],
        "",
        f"#define TC_NET_INPUT_ELEMS {first['input_elems']} /* int8 log-mel of one window */",
    ]
    if models == ["features", "head"]:
        if nets["features"]["output_elems"] != nets["head"]["input_elems"]:
            raise FirmwareError("the features output and the head input differ in size")
        h.append(f"#define TC_NET_POOLED_ELEMS {nets['features']['output_elems']} /* features out = head in */")
    h += [
        "/* One arena serves every network (they run one after the other): the largest plan. */",
        f"#define TC_NET_ARENA_BYTES {arena}u",
        "",
        "#endif /* TC_NET_H */",
        "",
    ]
    (fw / "model" / "tc_net.h").write_text("\n".join(h))

    net_sources = " ".join(f"model/{n['c']}" for n in nets.values())
    description = f"{report.get('student', {}).get('name', 'student')} ({'+'.join(models)}) for {tgt.name}"
    values = {
        "DESCRIPTION": description,
        "TARGET": tgt.name,
        "FLASH_BYTES": tgt.flash_bytes,
        "RAM_BYTES": tgt.ram_bytes,
        "FLASH_ORIGIN": f"0x{BOARD['flash_origin']:08X}",
        "FLASH_LENGTH": tgt.flash_bytes,
        "RAM_ORIGIN": f"0x{BOARD['ram_origin']:08X}",
        "RAM_LENGTH": tgt.ram_bytes,
        "BOARD": BOARD["name"],
        "STACK_BYTES": stack_bytes,
        "NET_SOURCES": net_sources,
    }
    (fw / "Makefile").write_text(_fill((src / "Makefile.in").read_text(), values))
    (fw / "CMakeLists.txt").write_text(_fill((src / "CMakeLists.txt.in").read_text(), values))
    (fw / "tc_link.ld").write_text(_fill((src / "tc_link.ld.in").read_text(), values))
    shutil.copyfile(src / "arm-none-eabi.cmake", fw / "arm-none-eabi.cmake")

    window = report.get("window", {})
    fit = report.get("target") or {}
    manifest = {
        "generator": "tinyclap.firmware.bundle",
        "target": tgt.to_dict(),
        "board": BOARD,
        "models": models,
        "networks": nets,
        "arena_bytes": arena,
        "stack_bytes": stack_bytes,
        "sample_rate": int(report["student"]["audio_config"]["sample_rate"]),
        "window": window,
        "labels": json.loads((c_dir / "tinyclap_model.json").read_text())["labels"],
        "window_samples": json.loads((c_dir / "tinyclap_model.json").read_text())["window_samples"],
        "report_estimate": {
            "flash": (fit.get("flash") or {}).get("parts"),
            "ram": (fit.get("ram") or {}).get("parts"),
        },
    }
    (fw / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return Bundle(fw, tgt, models, arena, stack_bytes, manifest)


def load_bundle(firmware_dir: str | Path) -> Bundle:
    """A bundle written by :func:`write_bundle` (``OUT/firmware`` or ``OUT``)."""
    d = Path(firmware_dir)
    if not (d / MANIFEST).is_file() and (d / "firmware" / MANIFEST).is_file():
        d = d / "firmware"
    path = d / MANIFEST
    if not path.is_file():
        for report in (d / "report.json", d.parent / "report.json"):
            if report.is_file():
                error = (json.loads(report.read_text()).get("firmware") or {}).get("error")
                if error:
                    raise FirmwareError(f"{firmware_dir}: the export wrote no firmware: {error}")
        raise FirmwareError(f"{firmware_dir}: no {MANIFEST} (write one with `tinyclap export --target ...`)")
    m = json.loads(path.read_text())
    t = m["target"]
    tgt = Target(
        name=t["name"],
        flash_bytes=t["flash_bytes"],
        ram_bytes=t["ram_bytes"],
        reserved_flash=t["reserved_flash"],
        reserved_ram=t["reserved_ram"],
        description=t["description"],
        clock_hz=t["clock_hz"],
        cpu=t.get("cpu"),
    )
    return Bundle(d, tgt, list(m["models"]), int(m["arena_bytes"]), int(m["stack_bytes"]), m)


def update_manifest(bundle: Bundle, **fields: Any) -> None:
    """Set top-level fields of the bundle's manifest (the export adds its fit figures after linking)."""
    bundle.manifest.update(fields)
    bundle.manifest_path.write_text(json.dumps(bundle.manifest, indent=2) + "\n")
