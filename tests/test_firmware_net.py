"""The exported int8 network as plain C (tinyclap.firmware.netgen + csrc/tc_nn.c) against TensorFlow Lite Micro.

A tiny student (random weights, BatchNorms calibrated on real clips) is exported
as the device runs it (streaming: ``features`` on 0.64 s windows, ``head`` on
the mean pooled vector), turned into C, built with the host compiler under the
firmware's warning flags, and run on every window of 40 clips: the int8 outputs
must equal the tflite-micro Python interpreter's exactly (``np.array_equal``),
and the generated arena (plus the caller's input and output buffers) must not
exceed the arena TFLM measures for the same model.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("litert_torch", reason="the tflite extra is not installed: pip install tinyclap[tflite]")
pytest.importorskip("tflite_micro", reason="the tflite extra is not installed: pip install tinyclap[tflite]")
pytest.importorskip("ai_edge_litert", reason="the tflite extra is not installed: pip install tinyclap[tflite]")

from export_support import TEST_AUDIO, TINY, calibration, load_clips, tiny_student  # noqa: E402

from tinyclap.audio import fit_length  # noqa: E402
from tinyclap.data.synth import render  # noqa: E402
from tinyclap.export.streaming import FeaturesGraph, HeadGraph, mel_affine, plan_window  # noqa: E402
from tinyclap.export.tflite import TfliteModel, export_tflite_int8  # noqa: E402
from tinyclap.export.tflm import TflmModel  # noqa: E402
from tinyclap.firmware.netgen import Buffer, NetgenError, plan_arena, quantize_multiplier, write_c_network  # noqa: E402
from tinyclap.students import AudioStudent  # noqa: E402

CSRC = Path(__file__).resolve().parent.parent / "tinyclap" / "firmware" / "csrc"
WARN = (
    "-Wall -Wextra -Werror -pedantic -Wshadow -Wdouble-promotion -Wconversion -Wstrict-prototypes -Wmissing-prototypes"
).split()
CFLAGS = ["-std=c99", "-O2", *WARN]
ARM = ["-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard", "-mthumb"]
HOST_CC = shutil.which("gcc") or shutil.which("cc")
N_CLIPS = 40
WINDOW = 0.5  # seconds asked for; 64 frames (0.64 s) after aligning to the tiny student's stride


def build_host(nf, out: Path, single_rounding: bool = False) -> Path:
    """Host build of net_host.c + the generated network + tc_nn.c, with the firmware's -Werror flags."""
    if HOST_CC is None:
        pytest.skip("no host C compiler (gcc/cc)")
    exe = out / f"net_host_{nf.name}{'_sr' if single_rounding else ''}"
    cmd = [
        HOST_CC,
        *CFLAGS,
        f"-DTC_NN_SINGLE_ROUNDING={int(single_rounding)}",
        f"-DTC_NET_NAME={nf.name}",
        f"-DTC_NET_UPPER={nf.name.upper()}",
        f'-DTC_NET_HEADER="{nf.h_path.name}"',
        f"-I{CSRC}",
        f"-I{CSRC / 'host'}",
        f"-I{nf.c_path.parent}",
        str(CSRC / "host" / "net_host.c"),
        str(nf.c_path),
        str(CSRC / "tc_nn.c"),
        "-lm",
        "-o",
        str(exe),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-4000:]
    return exe


def run_c(exe: Path, x: np.ndarray, out_dtype: np.dtype, out_size: int) -> np.ndarray:
    work = exe.parent
    (work / "in.bin").write_bytes(np.ascontiguousarray(x).tobytes())
    r = subprocess.run([str(exe), str(work / "in.bin"), str(work / "out.bin")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return np.frombuffer((work / "out.bin").read_bytes(), dtype=out_dtype).reshape(len(x), out_size)


def tflm_run(model: TflmModel, x: np.ndarray) -> np.ndarray:
    return model.run_int8(x).reshape(len(x), -1)


@pytest.fixture(scope="module")
def clip_files(request):
    """ESC-10 files from the shared fixture (real, or its generated stand-in); None where there are none."""
    try:
        return request.getfixturevalue("esc10_files")
    except pytest.skip.Exception:
        return None


def synth_clips(n: int, seed: int = 7) -> list[np.ndarray]:
    return [fit_length(render(seed, i, TEST_AUDIO).audio, TEST_AUDIO.clip_samples) for i in range(n)]


@pytest.fixture(scope="module")
def net(tmp_path_factory, clip_files):
    """features + head exported as the device runs them, in TFLite and in C; inputs from 40 clips."""
    tmp = tmp_path_factory.mktemp("netc")
    if clip_files is not None:
        calib_clips, test_clips = load_clips(clip_files, 8), load_clips(clip_files, N_CLIPS, offset=3)
        source = "esc10"
    else:
        calib_clips, test_clips = synth_clips(8, seed=3), synth_clips(N_CLIPS)
        source = "synth"
    student = tiny_student(calib_clips)
    windowing = plan_window(student, WINDOW)
    scale, shift = mel_affine(student)
    calib = calibration(calib_clips)
    cal_windows = calib.windows(windowing).numpy()
    mapped = (cal_windows.reshape(-1, *cal_windows.shape[2:]) * scale + shift).astype(np.float32)
    with torch.no_grad():
        pooled = FeaturesGraph(student, fold_bn0=True)(torch.from_numpy(mapped))
    paths = {
        "features": export_tflite_int8(
            FeaturesGraph(student, fold_bn0=True),
            [torch.from_numpy(mapped[i : i + 16]) for i in range(0, len(mapped), 16)],
            tmp / "features.int8.tflite",
        ),
        "head": export_tflite_int8(HeadGraph(student), [pooled], tmp / "head.int8.tflite"),
    }
    gen = tmp / "gen"
    nets = {name: write_c_network(p, gen, name) for name, p in paths.items()}
    tflm = {name: TflmModel(p) for name, p in paths.items()}
    lite = {name: TfliteModel(p) for name, p in paths.items()}

    def window_inputs(clips: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        w = calibration(clips).windows(windowing).numpy()  # (clips, W, frames, mels) raw dB
        x = lite["features"].quantize_input((w * scale + shift).astype(np.float32))
        return x.reshape(-1, *x.shape[2:]), np.repeat(np.arange(len(clips)), w.shape[1])

    x_feat, clip_of = window_inputs(test_clips)
    return {
        "tmp": tmp,
        "paths": paths,
        "nets": nets,
        "tflm": tflm,
        "lite": lite,
        "x_features": x_feat,
        "clip_of": clip_of,
        "source": source,
        "window_inputs": window_inputs,
        "student": student,
    }


def _head_inputs(net, feats_out: np.ndarray, clip_of: np.ndarray) -> np.ndarray:
    """The device's head input: dequantised window vectors, averaged per clip, quantised."""
    f = net["lite"]["features"]
    pooled = f.dequantize_output(feats_out)
    mean = np.stack([pooled[clip_of == c].mean(axis=0) for c in np.unique(clip_of)])
    return net["lite"]["head"].quantize_input(mean)


def test_features_and_head_bit_identical_to_tflm(net):
    nets, tflm = net["nets"], net["tflm"]
    x = net["x_features"]
    assert len(np.unique(net["clip_of"])) == N_CLIPS and len(x) >= 2 * N_CLIPS  # every window of 40 clips
    exe = build_host(nets["features"], net["tmp"])
    want = tflm_run(tflm["features"], x)
    got = run_c(exe, x, np.int8, nets["features"].output.size)
    assert got.shape == want.shape == (len(x), 32)
    assert np.array_equal(got, want), f"{int((got != want).sum())} of {got.size} int8 values differ"
    assert len(np.unique(want)) > 8  # a real signal, not a saturated constant

    h = _head_inputs(net, want, net["clip_of"])
    rng = np.random.default_rng(0)
    h = np.concatenate([h, rng.integers(-128, 128, size=(20, h.shape[1])).astype(np.int8)])  # and off-distribution rows
    exe_h = build_host(nets["head"], net["tmp"])
    want_h = tflm_run(tflm["head"], h)
    got_h = run_c(exe_h, h, np.int8, nets["head"].output.size)
    assert np.array_equal(got_h, want_h), f"{int((got_h != want_h).sum())} of {got_h.size} int8 values differ"


def test_synth_clips_bit_identical(net):
    """Generated clips (tinyclap.data.synth) straight through the same networks: no recordings needed."""
    x, clip_of = net["window_inputs"](synth_clips(N_CLIPS))
    nets, tflm = net["nets"], net["tflm"]
    want = tflm_run(tflm["features"], x)
    got = run_c(build_host(nets["features"], net["tmp"]), x, np.int8, nets["features"].output.size)
    assert np.array_equal(got, want)
    h = _head_inputs(net, want, clip_of)
    got_h = run_c(build_host(nets["head"], net["tmp"]), h, np.int8, nets["head"].output.size)
    assert np.array_equal(got_h, tflm_run(tflm["head"], h))


def test_single_rounding_build_is_not_what_tflm_computes(net):
    """The wheel's TFLM uses gemmlowp's double rounding: the TFLITE_SINGLE_ROUNDING variant differs somewhere."""
    nets, tflm, x = net["nets"], net["tflm"], net["x_features"]
    want = tflm_run(tflm["features"], x)
    got = run_c(
        build_host(nets["features"], net["tmp"], single_rounding=True), x, np.int8, nets["features"].output.size
    )
    # One-step rounding differences in early layers grow through the network (measured: most
    # pooled values differ, by up to 23 steps): bit-identity needs the right rounding.
    assert (got != want).any()


def test_arena_fits_in_tflms(net):
    for name, nf in net["nets"].items():
        tflm_arena = net["tflm"][name].arena_bytes()
        io = nf.input.size + nf.output.size * (4 if nf.output.dtype == "float32" else 1)
        assert 0 < nf.arena_bytes and nf.arena_bytes + io <= tflm_arena, (name, nf.arena_bytes, io, tflm_arena)
        # the plan itself: aligned, and buffers alive at the same time never share bytes
        assert nf.arena_bytes % 16 == 0
        bufs = nf.buffers
        for i, a in enumerate(bufs):
            oa = nf.offsets[a.name]
            assert oa % 16 == 0 and oa + a.size <= nf.arena_bytes
            for b in bufs[i + 1 :]:
                if a.last < b.first or b.last < a.first:
                    continue
                ob = nf.offsets[b.name]
                assert oa + a.size <= ob or ob + b.size <= oa, (a, b)
        # and it is tight: the most bytes alive at any one op is a lower bound no plan can beat
        peak = max(sum(-(-x.size // 16) * 16 for x in bufs if x.first <= i <= x.last) for i in range(len(nf.ops)))
        assert peak <= nf.arena_bytes <= peak + 64, (name, peak, nf.arena_bytes)
        h = nf.h_path.read_text()
        assert f"#define TC_NET_{name.upper()}_ARENA_BYTES {nf.arena_bytes}u" in h
        assert f"#define TC_NET_{name.upper()}_INPUT_SIZE {nf.input.size}u" in h


def test_generated_network_describes_its_graph(net):
    f, h = net["nets"]["features"], net["nets"]["head"]
    lite = net["lite"]
    assert f.input.shape == (1, 64, 32) and f.output.shape == (1, 32)
    assert (f.input.dtype, f.output.dtype, h.output.dtype) == ("int8", "int8", "int8")
    assert f.input.scale == pytest.approx(lite["features"].input.quant.scale)
    assert f.input.zero_point == lite["features"].input.quant.zero_point
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "PAD", "TRANSPOSE"} <= set(f.ops)
    assert {"FULLY_CONNECTED", "QUANTIZE", "DEQUANTIZE", "RSQRT", "SUM", "SQUARED_DIFFERENCE"} <= set(h.ops)
    src = f.c_path.read_text()
    assert "int tc_net_features_invoke(uint8_t *arena, const int8_t *input, int8_t *output)" in src
    assert "static const int8_t TC_ALIGN16" in src and "malloc" not in src


def test_arm_cortex_m7_build(net):
    """The kernels and both generated networks compile for a Cortex-M7 with -Werror, with no double arithmetic."""
    cc = shutil.which("arm-none-eabi-gcc")
    if cc is None:
        pytest.skip("arm-none-eabi-gcc is not installed (apt-get install gcc-arm-none-eabi)")
    out = net["tmp"] / "arm"
    out.mkdir(exist_ok=True)
    sources = [CSRC / "tc_nn.c", *(nf.c_path for nf in net["nets"].values())]
    for fpu in (ARM, ["-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-mthumb"]):
        objs = []
        for src in sources:
            obj = out / f"{src.stem}_{fpu[0][6:]}.o"
            r = subprocess.run(
                [cc, *CFLAGS, *fpu, f"-I{CSRC}", "-c", str(src), "-o", str(obj)], capture_output=True, text=True
            )
            assert r.returncode == 0, r.stderr[-4000:]
            objs.append(obj)
        size = shutil.which("arm-none-eabi-size")
        if size is not None and fpu is ARM:  # weights_bytes (what the bundle budgets) is the flash the compiler places
            for nf, obj in zip(net["nets"].values(), objs[1:]):
                table = subprocess.run([size, "-A", str(obj)], capture_output=True, text=True).stdout
                rodata = sum(int(ln.split()[1]) for ln in table.splitlines() if ln.startswith(".rodata"))
                assert abs(rodata - nf.weights_bytes) <= 64 + nf.weights_bytes // 100, (
                    nf.name,
                    rodata,
                    nf.weights_bytes,
                )
        nm = shutil.which("arm-none-eabi-nm")
        if nm is not None:
            undefined = subprocess.run([nm, "-u", *map(str, objs)], capture_output=True, text=True).stdout
            assert "__aeabi_d" not in undefined, undefined  # no software double routines on a single-precision FPU


def _qemu_image(nf, out: Path, dsp: bool) -> Path:
    """net_qemu.c + the network + tc_nn.c + the firmware's startup, linked for QEMU's mps2-an500 (Cortex-M7)."""
    ld_in = CSRC / "tc_link.ld.in"
    ld = out / "tc_link.ld"
    values = {
        "BOARD": "mps2-an500",
        "TARGET": "net-test",
        "FLASH_ORIGIN": "0x00000000",
        "FLASH_LENGTH": "4M",
        "RAM_ORIGIN": "0x20000000",
        "RAM_LENGTH": "4M",
        "STACK_BYTES": "16384",
    }
    text = ld_in.read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    assert not re.search(r"@[A-Z_]+@", text), "unknown placeholder in tc_link.ld.in"
    ld.write_text(text)
    elf = out / f"net_{nf.name}{'' if dsp else '_nodsp'}.elf"
    cmd = [
        "arm-none-eabi-gcc",
        *CFLAGS,
        *ARM,
        "-ffunction-sections",
        "-fdata-sections",
        *([] if dsp else ["-DTC_NN_NO_DSP"]),
        f"-DTC_NET_NAME={nf.name}",
        f"-DTC_NET_UPPER={nf.name.upper()}",
        f'-DTC_NET_HEADER="{nf.h_path.name}"',
        f"-I{CSRC}",
        f"-I{nf.c_path.parent}",
        "-T",
        str(ld),
        "-nostartfiles",
        "--specs=rdimon.specs",
        "-Wl,--gc-sections",
        "-o",
        str(elf),
        str(CSRC / "host" / "net_qemu.c"),
        str(nf.c_path),
        str(CSRC / "tc_nn.c"),
        str(CSRC / "tc_startup_cm.c"),
        "-lm",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-4000:]
    objdump = shutil.which("arm-none-eabi-objdump")
    if objdump is not None:  # the build under test is the one named
        code = subprocess.run([objdump, "-d", str(elf)], capture_output=True, text=True).stdout
        assert ("smlad" in code) == dsp
    return elf


def _run_qemu(elf: Path, x: np.ndarray, out_size: int) -> np.ndarray:
    work = elf.parent
    (work / "net_in.bin").write_bytes(np.ascontiguousarray(x).tobytes())
    (work / "net_out.bin").unlink(missing_ok=True)
    r = subprocess.run(
        [
            "qemu-system-arm",
            "-M",
            "mps2-an500",
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "none",
            "-semihosting-config",
            "enable=on,target=native",
            "-kernel",
            str(elf),
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    return np.frombuffer((work / "net_out.bin").read_bytes(), np.int8).reshape(len(x), out_size)


def test_cortex_m7_in_qemu_bit_identical(net):
    """The ARM build itself, run on an emulated Cortex-M7 (with and without the SMLAD path): TFLM's outputs."""
    missing = [t for t in ("arm-none-eabi-gcc", "qemu-system-arm") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (apt-get install gcc-arm-none-eabi qemu-system-arm)")
    if not (CSRC / "tc_startup_cm.c").is_file() or not (CSRC / "tc_link.ld.in").is_file():
        pytest.skip("the firmware's Cortex-M startup (tc_startup_cm.c, tc_link.ld.in) is not in csrc/")
    nets, tflm, x = net["nets"], net["tflm"], net["x_features"]
    want = tflm_run(tflm["features"], x)
    h = _head_inputs(net, want, net["clip_of"])
    want_h = tflm_run(tflm["head"], h)
    for dsp in (True, False):
        out = net["tmp"] / f"qemu{'_dsp' if dsp else ''}"
        out.mkdir(exist_ok=True)
        got = _run_qemu(_qemu_image(nets["features"], out, dsp), x, nets["features"].output.size)
        assert np.array_equal(got, want), (dsp, int((got != want).sum()))
        got_h = _run_qemu(_qemu_image(nets["head"], out, dsp), h, nets["head"].output.size)
        assert np.array_equal(got_h, want_h), (dsp, int((got_h != want_h).sum()))


class _Unusual(torch.nn.Module):
    """Shapes our students do not have, for the kernels' general paths: SAME padding with stride 2,
    a dilated grouped convolution, depth multiplier 2 with padding, int8 MUL, float broadcast ADD,
    float TRANSPOSE and MEAN over a 4-D tensor."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(1, 6, 3, stride=2, padding=1)
        self.c2 = torch.nn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=2)
        self.dw = torch.nn.Conv2d(6, 12, 3, padding=1, groups=6)
        self.c3 = torch.nn.Conv2d(12, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.c1(x.unsqueeze(1)))
        b = torch.clamp(self.c2(a), 0, 6) + a
        d = self.c3(self.dw(b))
        return (d * d + d.mean(dim=(2, 3), keepdim=True)).mean(dim=(2, 3))


def test_unusual_shapes_bit_identical(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(32, 15, 11)  # odd sizes: padding differs on the two sides
    path = export_tflite_int8(_Unusual().eval(), [x[:16], x[16:]], tmp_path / "unusual.int8.tflite")
    nf = write_c_network(path, tmp_path / "gen", "unusual")
    assert {"DEPTHWISE_CONV_2D", "CONV_2D", "MUL", "ADD", "TRANSPOSE", "MEAN", "QUANTIZE"} <= set(nf.ops)
    src = nf.c_path.read_text()
    for feature in (".dil_h = 2", ".filter_in_c = 3", ".depth_mult = 2", ".stride_h = 2", ".folded = 0"):
        assert feature in src, feature  # the general paths are really exercised
    lite, tflm = TfliteModel(path), TflmModel(path)
    q = np.concatenate([lite.quantize_input(torch.randn(40, 15, 11).numpy() * s) for s in (1.0, 3.0)])
    want = tflm_run(tflm, q)
    got = run_c(build_host(nf, tmp_path), q, np.int8, nf.output.size)
    assert np.array_equal(got, want), f"{int((got != want).sum())} of {got.size} int8 values differ"
    assert nf.arena_bytes + nf.input.size + nf.output.size <= tflm.arena_bytes()


def test_unsupported_op_is_refused(tmp_path):
    """A GELU head converts for LiteRT, but the C kernels have no GELU: refused at generation, naming it."""
    student = AudioStudent(TINY.replace(head_act="gelu"), TEST_AUDIO).eval()
    path = export_tflite_int8(HeadGraph(student), [torch.randn(4, student.embed_width)], tmp_path / "head.int8.tflite")
    with pytest.raises(NetgenError, match=r"GELU is not supported in plain C"):
        write_c_network(path, tmp_path / "gen", "head")
    assert not (tmp_path / "gen" / "head_net.c").exists()


def test_bad_inputs_are_refused(tmp_path, net):
    with pytest.raises(NetgenError, match="not a .tflite"):
        write_c_network(b"definitely not a flatbuffer", tmp_path, "x")
    with pytest.raises(NetgenError, match="C identifier"):
        write_c_network(net["paths"]["head"], tmp_path, "my-net")


def test_quantize_multiplier_is_tflites():
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(1.0) == (1 << 30, 1)
    assert quantize_multiplier(0.75) == (3 << 29, 0)
    assert quantize_multiplier(1 - 2.0**-40) == (1 << 30, 1)  # q rounds up to 2^31: renormalised
    assert quantize_multiplier(2.0**-40) == (0, 0)  # shift below -31: flushed to zero
    # round half away from zero (not Python's half to even): q * 2^31 = 2^30 + 0.5 rounds up
    assert quantize_multiplier(0.5 + 2.0**-32) == ((1 << 30) + 1, 0)


def test_plan_arena_shares_bytes_only_between_disjoint_lifetimes():
    bufs = [Buffer("a", 100, 0, 1), Buffer("b", 50, 1, 2), Buffer("c", 100, 2, 3), Buffer("d", 10, 3, 3)]
    offsets, total = plan_arena(bufs)
    assert offsets["a"] == offsets["c"] == 0  # a dies before c is born: same bytes
    assert offsets["b"] >= 112 and offsets["b"] % 16 == 0
    assert total == 176 and offsets["d"] not in range(offsets["c"], offsets["c"] + 100)


@pytest.mark.slow
def test_mcu_cortex_m4_preset_bit_identical(tmp_path, clip_files):
    """The quickstart's deployable student (mcu_cortex_m4, 1 s whole-window embed model, 79 ops) on 40 clips."""
    from tinyclap.export.streaming import EmbedGraph
    from tinyclap.students import load_preset

    config, audio = load_preset("mcu_cortex_m4")
    if clip_files is not None:
        calib_clips = load_clips(clip_files, 8, audio)
        test_clips = load_clips(clip_files, N_CLIPS, audio, offset=5)
    else:
        calib_clips = [fit_length(render(3, i, audio).audio, audio.clip_samples) for i in range(8)]
        test_clips = [fit_length(render(7, i, audio).audio, audio.clip_samples) for i in range(N_CLIPS)]
    student = tiny_student(calib_clips, config, audio)
    windowing = plan_window(student)
    scale, shift = mel_affine(student)

    def mapped(clips):
        w = calibration(clips, audio).windows(windowing).numpy()
        return (w.reshape(-1, *w.shape[2:]) * scale + shift).astype(np.float32)

    cal = mapped(calib_clips)
    path = export_tflite_int8(
        EmbedGraph(student, fold_bn0=True),
        [torch.from_numpy(cal[i : i + 4]) for i in range(0, len(cal), 4)],
        tmp_path / "embed.int8.tflite",
    )
    nf = write_c_network(path, tmp_path / "gen", "embed")
    lite, tflm = TfliteModel(path), TflmModel(path)
    x = lite.quantize_input(mapped(test_clips))
    assert len(x) == N_CLIPS
    want = tflm_run(tflm, x)
    got = run_c(build_host(nf, tmp_path), x, np.int8, nf.output.size)
    assert np.array_equal(got, want), f"{int((got != want).sum())} of {got.size} int8 values differ"
    assert nf.arena_bytes + nf.input.size + nf.output.size <= tflm.arena_bytes()
