"""Flash and RAM of a linked image, as the linker placed them (read from the ELF file itself).

A 32-bit little-endian ELF (what ``arm-none-eabi-gcc`` links) is parsed here:
section headers and the symbol table, no external tool. A section counts
against a memory region by its address: allocated sections in the flash
region are flash; allocated sections in the RAM region are RAM, and those that
also carry bytes (``.data``, type PROGBITS) are copied from flash at reset, so
they count against flash too (what ``arm-none-eabi-size`` calls data).
The stack that the linker script reserves (``.stack``) is RAM.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyclap.errors import TinyClapError

__all__ = ["ElfError", "Section", "ElfMemory", "read_elf_memory"]

_SHF_ALLOC = 0x2
_SHT_NOBITS = 8
_SHT_SYMTAB = 2


class ElfError(TinyClapError, ValueError):
    """A file that is not a 32-bit little-endian ELF image."""


@dataclass(frozen=True)
class Section:
    name: str
    addr: int
    size: int
    nobits: bool  # .bss / .stack: RAM only, nothing stored in flash

    def to_dict(self) -> dict[str, Any]:
        return {"addr": self.addr, "size": self.size, "nobits": self.nobits}


@dataclass
class ElfMemory:
    """Bytes of flash and RAM the image uses, per section, and the sizes of its symbols."""

    path: Path
    flash_bytes: int
    ram_bytes: int
    flash_sections: dict[str, int] = field(default_factory=dict)
    ram_sections: dict[str, int] = field(default_factory=dict)
    symbols: dict[str, int] = field(default_factory=dict)  # object and function sizes by name

    def symbol_bytes(self, *names: str) -> int:
        """Total size of the named symbols (0 for absent ones)."""
        return sum(self.symbols.get(n, 0) for n in names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "elf": str(self.path),
            "flash_bytes": self.flash_bytes,
            "ram_bytes": self.ram_bytes,
            "flash_sections": dict(self.flash_sections),
            "ram_sections": dict(self.ram_sections),
        }


def _sections(data: bytes) -> tuple[list[tuple[str, int, int, int, int, int, int, int]], bytes]:
    if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        raise ElfError("not a 32-bit little-endian ELF file")
    (shoff,) = struct.unpack_from("<I", data, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
    raw = []
    for i in range(shnum):
        raw.append(struct.unpack_from("<IIIIIIIIII", data, shoff + i * shentsize))
    names_off = raw[shstrndx][4]

    def cstr(base: int, off: int) -> str:
        end = data.index(b"\0", base + off)
        return data[base + off : end].decode(errors="replace")

    out = []
    for name, typ, flags, addr, off, size, link, _info, _align, entsize in raw:
        out.append((cstr(names_off, name), typ, flags, addr, off, size, link, entsize))
    return out, data


def read_elf_memory(path: str | Path, *, flash: tuple[int, int], ram: tuple[int, int]) -> ElfMemory:
    """Flash and RAM use of the image at ``path``; ``flash`` and ``ram`` are the regions' (origin, length)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ElfError(f"{path}: {err.strerror}") from None
    try:
        secs, data = _sections(data)
    except (struct.error, ValueError, IndexError) as err:
        raise ElfError(f"{path}: not a readable ELF image ({err})") from None

    def inside(addr: int, region: tuple[int, int]) -> bool:
        return region[0] <= addr < region[0] + region[1]

    flash_s: dict[str, int] = {}
    ram_s: dict[str, int] = {}
    symbols: dict[str, int] = {}
    for name, typ, flags, addr, off, size, link, entsize in secs:
        if typ == _SHT_SYMTAB and entsize:
            strtab_off = secs[link][4]
            for i in range(size // entsize):
                st_name, _value, st_size, st_info, _other, _shndx = struct.unpack_from(
                    "<IIIBBH", data, off + i * entsize
                )
                if st_size and st_info & 0xF in (1, 2):  # OBJECT, FUNC
                    end = data.index(b"\0", strtab_off + st_name)
                    sym = data[strtab_off + st_name : end].decode(errors="replace")
                    symbols[sym] = symbols.get(sym, 0) + st_size
        if not flags & _SHF_ALLOC or size == 0:
            continue
        if inside(addr, flash):
            flash_s[name] = size
        elif inside(addr, ram):
            ram_s[name] = size
            if typ != _SHT_NOBITS:
                flash_s[name] = size  # initial values, copied from flash at reset
        else:
            raise ElfError(f"{path}: section {name} at 0x{addr:08x} lies in neither the flash nor the RAM region")
    return ElfMemory(path, sum(flash_s.values()), sum(ram_s.values()), flash_s, ram_s, symbols)
