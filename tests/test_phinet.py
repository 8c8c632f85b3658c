"""PhiNet backbone: the paper's scaling rules and the micromind layer structure tinyCLAP uses."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tinyclap.students.phinet import PhiNet, SamePad2d, expansion_factor, make_divisible


def test_make_divisible_rounds_and_never_drops_more_than_ten_percent():
    assert make_divisible(72) == 72  # divisor 1 (tinyCLAP): plain rounding
    assert make_divisible(35.5) == 36
    assert make_divisible(0.2) == 1  # at least one channel
    assert make_divisible(36, 8) == 40  # 36 -> 40 (nearest multiple of 8, ties up)
    assert make_divisible(10.4, 8) == 16  # 8 would be 23% below 10.4: bumped up
    with pytest.raises(ValueError):
        make_divisible(10, 0)


def test_expansion_schedule_goes_from_t0_to_beta_t0():
    assert expansion_factor(6, 0.75, 0, 7) == pytest.approx(6)
    assert expansion_factor(6, 0.75, 7, 7) == pytest.approx(4.5)
    assert expansion_factor(6, 0.75, 3, 7) == pytest.approx(6 * (4 + 0.75 * 3) / 7)
    # micromind's floating-point order: 1.6666665 (not 1.6666667), so int(t * 72) is 119.
    # A width of 120 here would break the state-dict shapes of reference checkpoints.
    assert int(expansion_factor(2, 0.75, 2, 3) * 72) == 119


def test_reference_alpha_1_5_layer_widths_and_shapes():
    """Widths read off micromind's PhiNet(alpha=1.5, beta=0.75, t_zero=6, num_layers=7, compatibility=True)."""
    net = PhiNet(1.5, 0.75, 6, 7).eval()
    assert net.stem.pointwise.out_channels == 72
    assert [b.hidden_channels for b in net.blocks] == [72, 208, 200, 192, 370, 354, 678, 648]
    assert [b.out_channels for b in net.blocks] == [36, 36, 36, 72, 72, 144, 144, 288]
    assert [b.stride for b in net.blocks] == [1, 2, 1, 2, 1, 2, 1, 2]
    assert [b.skip for b in net.blocks] == [False, False, True, False, True, False, True, False]
    assert sum(p.numel() for p in net.parameters()) == 694_771  # micromind's count for this backbone
    with torch.no_grad():
        assert net(torch.zeros(1, 1, 690, 64)).shape == (1, 288, 22, 2)
        assert net(torch.zeros(1, 1, 138, 64)).shape == (1, 288, 5, 2)


def test_compatibility_turns_off_squeeze_excite_and_hard_swish():
    compat = PhiNet(0.5, 0.75, 4, 5, compatibility=True)
    full = PhiNet(0.5, 0.75, 4, 5, compatibility=False)
    kinds = lambda m: {type(x) for x in m.modules()}  # noqa: E731
    assert nn.Hardswish not in kinds(compat) and nn.Sigmoid not in kinds(compat)
    assert nn.ReLU6 in kinds(compat)
    assert nn.Hardswish in kinds(full) and nn.Sigmoid in kinds(full)
    assert full.blocks[0].se is None  # block 0 never has squeeze-excite
    assert all(b.se is not None for b in full.blocks[1:])
    assert sum(p.numel() for p in full.parameters()) > sum(p.numel() for p in compat.parameters())
    with torch.no_grad():
        x = torch.randn(2, 1, 40, 32)
        assert full.eval()(x).shape == compat.eval()(x).shape


def test_downsampling_layers_double_filters_and_halve_resolution():
    net = PhiNet(1.0, 1.0, 2, 9, downsampling_layers=(5, 7))
    assert [b.out_channels for b in net.blocks][4:] == [48, 96, 96, 192, 192, 192]
    assert [b.stride for b in net.blocks][4:] == [1, 2, 1, 2, 1, 1]
    assert net.out_channels == 192


def test_residual_adds_the_block_input():
    net = PhiNet(0.5, 1.0, 2, 4).eval()
    block = net.blocks[2]  # 12 -> 12 channels, stride 1: has a skip connection
    assert block.skip
    x = torch.randn(1, block.in_channels, 8, 8)
    with torch.no_grad():
        inner = block.project(block.depthwise(block.drop(block.expand(x))))
        torch.testing.assert_close(block(x), inner + x)


@pytest.mark.parametrize(("size", "pads"), [(690, (0, 1)), (64, (0, 1)), (137, (1, 1)), (1, (1, 1))])
def test_stem_padding_is_tf_same(size: int, pads: tuple[int, int]):
    pad = SamePad2d(3, 2)
    assert pad._pads(size) == pads
    out = nn.functional.conv2d(pad(torch.zeros(1, 1, size, 5)), torch.zeros(1, 1, 3, 3), stride=2)
    assert out.shape[-2] == (size + 1) // 2  # "same": ceil(n / stride)


def test_batchnorm_momentum_has_pytorch_meaning():
    """Running stats move 10% towards each batch (micromind's 0.999 would copy the last batch)."""
    torch.manual_seed(0)
    net = PhiNet(0.25, 1.0, 2, 3).train()
    stem, bn = net.stem, net.stem.bn
    assert bn.momentum == 0.1 and bn.eps == 1e-3

    def batch_mean(x: torch.Tensor) -> torch.Tensor:  # what BN sees: the pointwise conv output
        with torch.no_grad():
            return stem.pointwise(stem.depthwise(stem.pad(x))).mean(dim=(0, 2, 3))

    x1, x2 = torch.randn(4, 1, 16, 16), torch.randn(4, 1, 16, 16) + 3.0
    with torch.no_grad():
        stem(x1)
        stem(x2)
    m1, m2 = batch_mean(x1), batch_mean(x2)
    torch.testing.assert_close(bn.running_mean, 0.9 * 0.1 * m1 + 0.1 * m2, rtol=1e-4, atol=1e-6)
    assert (bn.running_mean - m2).abs().max() > 0.5 * m2.abs().max()  # not just the last batch


@pytest.mark.parametrize(
    "kwargs", [dict(alpha=0), dict(alpha=1, beta=-1), dict(alpha=1, t0=0), dict(alpha=1, num_layers=2), dict(alpha=1, num_layers=4.5)]
)
def test_invalid_scalars_are_rejected(kwargs):
    with pytest.raises(ValueError):
        PhiNet(**kwargs)
