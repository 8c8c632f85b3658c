"""Hardware-aware scaling: measured profiles against independent counts, the fit search, the CLI."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from tinyclap.cli import main
from tinyclap.errors import BudgetError
from tinyclap.students import AudioStudent, StudentConfig
from tinyclap.students.encoder import GlobalMeanPool
from tinyclap.students.phinet import Add
from tinyclap.students.scaling import (
    Budget,
    SizeError,
    fit,
    format_bytes,
    parse_count,
    parse_duration,
    parse_size,
    profile,
    profile_module,
)

REF = StudentConfig(1.5, 0.75, 6, 7)


# ---- sizes


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1MB", 1 << 20), ("256KB", 256 << 10), ("2MiB", 2 << 20), ("512 kb", 512 << 10), ("1.5M", 3 << 19),
     ("1048576", 1 << 20), ("100B", 100), ("1_000", 1000), (4096, 4096), ("1GB", 1 << 30)],
)  # fmt: skip
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("60M", 60_000_000), ("1.5G", 1_500_000_000), ("250k", 250_000), ("60MMACs", 60_000_000),
                           ("1,000,000", 1_000_000), ("7", 7)],
)  # fmt: skip
def test_parse_count(text, expected):
    assert parse_count(text) == expected


def test_parse_duration_and_errors():
    assert parse_duration("1s") == 1.0 and parse_duration("500ms") == 0.5 and parse_duration("5") == 5.0
    assert parse_duration("2.5 sec") == 2.5
    for bad, parse in [("1XB", parse_size), ("MB", parse_size), ("-1MB", parse_size), ("0", parse_size),
                       ("1Mi", parse_count), ("1h", parse_duration), ("0s", parse_duration)]:  # fmt: skip
        with pytest.raises(SizeError):
            parse(bad)


# ---- profiles


class TinyNet(nn.Module):
    """Small enough to count by hand (see the test below)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 1)
        self.add = Add()
        self.pool = GlobalMeanPool()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        y = self.act(self.bn1(self.conv1(x)))  # (4, 8, 8)
        return self.fc(self.pool(self.add(self.conv2(y), y)))


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_profile_of_a_hand_countable_net(device):
    p = profile_module(TinyNet().to(device).eval(), (1, 1, 8, 8), device=device)
    assert p["params"] == 36 + 8 + (16 + 4) + (12 + 3)
    assert p["macs"] == 4 * 64 * 9 + 4 * 64 * 4 + 3 * 4  # conv1, conv2, fc
    # int8 weights + float32 scale and int64 zero point per out channel + int32 bias where there
    # is one (bn1 folds into conv1)
    assert p["flash_bytes"] == (36 + 48 + 16) + (16 + 48 + 16) + (12 + 36 + 12)
    # Peak at the add: y (kept alive for the skip), conv2's output and the sum, 256 bytes each.
    assert p["ram_bytes"] == 3 * 256 and p["peak_layer"] == "add"
    live = {layer.name: layer.live_bytes for layer in p["layers"]}
    assert live["conv1"] == 64 + 256  # input + output
    assert live["conv2"] == 512 and live["fc"] == 4 + 3
    fused = {layer.name for layer in p["layers"] if layer.fused}
    assert fused == {"bn1", "act"}  # written in place: conv1's output has no other reader


def test_an_activation_whose_input_is_read_later_is_not_fused():
    class Branch(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.act, self.add = nn.Linear(8, 8), nn.ReLU(), Add()

        def forward(self, x):
            e = self.fc(x)
            return self.add(e, self.act(e))  # e is still needed after the ReLU

    p = profile_module(Branch().eval(), (1, 8), device="cpu")
    assert {layer.name: layer.fused for layer in p["layers"]}["act"] is False
    assert p["ram_bytes"] == 3 * 8


def test_student_profile_matches_independent_counts():
    p = profile(REF, 690, 64)
    student = AudioStudent(REF, frontend=False).eval()
    assert p.params == sum(q.numel() for q in student.parameters()) == 4_434_547
    with FlopCounterMode(display=False) as flops, torch.no_grad():
        student(torch.zeros(1, 690, 64))
    assert p.macs == flops.get_total_flops() // 2  # PyTorch counts a multiply-add as 2 flops
    # Flash by a hand rule: every conv/linear weight as int8, 12 bytes of quantisation per output
    # channel, an int32 bias per output channel of the convs followed by BatchNorm (named .conv, the stem's
    # pointwise) and of the 1x1 head conv (has a bias); float32 LayerNorm; bn0 as 2 floats per mel.
    flash = 0
    for name, m in student.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            out = m.weight.shape[0]
            biased = name.endswith(".conv") or name in ("backbone.stem.pointwise", "conv")
            flash += m.weight.numel() + 12 * out + (4 * out if biased else 0)
    flash += 4 * 2 * 1024 + 8 * 64
    assert p.flash_bytes == flash
    # The peak: block 1 expands 36 -> 208 channels at 345x32; its stride-2 depthwise pads 1 on
    # every side, which TFLite runs as a PAD op (347x34) before a "valid" conv.
    assert p.peak_layer == "backbone.blocks.1.depthwise.conv(pad)"
    assert p.ram_bytes == 208 * 345 * 32 + 208 * 347 * 34
    live = {layer.name: layer.live_bytes for layer in p.layers}
    # Block 2 has a skip: its 36-channel input stays alive next to the 200-channel tensors.
    assert live["backbone.blocks.2.depthwise.conv"] == 36 * 173 * 16 + 2 * 200 * 173 * 16


@pytest.mark.parametrize(("size", "pads"), [(8, True), (9, False)])
def test_symmetric_stride_2_padding_costs_an_explicit_pad_on_even_sizes(size, pads):
    net = nn.Sequential(nn.Conv2d(2, 2, 3, stride=2, padding=1, groups=2, bias=False))
    p = profile_module(net.eval(), (1, 2, size, size), device="cpu")
    names = [layer.name for layer in p["layers"]]
    out = 2 * ((size + 1) // 2) ** 2
    if pads:  # TF "same" would pad (0, 1): PyTorch's (1, 1) needs a PAD op and its tensor
        assert names == ["0(pad)", "0"] and p["ram_bytes"] == 2 * size * size + 2 * (size + 2) ** 2
    else:  # odd size: "same" is (1, 1), the conv pads by itself
        assert names == ["0"] and p["ram_bytes"] == 2 * size * size + out


def test_profile_scales_with_the_window_and_is_cached():
    five, one = profile(REF, 690, 64), profile(REF, 138, 64)
    assert five.params == one.params and five.flash_bytes == one.flash_bytes
    assert five.macs > 4 * one.macs and five.ram_bytes > 4 * one.ram_bytes
    assert profile(REF, 138, 64) is one
    d = one.to_dict(layers=True)
    assert d["config"]["alpha"] == 1.5 and d["layers"][0]["name"] == "bn0"
    assert json.loads(json.dumps(d))["ram_bytes"] == one.ram_bytes


# ---- fit

GRID = dict(alphas=[round(0.1 + 0.1 * i, 2) for i in range(10)], betas=[0.75, 1.0], t0s=[2, 4], num_layers=[5, 7])


def brute_force(budget: Budget, objective: str) -> StudentConfig:
    best, best_key = None, None
    for a, b, t, n in itertools.product(GRID["alphas"], GRID["betas"], GRID["t0s"], GRID["num_layers"]):
        cfg = StudentConfig(a, b, t, n, embed_width=budget.width, dim=budget.dim, head_act=budget.head_act)
        p = profile(cfg, budget.input_frames, 64)
        key = (p.params, p.macs) if objective == "params" else (p.macs, p.params)
        if budget.fits(p) and (best_key is None or key > best_key):
            best, best_key = cfg, key
    assert best is not None
    return best


@pytest.mark.parametrize("objective", ["params", "macs"])
def test_fit_finds_the_best_config_in_the_grid(objective):
    budget = Budget(flash_bytes=parse_size("200KB"), ram_bytes=parse_size("48KB"), macs=parse_count("8M"),
                    window_seconds=1.0, dim=64)  # fmt: skip
    cfg, p = fit(budget, objective=objective, **GRID)
    assert budget.fits(p) and p.config == cfg
    assert (cfg.dim, cfg.embed_width, cfg.head_act, p.input_frames) == (64, 128, "relu", 138)
    assert cfg == brute_force(budget, objective)
    wider = profile(cfg.replace(alpha=round(cfg.alpha + 0.1, 2)), 138, 64)
    assert not budget.fits(wider)  # one step wider breaks a limit


def test_fit_with_the_default_grid_fits_and_is_widest():
    budget = Budget(flash_bytes=parse_size("512KB"), ram_bytes=parse_size("128KB"), window_seconds=1.0, dim=256)
    cfg, p = fit(budget)
    assert p.flash_bytes <= 512 * 1024 and p.ram_bytes <= 128 * 1024
    assert not budget.fits(profile(cfg.replace(alpha=round(cfg.alpha + 0.05, 2)), 138, 64))


@pytest.mark.parametrize("preset", ["mcu_stm32h7", "mcu_cortex_m4"])
def test_mcu_presets_fit_their_recorded_budget_and_are_widest(preset):
    import yaml

    from tinyclap.students import load_preset
    from tinyclap.students.encoder import _preset_dir

    cfg, audio = load_preset(preset)
    recorded = yaml.safe_load((_preset_dir() / f"{preset}.yaml").read_text())["budget"]
    budget = Budget(recorded["flash_bytes"], recorded["ram_bytes"], recorded.get("macs"),
                    window_seconds=recorded["window_seconds"], dim=cfg.dim)  # fmt: skip
    assert cfg.head_act == "relu" and audio.clip_seconds == recorded["window_seconds"]
    assert budget.fits(profile(cfg, audio.n_frames, audio.n_mels))
    assert not budget.fits(profile(cfg.replace(alpha=round(cfg.alpha + 0.05, 2)), audio.n_frames, audio.n_mels))


def test_impossible_budgets_say_which_limit_and_the_smallest_figure():
    budget = Budget(flash_bytes=parse_size("64KB"), window_seconds=1.0, dim=256)
    with pytest.raises(BudgetError) as err:
        fit(budget, **GRID)
    smallest = min(
        profile(StudentConfig(0.1, 0.75, 2, n, embed_width=512, dim=256, head_act="relu"), 138, 64).flash_bytes
        for n in GRID["num_layers"]
    )
    message = str(err.value)
    assert "flash 64.00 KiB cannot be met" in message and format_bytes(smallest) in message
    assert "RAM" not in message.split(".")[0]  # RAM was not limited
    both = Budget(flash_bytes=parse_size("8KB"), ram_bytes=parse_size("4KB"), window_seconds=1.0, dim=64)
    with pytest.raises(BudgetError, match=r"flash 8.00 KiB cannot be met.*RAM 4.00 KiB cannot be met"):
        fit(both, **GRID)


def test_limits_that_only_fail_together_are_reported_together():
    from tinyclap.students.scaling import Profile, _impossible

    a = Profile("a", 138, 64, params=1, macs=10, flash_bytes=100, ram_bytes=1, peak_layer="x")  # small flash, many MACs
    b = Profile("b", 138, 64, params=1, macs=1, flash_bytes=900, ram_bytes=1, peak_layer="x")  # few MACs, big flash
    message = _impossible(Budget(flash_bytes=500, macs=5, window_seconds=1.0), [a, b])
    assert "cannot be met" not in message and "no student meets flash 500 B, MACs 5 at once" in message


# ---- CLI


def test_cli_fit_json(capsys):
    rc = main(["scale", "--flash", "512KB", "--ram", "128KB", "--macs", "20M", "--window", "1s", "--dims", "256", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["fits"] is True
    assert doc["budget"] == {"flash_bytes": 512 * 1024, "ram_bytes": 128 * 1024, "macs": 20_000_000}
    prof = doc["profile"]
    assert prof["flash_bytes"] <= 512 * 1024 and prof["ram_bytes"] <= 128 * 1024 and prof["macs"] <= 20_000_000
    cfg = StudentConfig.from_dict({**doc["config"], "downsampling_layers": tuple(doc["config"]["downsampling_layers"])})
    assert doc["name"] == cfg.name and doc["window_seconds"] == 1.0
    assert profile(cfg, 138, 64).ram_bytes == prof["ram_bytes"]


def test_cli_profile_table_and_save(capsys, tmp_path):
    rc = main(["scale", "--profile", REF.name, "--ram", "1MB", "--layers", "--save", str(tmp_path / "ref.yaml")])
    out = capsys.readouterr().out
    assert rc == 1  # 2.74 MiB of activations do not fit 1 MB: reported, exit code 1
    assert REF.name in out and "4,434,547" in out and "356.68 M" in out and "DOES NOT FIT: RAM" in out
    assert "backbone.blocks.1.depthwise.conv(pad)" in out and "690 frames x 64 mels" in out
    assert AudioStudent.from_name(str(tmp_path / "ref.yaml")).config == REF


def test_cli_errors(capsys):
    with pytest.raises(SystemExit):
        main(["scale", "--flash", "1XB"])
    assert "unknown size unit" in capsys.readouterr().err
    assert main(["scale", "--window", "1s"]) == 1  # no limit given
    assert "at least one of --flash" in capsys.readouterr().err
    assert main(["scale", "--flash", "8KB", "--window", "1s", "--dims", "256"]) == 1
    assert "cannot be met" in capsys.readouterr().err
