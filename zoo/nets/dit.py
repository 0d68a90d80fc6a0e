"""Diffusion Transformer (Peebles & Xie 2023, "Scalable Diffusion Models with
Transformers"; facebookresearch/DiT models.py) on latent images, conditioned on text.

The latent (C, H, W) is cut into p x p patches, each a token with a fixed 2D sin-cos
position. Every block is DiT's adaLN-Zero block (LayerNorm whose shift / scale and a
residual gate come from the conditioning vector c = time embedding + pooled text; zero-
initialised so each block starts as the identity) with a cross-attention layer to the
text tokens between attention and MLP, as PixArt-alpha (Chen et al. 2024) adds to DiT.

Text: a TextEncoder (open_clip text tower) trained with the DiT, or a pretrained open_clip
tower, frozen by default (zoo.nets.text_encoder). In training, a
`caption_dropout` share of prompts is replaced by the empty prompt, so the same net gives
D(x | prompt) and D(x | "") for classifier-free guidance (the DiT label dropout, for text).
"""
from dataclasses import dataclass, field, fields
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from zoo.nets.embedding import sinusoidal_features
from zoo.nets.text_encoder import TextEncoder

TIME_FEATURES = 256  # DiT's frequency_embedding_size


def modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


def zero_(layer: nn.Linear) -> nn.Linear:
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class Attention(nn.Module):
    """Multi-head attention of x to itself, or to a context (cross-attention) with a mask."""

    def __init__(self, width: int, heads: int, context_width: int | None = None):
        super().__init__()
        self.heads = heads
        self.q, self.kv = nn.Linear(width, width), nn.Linear(context_width or width, 2 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x, context=None, mask=None):
        n, length, width = x.shape
        split = lambda h: h.reshape(n, -1, self.heads, width // self.heads).transpose(1, 2)
        k, v = self.kv(x if context is None else context).chunk(2, dim=-1)
        mask = None if mask is None else mask[:, None, None, :]  # (n, 1, 1, L): True = attend
        out = F.scaled_dot_product_attention(split(self.q(x)), split(k), split(v), attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(n, length, width))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: float, context_width: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(width, heads)
        self.norm_cross = nn.LayerNorm(width, eps=1e-6)
        self.cross = Attention(width, heads, context_width)
        zero_(self.cross.proj)  # like the gates: the block starts as the identity
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))
        self.ada = nn.Sequential(nn.SiLU(), zero_(nn.Linear(width, 6 * width)))

    def forward(self, x, c, context, mask):
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).chunk(6, dim=-1)
        x = x + gate1[:, None] * self.attn(modulate(self.norm1(x), shift1, scale1))
        x = x + self.cross(self.norm_cross(x), context, mask)
        return x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))


def sincos_positions(side: int, width: int) -> torch.Tensor:
    """(side^2, width) fixed 2D sin-cos position embedding (DiT, MAE): half the features
    encode the row, half the column."""
    rows, cols = torch.meshgrid(torch.arange(side, dtype=torch.float32), torch.arange(side, dtype=torch.float32),
                                indexing="ij")
    return torch.cat([sinusoidal_features(rows.reshape(-1), width // 2, scale=1.0),
                      sinusoidal_features(cols.reshape(-1), width // 2, scale=1.0)], dim=1)


class DiT(nn.Module):
    @dataclass
    class Config:
        in_channels: int = 4
        input_size: int = 8
        patch_size: int = 2
        width: int = 128
        depth: int = 6
        heads: int = 4
        mlp_ratio: float = 4.0
        text: TextEncoder.Config = field(default_factory=TextEncoder.Config)
        caption_dropout: float = 0.1  # training only: share of prompts replaced by ""

        # load-time bounds (zoo.hub.validation.check_config); other integers are widths, at
        # most the largest tensor dimension in the weights file; sizes the weights do not fix are capped
        LIMITS: ClassVar[dict] = {"input_size": 128, "depth": "count", "mlp_ratio": (0.0, 64.0),
                                  "caption_dropout": (0.0, 1.0)}

        def __post_init__(self):  # from JSON the text config is a dict
            if isinstance(self.text, dict):
                allowed = {f.name for f in fields(TextEncoder.Config)}
                if set(self.text) - allowed:
                    raise ValueError(f"unknown text encoder config fields {sorted(set(self.text) - allowed)}; "
                                     f"allowed: {sorted(allowed)}")
                self.text = TextEncoder.Config(**self.text)

    def __init__(self, config: "DiT.Config"):
        super().__init__()
        self.config = c = config
        if c.input_size % c.patch_size or c.width % c.heads or c.width % 4:
            raise ValueError("DiT input_size must be a multiple of patch_size, and width a multiple of heads and of 4 "
                             "(the 2D sin-cos positions)")
        self.text_encoder = TextEncoder(c.text)
        self.register_buffer("empty_prompt", self.text_encoder.tokenize([""]), persistent=False)
        self.patch = nn.Conv2d(c.in_channels, c.width, c.patch_size, stride=c.patch_size)
        self.register_buffer("positions", sincos_positions(c.input_size // c.patch_size, c.width), persistent=False)
        self.time = nn.Sequential(nn.Linear(TIME_FEATURES, c.width), nn.SiLU(), nn.Linear(c.width, c.width))
        # the pooled text is in the tower's projection space (CLIP's embedding: RN50's is 1024 wide on
        # 512-wide tokens), the tokens are c.text.width wide
        self.pooled = nn.Linear(self.text_encoder.pooled_width, c.width)
        self.blocks = nn.ModuleList(Block(c.width, c.heads, c.mlp_ratio, c.text.width) for _ in range(c.depth))
        self.final_norm = nn.LayerNorm(c.width, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), zero_(nn.Linear(c.width, 2 * c.width)))
        self.out = zero_(nn.Linear(c.width, c.patch_size**2 * c.in_channels))

    def encode_text(self, rows: torch.Tensor | None, n: int):
        """Text context for n samples: TextEncoder output of the token rows (None: the empty
        prompt). In training a caption_dropout share of rows becomes the empty prompt."""
        rows = self.empty_prompt.expand(n, -1) if rows is None else self.drop_captions(rows)
        return self.text_encoder(rows)

    def drop_captions(self, rows: torch.Tensor) -> torch.Tensor:
        """In training, a caption_dropout share of the token rows replaced by the empty prompt
        (the rows themselves in evaluation)."""
        if not (self.training and self.config.caption_dropout > 0):
            return rows
        drop = torch.rand(rows.shape[0], device=rows.device) < self.config.caption_dropout
        return torch.where(drop[:, None], self.empty_prompt, rows)

    def unpatchify(self, h: torch.Tensor) -> torch.Tensor:
        c, p = self.config, self.config.patch_size
        side = c.input_size // p
        h = h.reshape(h.shape[0], side, side, p, p, c.in_channels)
        return h.permute(0, 5, 1, 3, 2, 4).reshape(h.shape[0], c.in_channels, side * p, side * p)

    def forward(self, x, t, text=None, context=None):
        """x (n, C, H, W) latents, t (n,); text: token rows (TextEncoder.tokenize) or
        context: a precomputed encode_text(...) (a sampler passes it to skip re-encoding)."""
        pooled, tokens, mask = context if context is not None else self.encode_text(text, x.shape[0])
        c = self.time(sinusoidal_features(t.to(x.dtype), TIME_FEATURES)) + self.pooled(pooled)
        h = self.patch(x).flatten(2).transpose(1, 2) + self.positions
        for block in self.blocks:
            h = block(h, c, tokens, mask)
        shift, scale = self.final_ada(c).chunk(2, dim=-1)
        return self.unpatchify(self.out(modulate(self.final_norm(h), shift, scale)))
