"""The C int8 classifier (tinyclap/firmware/csrc/tc_classify.c) against the Python int8 reference.

Both sides quantise the same way and score with the same integer arithmetic,
so the test demands identical scores, labels and top-k, not "close".
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinyclap.audio import AudioConfig, load_audio
from tinyclap.export.mcu import (
    classify_int8,
    int8_scores,
    quantize_affine,
    quantize_bank,
    quantize_embedding,
    topk_int8,
    write_frontend_tables,
)

REPO = Path(__file__).resolve().parent.parent
MCU = REPO / "examples" / "mcu"

pytestmark = pytest.mark.skipif(
    shutil.which("make") is None or shutil.which("cc") is None, reason="needs make and a C compiler"
)


@pytest.fixture(scope="module")
def tools(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("mcu_classify")
    gen = tmp / "gen"
    write_frontend_tables(gen, AudioConfig())
    out = tmp / "build"
    make = subprocess.run(["make", "-s", "-C", str(MCU), f"BUILD={out}", f"GEN={gen}", "host"],
                          capture_output=True, text=True)
    assert make.returncode == 0, make.stderr
    return out


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def c_classify(tools: Path, tmp: Path, mode: str, emb: np.ndarray, zp: int, bank_q: np.ndarray, k: int):
    batch, dim = emb.shape
    classes = bank_q.shape[0]
    ef, bf, out = tmp / "emb.bin", tmp / "bank.i8", tmp / "out"
    np.ascontiguousarray(emb).tofile(ef)
    np.ascontiguousarray(bank_q).tofile(bf)
    subprocess.run([str(tools / "classify_host"), mode, str(ef), str(batch), str(dim), str(zp), str(bf),
                    str(classes), str(k), str(out)], check=True)
    res = {
        "scores": np.fromfile(f"{out}.scores", np.int32).reshape(batch, classes),
        "best": np.fromfile(f"{out}.best", np.int32),
        "topk": np.fromfile(f"{out}.topk", np.int32).reshape(batch, -1),
    }
    if mode == "float":
        res["q"] = np.fromfile(f"{out}.q", np.int8).reshape(batch, dim)
        res["scale"] = np.fromfile(f"{out}.scale", np.float32)
    return res


def embeddings(bank: np.ndarray, rng: np.random.Generator, n: int = 300) -> dict[str, np.ndarray]:
    """Random unit vectors, and bank rows plus noise (clear winners, and near-ties)."""
    c, d = bank.shape
    sets = {"random": unit(rng.normal(size=(n, d)))}
    for sigma in (0.02, 0.05, 0.1):
        rows = bank[rng.integers(0, c, n)]
        sets[f"row+{sigma}"] = unit(rows + rng.normal(scale=sigma, size=rows.shape))
    return sets


@pytest.mark.parametrize("zp", [0, -7])
def test_int8_embeddings_same_labels_as_python(zp: int, tools: Path, tmp_path: Path):
    """TFLite-style int8 outputs (scale 1/128, zero point zp) scored in C and in Python."""
    rng = np.random.default_rng(1)
    bank = unit(rng.normal(size=(50, 256)))
    bank_q, bank_scale = quantize_bank(bank)
    agree_float = []
    for name, emb in embeddings(bank, rng).items():
        emb_q = quantize_affine(emb, 1 / 128, zp)
        got = c_classify(tools, tmp_path, "int8", emb_q, zp, bank_q, k=5)
        want_scores = int8_scores(emb_q, zp, bank_q)
        assert np.array_equal(got["scores"], want_scores), name
        assert np.array_equal(got["best"], classify_int8(emb_q, zp, bank_q)), name
        assert np.array_equal(got["topk"], np.stack([topk_int8(s, 5) for s in want_scores])), name
        agree_float.append((name, float(np.mean(got["best"] == np.argmax(emb @ bank.T, axis=1)))))
    print("\nint8 vs float32-cosine argmax agreement:", ", ".join(f"{n} {a:.3f}" for n, a in agree_float))
    for name, agree in agree_float:
        if name.startswith("row+"):
            assert agree >= 0.99, (name, agree)  # a clear winner survives int8


def test_float_embeddings_quantised_identically(tools: Path, tmp_path: Path):
    """tc_quantize_embedding and quantize_embedding agree bit for bit, so the labels do too."""
    rng = np.random.default_rng(2)
    bank = unit(rng.normal(size=(10, 128)))
    bank_q, _ = quantize_bank(bank)
    for name, emb in embeddings(bank, rng, 200).items():
        emb = emb * rng.uniform(0.1, 3.0, size=(len(emb), 1)).astype(np.float32)  # not only unit norm
        got = c_classify(tools, tmp_path, "float", emb, 0, bank_q, k=3)
        q, scales = quantize_embedding(emb)
        assert np.array_equal(got["q"], q), name
        assert np.array_equal(got["scale"], scales), name
        assert np.array_equal(got["best"], classify_int8(q, 0, bank_q)), name
    zero = c_classify(tools, tmp_path, "float", np.zeros((1, 128), np.float32), 0, bank_q, k=3)
    assert zero["scale"][0] == 0 and not zero["q"].any() and zero["best"][0] == 0


def test_ties_go_to_the_lowest_index(tools: Path, tmp_path: Path):
    rng = np.random.default_rng(3)
    bank = unit(rng.normal(size=(12, 64)))
    bank[[5, 9]] = bank[2]  # three identical prompts: every score ties between them
    bank_q, _ = quantize_bank(bank)
    emb = unit(bank[2] + rng.normal(scale=0.01, size=(40, 64)))
    emb_q = quantize_affine(emb, 1 / 128, 0)
    got = c_classify(tools, tmp_path, "int8", emb_q, 0, bank_q, k=4)
    assert np.all(got["best"] == 2)
    assert np.array_equal(got["topk"][:, :3], np.tile([2, 5, 9], (40, 1)))
    assert np.array_equal(got["best"], classify_int8(emb_q, 0, bank_q))
    # k larger than the number of classes gives every class once.
    allk = c_classify(tools, tmp_path, "int8", emb_q[:1], 0, bank_q, k=20)
    assert sorted(allk["topk"][0].tolist()) == list(range(12))


def test_quantize_matches_tflite_rounding(tools: Path, tmp_path: Path):
    """tc_quantize == quantize_affine: half away from zero (not numpy's half to even), clamped, NaN -> zp."""
    halves = (np.arange(-600, 600) + 0.5) * 0.25  # exact halves after division by 0.25
    x = np.concatenate([halves, [np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, -0.0]]).astype(np.float32)
    for scale, zp in ((0.25, -3), (0.0732, 17), (1 / 128, 0)):
        src, dst = tmp_path / "x.f32", tmp_path / "q.i8"
        x.tofile(src)
        subprocess.run([str(tools / "classify_host"), "affine", str(src), float(np.float32(scale)).hex(),
                        str(zp), str(dst)], check=True)
        assert np.array_equal(np.fromfile(dst, np.int8), quantize_affine(x, scale, zp)), (scale, zp)
    assert quantize_affine(np.float32(0.125), 0.25, 0) == 1  # np.round would give 0
    assert quantize_affine(np.float32(np.nan), 0.25, 5) == 5


def test_bank_quantisation():
    rng = np.random.default_rng(4)
    bank = unit(rng.normal(size=(20, 96)))
    q, scale = quantize_bank(bank)
    assert q.dtype == np.int8 and np.abs(q).max() == 127 and q.min() >= -127
    assert scale == pytest.approx(np.abs(bank).max() / 127, rel=1e-6)
    assert np.abs(q * scale - bank).max() <= scale / 2 * (1 + 1e-5)


def test_real_clips_through_c_frontend_and_student(esc10_files, tools: Path, tmp_path: Path):
    """Real ESC-10 clips -> C log-mel -> a tiny (untrained) student -> int8 -> C classify == Python."""
    torch = pytest.importorskip("torch")
    try:
        from tinyclap.students import AudioStudent, StudentConfig
    except ImportError:
        pytest.skip("tinyclap.students not available")
    from tinyclap.audio import fit_length

    audio = AudioConfig().with_seconds(1.0)
    torch.manual_seed(0)
    student = AudioStudent(
        StudentConfig(alpha=0.25, beta=0.75, t0=4, num_layers=4, embed_width=64, dim=32, head_act="relu"),
        audio,
    ).eval()
    files = esc10_files[::20]  # 20 clips, two per class
    mels_c, mels_py = [], []
    for path in files:
        wave = fit_length(load_audio(path, audio.sample_rate), audio.clip_samples)
        src, dst = tmp_path / "w.f32", tmp_path / "m.f32"
        wave.tofile(src)
        subprocess.run([str(tools / "logmel_host"), "buffer", str(src), str(dst)], check=True)
        mels_c.append(np.fromfile(dst, np.float32).reshape(-1, audio.n_mels))
        with torch.inference_mode():
            mels_py.append(student.frontend(torch.from_numpy(wave))[0].numpy())
    with torch.no_grad():
        # BatchNorm statistics from these clips (as training would set them):
        # an untrained student with default statistics maps every clip to
        # nearly the same vector.
        for mod in student.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.reset_running_stats()
                mod.momentum = None
        student.train()
        student(torch.from_numpy(np.stack(mels_py)))
        student.eval()
        emb_c = student(torch.from_numpy(np.stack(mels_c))).numpy()
        emb_py = student(torch.from_numpy(np.stack(mels_py))).numpy()
    assert np.abs(emb_c - emb_py).max() < 1e-3  # the C front end feeds the student what Python does

    # A bank in the student's own space: half the clips' embeddings as "prompts".
    bank = emb_py[::2]
    bank_q, _ = quantize_bank(bank)
    emb_q = quantize_affine(emb_c, 1 / 128, 0)
    got = c_classify(tools, tmp_path, "int8", emb_q, 0, bank_q, k=3)
    assert np.array_equal(got["best"], classify_int8(emb_q, 0, bank_q))
    assert np.array_equal(got["scores"], int8_scores(emb_q, 0, bank_q))
    agree = float(np.mean(got["best"] == np.argmax(emb_py @ bank.T, axis=1)))
    print(f"\nreal clips: C front end + int8 classify vs Python float path agree on {agree:.2f}")
    assert np.array_equal(got["best"][::2], np.arange(len(bank)))  # each bank clip finds itself
