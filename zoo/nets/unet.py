"""The DDPM UNet (Ho et al. 2020, Appendix B; the PixelCNN++ backbone): residual blocks
with GroupNorm and a sinusoidal time embedding added in every block, self-attention at
low resolutions, strided-conv downsampling and nearest-neighbour upsampling with skip
connections. Optional class conditioning: a learned embedding added to the time
embedding, with one extra "null" row (index num_classes) that classifier-free guidance
uses for the unconditional prediction (Ho & Salimans 2022). Optional guidance input: a
distilled student of a guided teacher takes classifier-free guidance's w as an input,
embedded like t and added to the time embedding (Meng et al. 2023, "On Distillation of
Guided Diffusion Models", Sec. 4.1); its last layer starts at zero, so a student copied
from its teacher starts as the teacher's conditional model whatever w.

Presets are named by what they are; their parameter counts are checked by the tests.
"""
import math
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from zoo.checks import check_choice
from zoo.nets.embedding import sinusoidal_features


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    """GroupNorm with `groups` groups, or the largest divisor of `channels` below it."""
    return nn.GroupNorm(math.gcd(groups, channels), channels)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice with a skip; the embedding (time, class) is added between
    the convs. emb_dim = 0: no embedding (the VAE's blocks)."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float, groups: int):
        super().__init__()
        self.norm1, self.conv1 = group_norm(c_in, groups), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out) if emb_dim else None
        self.norm2, self.conv2 = group_norm(c_out, groups), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x, emb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if self.emb is not None:
            h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Single-head self-attention over the pixels of a feature map, as in DDPM."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = group_norm(channels, groups)
        self.qkv, self.proj = nn.Conv2d(channels, 3 * channels, 1), nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x, emb=None):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x, emb=None):
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x, size):
        return self.conv(F.interpolate(x, size=size, mode="nearest"))


class UNet(nn.Module):
    @dataclass
    class Config:
        in_channels: int = 1
        image_size: int = 28
        base_channels: int = 32
        channel_mults: tuple = (1, 2, 2)
        num_res_blocks: int = 2
        attn_resolutions: tuple = (7,)
        dropout: float = 0.0
        groups: int = 8  # GroupNorm groups (DDPM: 32)
        num_classes: int = 0  # > 0: class-conditional, with a null class at index num_classes
        label_dropout: float = 0.0  # training only: share of labels replaced by the null class
        guidance_input: bool = False  # a distilled student: CFG's w is an input (forward's `w`)

        # load-time bounds (zoo.hub.validation.check_config); other integers are widths, at
        # most the largest tensor dimension in the weights file; sizes the weights do not fix are capped
        LIMITS: ClassVar[dict] = {"image_size": 256, "attn_resolutions": 256, "num_res_blocks": "count",
                                  "dropout": (0.0, 1.0), "label_dropout": (0.0, 1.0)}

        def __post_init__(self):  # JSON gives lists; keep the dataclass hashable and comparable
            self.channel_mults, self.attn_resolutions = tuple(self.channel_mults), tuple(self.attn_resolutions)

    def __init__(self, config: "UNet.Config"):
        super().__init__()
        self.config = c = config
        ch, emb_dim = c.base_channels, 4 * c.base_channels
        self.time = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label = nn.Embedding(c.num_classes + 1, emb_dim) if c.num_classes else None
        self.guidance = (nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
                         if c.guidance_input else None)
        if self.guidance is not None:  # start as the model without the input
            nn.init.zeros_(self.guidance[-1].weight)
            nn.init.zeros_(self.guidance[-1].bias)
        self.stem = nn.Conv2d(c.in_channels, ch, 3, padding=1)
        self.down, skips, res = nn.ModuleList(), [ch], c.image_size
        for level, mult in enumerate(c.channel_mults):
            for _ in range(c.num_res_blocks):
                self.down.append(self._block(ch, c.base_channels * mult, res))
                ch = c.base_channels * mult
                skips.append(ch)
            if level < len(c.channel_mults) - 1:
                self.down.append(Downsample(ch))
                res = (res + 1) // 2
                skips.append(ch)
        self.mid = nn.ModuleList([ResBlock(ch, ch, emb_dim, c.dropout, c.groups), Attention(ch, c.groups),
                                  ResBlock(ch, ch, emb_dim, c.dropout, c.groups)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(c.channel_mults))):
            for _ in range(c.num_res_blocks + 1):
                self.up.append(self._block(ch + skips.pop(), c.base_channels * mult, res))
                ch = c.base_channels * mult
            if level > 0:
                self.up.append(Upsample(ch))
                res *= 2
        self.head = nn.Sequential(group_norm(ch, c.groups), nn.SiLU(), nn.Conv2d(ch, c.in_channels, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def _block(self, c_in: int, c_out: int, res: int) -> nn.Module:
        c = self.config
        block = ResBlock(c_in, c_out, 4 * c.base_channels, c.dropout, c.groups)
        return nn.ModuleList([block, Attention(c_out, c.groups)]) if res in c.attn_resolutions else block

    def embed(self, t: torch.Tensor, x: torch.Tensor, y, w=None) -> torch.Tensor:
        emb = self.time(sinusoidal_features(t.to(x.dtype), self.config.base_channels))
        if (w is None) != (self.guidance is None):
            raise TypeError("this UNet takes the guidance weight w as an input; pass w" if w is None else
                            "this UNet has no guidance input; got w")
        if w is not None:  # w in [-1, 10]: features at scale 100 keep neighbouring w apart without aliasing
            w = torch.as_tensor(w, dtype=x.dtype, device=x.device).expand(x.shape[0])
            emb = emb + self.guidance(sinusoidal_features(w, self.config.base_channels, scale=100.0))
        if self.label is None:
            if y is not None:
                raise TypeError("this UNet is unconditional; got class labels")
            return emb
        null = self.config.num_classes
        if y is None:  # no label: the null class (unconditional prediction)
            y = torch.full((x.shape[0],), null, device=x.device, dtype=torch.long)
        elif self.training and self.config.label_dropout > 0:
            # One net learns D(x | y) and D(x | null), which classifier-free guidance combines
            # (Ho & Salimans 2022, Algorithm 1; dropped inside the embedder as in DiT).
            drop = torch.rand(y.shape, device=y.device) < self.config.label_dropout
            y = torch.where(drop, torch.full_like(y, null), y)
        return emb + self.label(y)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor = None, w=None) -> torch.Tensor:
        emb = self.embed(t, x, y, w)
        h = self.stem(x)
        hs = [h]
        for layer in self.down:
            h = _apply(layer, h, emb)
            hs.append(h)
        for layer in self.mid:
            h = layer(h, emb)
        for layer in self.up:
            if isinstance(layer, Upsample):
                h = layer(h, hs[-1].shape[-2:])
            else:
                h = _apply(layer, torch.cat([h, hs.pop()], dim=1), emb)
        return self.head(h)


def _apply(layer, h, emb):
    if isinstance(layer, nn.ModuleList):  # ResBlock followed by Attention
        return layer[1](layer[0](h, emb))
    return layer(h, emb)


def parameter_count(config: UNet.Config) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in UNet(config).parameters())


# name -> config; the size in the name is the real parameter count (tests check it).
PRESETS = {
    # the bundled MNIST model: one block per level, small enough to train on 2 CPU cores
    "mnist-1.1M": UNet.Config(in_channels=1, image_size=28, base_channels=32, channel_mults=(1, 2, 2),
                              num_res_blocks=1, attn_resolutions=(7,)),
    "mnist-1.6M": UNet.Config(in_channels=1, image_size=28, base_channels=32, channel_mults=(1, 2, 2),
                              num_res_blocks=2, attn_resolutions=(7,)),
    "cifar10-6.5M": UNet.Config(in_channels=3, image_size=32, base_channels=64, channel_mults=(1, 2, 2),
                                num_res_blocks=2, attn_resolutions=(8,), groups=32, dropout=0.1),
    # Ho et al. 2020, CIFAR-10: ch 128, mults (1, 2, 2, 2), 2 blocks, attention at 16x16, dropout 0.1
    "cifar10-ddpm-35.7M": UNet.Config(in_channels=3, image_size=32, base_channels=128, channel_mults=(1, 2, 2, 2),
                                      num_res_blocks=2, attn_resolutions=(16,), groups=32, dropout=0.1),
}


def preset(name: str, **overrides) -> UNet.Config:
    check_choice(name, sorted(PRESETS), "UNet preset")
    return replace(PRESETS[name], **overrides)
