"""Audio towers of Microsoft CLAP: CNN14 (2022) and HTS-AT (2023).

Written from the layer layout of microsoft/CLAP (msclap 1.3.x, after PANNs and
HTS-AT) so the released checkpoints load key for key; the code is our own.
Both towers take a log-mel batch ``(B, T, M)`` from :class:`MSClapFrontEnd`
and return the pooled clip vector that MS-CLAP projects into the shared space
(2048-d for CNN14, ``embed_dim * 2**(L-1)`` = 768-d for HTS-AT).

Widths are arguments so tests can build a tiny tower of the same structure.
The AudioSet tagging heads (``fc_audioset``; ``tscam_conv`` + ``head``) are
kept only so released files load without unexpected keys: embeddings never
use them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tinyclap.audio import AudioConfig, LogMel, mel_filters

__all__ = ["MSClapFrontEnd", "Cnn14", "HTSAT", "HTSATConfig", "HTSATWrapper"]


class MSClapFrontEnd(LogMel):
    """MS-CLAP's torchlibrosa log-mel, with the mel filters optionally designed
    for a different sample rate than the audio's.

    MS-CLAP 2023 builds its HTS-AT filterbank from the HTS-AT training config
    (32 kHz, 50-14000 Hz) while feeding 44.1 kHz audio (microsoft/CLAP issue
    #38), so the filters are laid out for 32 kHz bins. ``mel_sample_rate``
    reproduces that; ``None`` means the audio's own rate (2022, and students).
    """

    def __init__(self, config: AudioConfig, mel_sample_rate: int | None = None):
        super().__init__(config)
        self.mel_sample_rate = mel_sample_rate or config.sample_rate
        if self.mel_sample_rate != config.sample_rate:
            design = dataclasses.replace(config, sample_rate=self.mel_sample_rate)
            self.mel = torch.from_numpy(mel_filters(design)).to(self.mel.device)

    def set_filters(self, mel: torch.Tensor) -> None:
        """Use a given (n_fft//2+1, n_mels) filter matrix (e.g. a checkpoint's own)."""
        if tuple(mel.shape) != tuple(self.mel.shape):
            raise ValueError(f"mel filters must have shape {tuple(self.mel.shape)}, got {tuple(mel.shape)}")
        self.mel = mel.detach().to(dtype=torch.float32, device=self.mel.device).clone()


def _mel_norm(bn0: nn.BatchNorm2d, logmel: torch.Tensor) -> torch.Tensor:
    """BatchNorm over mel bins, as PANNs' transpose-bn-transpose: (B,T,M) → (B,1,T,M)."""
    x = logmel.transpose(1, 2).unsqueeze(-1)  # (B, M, T, 1): mel bins as channels
    return bn0(x).squeeze(-1).transpose(1, 2).unsqueeze(1)


# ----------------------------------------------------------------------------- CNN14


class ConvBlock(nn.Module):
    """Two 3×3 conv-BN-ReLU layers, then average pooling."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, pool) if pool > 1 else x


class Cnn14(nn.Module):
    """PANNs CNN14 as MS-CLAP 2022 uses it: six conv blocks, mean over mels,
    max + mean over time, then ``fc1`` + ReLU gives the clip embedding."""

    def __init__(
        self,
        n_mels: int = 64,
        channels: Sequence[int] = (64, 128, 256, 512, 1024, 2048),
        out_emb: int = 2048,
        num_classes: int = 527,
    ):
        super().__init__()
        if len(channels) != 6:
            raise ValueError(f"CNN14 has six conv blocks, got {len(channels)} channel widths")
        if n_mels < 32:
            raise ValueError(f"CNN14 halves the mel axis five times: it needs n_mels >= 32, got {n_mels}")
        self.out_dim = out_emb
        self.bn0 = nn.BatchNorm2d(n_mels)
        widths = [1, *channels]
        for i in range(6):
            setattr(self, f"conv_block{i + 1}", ConvBlock(widths[i], widths[i + 1]))
        self.fc1 = nn.Linear(channels[-1], out_emb)
        self.fc_audioset = nn.Linear(out_emb, num_classes)  # tagging head: loaded, unused

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        """(B, T, M) log-mel → (B, out_emb) clip embedding (post-ReLU ``fc1``)."""
        x = _mel_norm(self.bn0, logmel)
        for i in range(1, 7):
            x = getattr(self, f"conv_block{i}")(x, pool=2 if i < 6 else 1)
        x = x.mean(dim=3)  # over mel bins → (B, C, T')
        x = x.amax(dim=2) + x.mean(dim=2)
        return F.relu(self.fc1(x))


# ----------------------------------------------------------------------------- HTS-AT


@dataclass(frozen=True)
class HTSATConfig:
    """Sizes of an HTS-AT (Swin) tower; defaults are MS-CLAP 2023's (HTSAT-tiny)."""

    spec_size: int = 256
    patch_size: int = 4
    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (4, 8, 16, 32)
    window_size: int = 8
    mlp_ratio: float = 4.0
    num_classes: int = 527

    @property
    def num_features(self) -> int:
        return self.embed_dim * 2 ** (len(self.depths) - 1)


def _windows(x: torch.Tensor, w: int) -> torch.Tensor:
    """(B, H, W, C) → (B·nW, w·w, C), windows in row-major order."""
    b, h, wd, c = x.shape
    x = x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, c)


def _unwindows(x: torch.Tensor, w: int, h: int, wd: int) -> torch.Tensor:
    """Inverse of :func:`_windows`: (B·nW, w·w, C) → (B, H, W, C)."""
    c = x.shape[-1]
    x = x.view(-1, h // w, wd // w, w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, wd, c)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window, with a learned relative-position bias."""

    def __init__(self, dim: int, window: int, heads: int):
        super().__init__()
        self.window, self.heads = window, heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        # Index of (Δrow, Δcol) between every pair of positions in a window, into the table.
        ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        pos = torch.stack([ys.flatten(), xs.flatten()])  # (2, w²)
        rel = pos[:, :, None] - pos[:, None, :] + (window - 1)  # (2, w², w²), non-negative
        self.register_buffer("relative_position_index", rel[0] * (2 * window - 1) + rel[1])
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x: (B·nW, N, C); mask: (nW, N, N) additive, or None."""
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        bias = self.relative_position_bias_table[self.relative_position_index.flatten()]
        bias = bias.view(n, n, self.heads).permute(2, 0, 1)  # (heads, N, N)
        if mask is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        else:
            nw = mask.shape[0]
            full = (bias.unsqueeze(0) + mask.unsqueeze(1)).to(q.dtype)  # (nW, heads, N, N)
            shape = (bw // nw, nw, self.heads, n, c // self.heads)
            out = F.scaled_dot_product_attention(q.view(shape), k.view(shape), v.view(shape), attn_mask=full)
            out = out.view(bw, self.heads, n, c // self.heads)
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def _shift_mask(h: int, w: int, window: int, shift: int) -> torch.Tensor:
    """Additive mask (nW, w², w²) that keeps shifted windows from mixing wrapped regions."""
    region = torch.zeros(h, w)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for rows in bounds:
        for cols in bounds:
            region[rows, cols] = label
            label += 1
    ids = _windows(region.view(1, h, w, 1), window).squeeze(-1)  # (nW, w²)
    differ = ids.unsqueeze(1) != ids.unsqueeze(2)
    return torch.zeros(differ.shape).masked_fill(differ, -100.0)


class SwinBlock(nn.Module):
    """(Shifted-)window attention + MLP, both pre-norm residual."""

    def __init__(self, dim: int, resolution: tuple[int, int], heads: int, window: int, shift: int, mlp_ratio: float):
        super().__init__()
        self.resolution = resolution
        if min(resolution) <= window:  # the window covers the whole map: no shifting
            window, shift = min(resolution), 0
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        mask = _shift_mask(*resolution, window, shift) if shift else None
        self.register_buffer("attn_mask", mask)  # persistent: the released files hold it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.resolution
        b, _, c = x.shape
        y = self.norm1(x).view(b, h, w, c)
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(_windows(y, self.window), self.attn_mask)
        y = _unwindows(y, self.window, h, w)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), dims=(1, 2))
        x = x + y.reshape(b, h * w, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2×2 neighbourhoods → one token of twice the width."""

    def __init__(self, resolution: tuple[int, int], dim: int):
        super().__init__()
        self.resolution = resolution
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.resolution
        b, _, c = x.shape
        x = x.view(b, h, w, c)
        # Order (even,even), (odd,even), (even,odd), (odd,odd) fixes the weight layout.
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class SwinStage(nn.Module):
    def __init__(self, dim: int, resolution: tuple[int, int], depth: int, heads: int, window: int,
                 mlp_ratio: float, downsample: bool):
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(dim, resolution, heads, window, 0 if i % 2 == 0 else window // 2, mlp_ratio)
            for i in range(depth)
        )
        self.downsample = PatchMerging(resolution, dim) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(1, dim, patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class HTSAT(nn.Module):
    """HTS-AT (Swin-Tiny over a folded mel image) returning the mean of its final tokens.

    A clip's log-mel (T ≤ spec_size·r frames, M = spec_size / r mel bins,
    r = freq_ratio) is stretched to spec_size·r frames (bicubic), cut into r
    time chunks and stacked along frequency into a square spec_size² image.
    MS-CLAP's embedding is the average of the normalised last-stage tokens.
    """

    def __init__(self, config: HTSATConfig = HTSATConfig(), n_mels: int = 64):
        super().__init__()
        c = config
        if c.spec_size % n_mels:
            raise ValueError(f"HTSAT spec_size {c.spec_size} must be a multiple of n_mels {n_mels}")
        if len(c.num_heads) != len(c.depths):
            raise ValueError("HTSAT needs one head count per stage")
        self.config = c
        self.freq_ratio = c.spec_size // n_mels
        self.out_dim = c.num_features
        self.bn0 = nn.BatchNorm2d(n_mels)
        self.patch_embed = PatchEmbed(c.patch_size, c.embed_dim)
        grid = c.spec_size // c.patch_size
        stages = len(c.depths)
        for i in range(stages):
            res = grid // 2**i
            if (res > c.window_size and res % c.window_size) or (i < stages - 1 and res % 2):
                raise ValueError(f"HTSAT: stage {i}'s {res}x{res} token grid does not split into "
                                 f"{c.window_size}-windows and 2x2 merges")
        self.layers = nn.ModuleList()
        for i in range(stages):
            res = grid // 2**i
            self.layers.append(
                SwinStage(c.embed_dim * 2**i, (res, res), c.depths[i], c.num_heads[i], c.window_size,
                          c.mlp_ratio, downsample=i < stages - 1)
            )
        self.norm = nn.LayerNorm(c.num_features)
        final = grid // 2 ** (stages - 1)
        sf = final // self.freq_ratio
        if sf < 1:
            raise ValueError(f"HTSAT: final grid {final} is smaller than freq_ratio {self.freq_ratio}")
        # Token-semantic tagging head (AudioSet): loaded, unused for embeddings.
        self.tscam_conv = nn.Conv2d(c.num_features, c.num_classes, kernel_size=(sf, 3), padding=(0, 1))
        self.head = nn.Linear(c.num_classes, c.num_classes)

    @property
    def max_frames(self) -> int:
        return self.config.spec_size * self.freq_ratio

    def to_image(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T, M) → (B, 1, spec_size, spec_size): stretch time, fold chunks onto frequency."""
        b, _, t, m = x.shape
        target = self.max_frames
        if t > target:
            raise ValueError(f"HTSAT takes at most {target} frames, got {t}")
        if t < target:
            x = F.interpolate(x, (target, m), mode="bicubic", align_corners=True)
        x = x.transpose(2, 3)  # (B, 1, M, T)
        x = x.reshape(b, 1, m, self.freq_ratio, target // self.freq_ratio).permute(0, 1, 3, 2, 4)
        return x.reshape(b, 1, self.freq_ratio * m, target // self.freq_ratio)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        """(B, T, M) log-mel → (B, num_features) clip embedding."""
        x = self.to_image(_mel_norm(self.bn0, logmel))
        x = self.patch_embed(x)
        for stage in self.layers:
            x = stage(x)
        return self.norm(x).mean(dim=1)


class HTSATWrapper(nn.Module):
    """Holds the tower under ``.htsat``, the key prefix of MS-CLAP's files."""

    def __init__(self, config: HTSATConfig = HTSATConfig(), n_mels: int = 64):
        super().__init__()
        self.htsat = HTSAT(config, n_mels)
        self.out_dim = self.htsat.out_dim

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.htsat(logmel)

