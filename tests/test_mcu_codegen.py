"""Generated tinyclap_model.c/.h: compiles (C99 and C++), and every array round-trips exactly."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinyclap.audio import AudioConfig
from tinyclap.export.c_arrays import c_double, c_float, c_string, format_floats
from tinyclap.export.mcu import (
    CodegenError,
    ModelBlob,
    QuantParams,
    quantize_bank,
    write_c_model,
)

REPO = Path(__file__).resolve().parent.parent
MCU = REPO / "examples" / "mcu"
CSRC = REPO / "tinyclap" / "firmware" / "csrc"  # the C sources (package data)
WARN = ["-Wall", "-Wextra", "-Werror", "-pedantic"]

pytestmark = pytest.mark.skipif(
    shutil.which("make") is None or shutil.which("cc") is None, reason="needs make and a C compiler"
)

LABELS = ["dog", "rooster", 'say "hi"', "back\\slash", "what??!", "café ☕", "tab\there", "x" * 80]


def fake_tflite(n: int, seed: int) -> bytes:
    """Bytes with a TFLite file identifier; write_c_model only embeds them."""
    body = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    return b"\x1c\x00\x00\x00TFL3" + body


def bank(classes: int = len(LABELS), dim: int = 48, seed: int = 0) -> np.ndarray:
    b = np.random.default_rng(seed).normal(size=(classes, dim))
    return (b / np.linalg.norm(b, axis=1, keepdims=True)).astype(np.float32)


def dump(model_dir: Path, tmp: Path) -> tuple[Path, dict[str, str]]:
    """Build host/model_dump.c against the generated files, run it, parse consts.txt."""
    build = tmp / "build"
    make = subprocess.run(["make", "-s", "-C", str(MCU), f"BUILD={build}", f"GEN={model_dir}",
                           f"MODEL_DIR={model_dir}", "model_dump"], capture_output=True, text=True)
    assert make.returncode == 0, make.stderr
    out = tmp / "dump"
    out.mkdir()
    subprocess.run([str(build / "model_dump"), str(out)], check=True)
    consts = dict(line.split(" ", 1) for line in (out / "consts.txt").read_text().splitlines())
    return out, consts


def test_single_model_round_trip(tmp_path: Path):
    audio = AudioConfig().with_seconds(1.0)
    blob = fake_tflite(5000, 1)
    b = bank()
    affine = (np.linspace(0.5, 2, 64), np.linspace(-3, 3, 64))
    files = write_c_model(
        tmp_path / "gen", blob, b, LABELS, audio,
        input_quant=QuantParams(0.4123, -12), output_quant=QuantParams(1 / 128, 3),
        arena_bytes=247008, input_affine=affine, logit_scale=33.37,
    )
    out, consts = dump(tmp_path / "gen", tmp_path)

    assert (out / "embed.tflite").read_bytes() == blob
    assert consts["embed_len"] == consts["embed_declared"] == str(len(blob))
    assert consts["embed_align16"] == "1"
    bank_q, scale = quantize_bank(b)
    assert np.array_equal(np.fromfile(out / "bank.i8", np.int8).reshape(bank_q.shape), bank_q)
    assert np.array_equal(files.bank_q, bank_q)
    assert float.fromhex(consts["bank_scale"]) == np.float32(scale) == np.float32(files.bank_scale)
    assert (out / "labels.txt").read_bytes().decode("utf-8").split("\0")[:-1] == LABELS
    both = np.fromfile(out / "affine.f32", np.float32)
    assert np.array_equal(both[:64], affine[0].astype(np.float32))
    assert np.array_equal(both[64:], affine[1].astype(np.float32))

    assert float.fromhex(consts["embed_input_scale"]) == np.float32(0.4123)
    assert int(consts["embed_input_zero_point"]) == -12
    assert float.fromhex(consts["embed_output_scale"]) == np.float32(1 / 128)
    assert int(consts["embed_output_zero_point"]) == 3
    assert int(consts["embed_arena"]) == 247008
    assert float.fromhex(consts["logit_scale"]) == np.float32(33.37)
    assert int(consts["n_classes"]) == len(LABELS) and int(consts["embed_dim"]) == 48
    expect = {"sample_rate": 44100, "n_fft": 1024, "win_length": 1024, "hop": 320, "n_mels": 64,
              "window_samples": 44100, "frames_per_window": 138}
    assert {k: int(consts[k]) for k in expect} == expect
    assert float.fromhex(consts["fmin"]) == 50.0 and float.fromhex(consts["fmax"]) == 14000.0

    manifest = json.loads((tmp_path / "gen" / "tinyclap_model.json").read_text())
    assert manifest["models"]["embed"]["bytes"] == len(blob)
    assert manifest["labels"] == LABELS and manifest["frames_per_window"] == 138
    assert files.flash_bytes >= len(blob) + bank_q.size
    names = {p.name for p in files.files}
    assert {"tinyclap_model.c", "tinyclap_model.h", "tc_logmel_config.h", "tc_logmel_tables.h"} <= names


def test_streaming_pair_round_trip(tmp_path: Path):
    """features + head, the head's output left float32 (no output quantisation)."""
    feats, head = fake_tflite(3001, 2), fake_tflite(777, 3)
    write_c_model(
        tmp_path / "gen",
        [ModelBlob("features", feats, QuantParams(0.3, -5), QuantParams(0.05, -128), 150000),
         ModelBlob("head", head, QuantParams(0.05, -128), None)],
        bank(3, 16), ["a", "b", "c"], AudioConfig().with_seconds(1.0),
    )
    out, consts = dump(tmp_path / "gen", tmp_path)
    assert (out / "features.tflite").read_bytes() == feats
    assert (out / "head.tflite").read_bytes() == head
    assert consts["features_align16"] == consts["head_align16"] == "1"
    assert consts["features_output_int8"] == "1" and consts["head_output_int8"] == "0"
    assert not (out / "affine.f32").exists() and "embed_len" not in consts


def test_generated_files_compile_as_cpp(tmp_path: Path):
    """The header is usable from C++ (TFLM) and the source compiles as C++ too (alignas branch)."""
    if shutil.which("c++") is None:
        pytest.skip("no C++ compiler")
    gen = tmp_path / "gen"
    write_c_model(gen, fake_tflite(100, 4), bank(), LABELS, AudioConfig(),
                  input_quant=QuantParams(0.5, 0), output_quant=QuantParams(0.01, 0))
    use = tmp_path / "use.cc"
    use.write_text('#include "tinyclap_model.h"\n#include "tc_classify.h"\n#include "tc_logmel.h"\n'
                   "int main() { return tc_classify(nullptr, 0, tc_bank, 0, TC_EMBED_DIM, nullptr) + 1; }\n")
    inc = [f"-I{gen}", f"-I{CSRC}"]
    subprocess.run(["c++", "-std=c++17", *WARN, *inc, "-c", str(use), "-o", str(tmp_path / "use.o")], check=True)
    subprocess.run(["c++", "-std=c++17", *WARN, *inc, "-x", "c++", "-c", str(gen / "tinyclap_model.c"),
                    "-o", str(tmp_path / "model.o")], check=True)
    symbols = subprocess.run(["nm", str(tmp_path / "model.o")], capture_output=True, text=True).stdout
    assert " R tc_embed_model" in symbols and " R tc_bank" in symbols  # C linkage, read-only


def test_literals_read_back_bit_exact(tmp_path: Path):
    """c_float / c_double / c_string literals, compiled, give back exactly the values written."""
    rng = np.random.default_rng(5)
    f32 = np.concatenate([
        rng.normal(size=200) * 10.0 ** rng.integers(-30, 30, 200),
        [0.0, -0.0, 1e-45, -1.4e-45, 3.4028235e38, 1.1754944e-38, 0.1, 1 / 3],
    ]).astype(np.float32)
    f64 = np.concatenate([rng.normal(size=200) * 10.0 ** rng.integers(-300, 300, 200),
                          [5e-324, 1.7976931348623157e308, 0.1]])
    text = LABELS + ["\x01\x7f\n", "??=??/", ""]
    src = tmp_path / "lit.c"
    src.write_text(
        "#include <stdio.h>\n#include <string.h>\n"
        f"static const float f[{len(f32)}] = {{\n{format_floats(f32)}\n}};\n"
        f"static const double d[{len(f64)}] = {{\n{format_floats(f64, np.float64)}\n}};\n"
        f"static const char *const s[{len(text)}] = {{ {', '.join(c_string(t) for t in text)} }};\n"
        "int main(int argc, char **argv) {\n"
        "    FILE *o = fopen(argv[1], \"wb\"); int i; (void)argc;\n"
        "    fwrite(f, sizeof f, 1, o); fwrite(d, sizeof d, 1, o);\n"
        f"    for (i = 0; i < {len(text)}; ++i) fwrite(s[i], strlen(s[i]) + 1, 1, o);\n"
        "    return fclose(o);\n}\n"
    )
    exe, out = tmp_path / "lit", tmp_path / "lit.bin"
    subprocess.run(["cc", "-std=c99", *WARN, "-o", str(exe), str(src)], check=True)
    subprocess.run([str(exe), str(out)], check=True)
    raw = out.read_bytes()
    n32, n64 = 4 * len(f32), 8 * len(f64)
    assert raw[:n32] == f32.tobytes()  # bitwise, including -0.0 and subnormals
    assert raw[n32 : n32 + n64] == f64.tobytes()
    assert raw[n32 + n64 :].decode("utf-8").split("\0")[:-1] == text
    assert c_float(0.1) == "1.0e-01f" and c_double(0.5) == "5.0e-01"


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(labels=["a", "b"]), "labels"),
        (dict(bank=np.full((len(LABELS), 8), np.nan)), "NaN"),
        (dict(bank=np.zeros((len(LABELS), 8))), "all zeros"),
        (dict(blob=b"not a flatbuffer at all"), "TFL3"),
        (dict(blob=[ModelBlob("my-model", fake_tflite(10, 0))]), "identifier"),
        (dict(blob=[ModelBlob("m", fake_tflite(10, 0)), ModelBlob("m", fake_tflite(10, 1))]), "unique"),
        (dict(input_affine=(np.ones(10), np.zeros(10))), "n_mels"),
        (dict(frames_per_window=0), "frames_per_window"),
        (dict(frames_per_window=691), "frames_per_window"),
        (dict(blob=[ModelBlob("head", fake_tflite(10, 0)), ModelBlob("HEAD", fake_tflite(10, 1))]), "unique"),
        (dict(bank=np.ones((len(LABELS), 70000))), "overflow"),
    ],
)
def test_bad_input_is_refused_before_writing(change: dict, match: str, tmp_path: Path):
    args = dict(blob=fake_tflite(64, 0), bank=bank(), labels=LABELS)
    args.update({k: v for k, v in change.items() if k in args})
    extra = {k: v for k, v in change.items() if k not in args}
    with pytest.raises(CodegenError, match=match):
        write_c_model(tmp_path / "gen", args["blob"], args["bank"], args["labels"], AudioConfig(), **extra)
    assert not (tmp_path / "gen" / "tinyclap_model.c").exists()


@pytest.mark.parametrize("scale, zp", [(0.0, 0), (-1.0, 0), (float("nan"), 0), (0.1, 128), (0.1, -129)])
def test_bad_quant_params(scale: float, zp: int):
    with pytest.raises(CodegenError):
        QuantParams(scale, zp)
