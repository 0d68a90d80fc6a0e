"""The KL-regularised autoencoder of latent diffusion (Rombach et al. 2022, Sec. 3 and
Appendix G; the VAE of Kingma & Welling 2014): a conv encoder to a diagonal Gaussian
posterior q(z | x) over a small latent image (here f = 4: 3x32x32 -> 4x8x8), a conv
decoder back to pixels. The diffusion model then runs on z, 12x fewer numbers than x.

Built from the UNet's residual blocks (without a time embedding) and its resamplers.
"""
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from zoo.nets.unet import Downsample, ResBlock, Upsample, group_norm

LOGVAR_RANGE = (-30.0, 20.0)  # as LDM's DiagonalGaussianDistribution: keeps exp(logvar) finite


class VAE(nn.Module):
    @dataclass
    class Config:
        in_channels: int = 3
        image_size: int = 32
        channels: tuple = (32, 64, 64)  # per resolution; len - 1 downsamplings (f = 2^(len-1))
        latent_channels: int = 4
        groups: int = 8

        # load-time bounds (zoo.hub.validation.check_config); other integers are widths, at
        # most the largest tensor dimension in the weights file; sizes the weights do not fix are capped
        LIMITS: ClassVar[dict] = {"image_size": 256}

        def __post_init__(self):
            self.channels = tuple(self.channels)

        @property
        def latent_shape(self) -> tuple:
            f = 2 ** (len(self.channels) - 1)
            return (self.latent_channels, self.image_size // f, self.image_size // f)

    def __init__(self, config: "VAE.Config"):
        super().__init__()
        self.config = c = config
        block = lambda a, b: ResBlock(a, b, 0, 0.0, c.groups)
        enc = [nn.Conv2d(c.in_channels, c.channels[0], 3, padding=1)]
        for i, ch in enumerate(c.channels):
            enc.append(block(c.channels[max(i - 1, 0)], ch))
            if i < len(c.channels) - 1:
                enc.append(Downsample(ch))
        enc += [group_norm(c.channels[-1], c.groups), nn.SiLU(), nn.Conv2d(c.channels[-1], 2 * c.latent_channels, 1)]
        self.encoder = nn.Sequential(*enc)
        self.decoder_in = nn.Conv2d(c.latent_channels, c.channels[-1], 3, padding=1)
        self.decoder_blocks = nn.ModuleList()
        rev = c.channels[::-1]
        for i, ch in enumerate(rev):
            self.decoder_blocks.append(block(rev[max(i - 1, 0)], ch))
            if i < len(rev) - 1:
                self.decoder_blocks.append(Upsample(ch))
        self.decoder_out = nn.Sequential(group_norm(rev[-1], c.groups), nn.SiLU(),
                                         nn.Conv2d(rev[-1], c.in_channels, 3, padding=1))

    def encode(self, x: torch.Tensor):
        """Images in [-1, 1] -> (mean, logvar) of q(z | x), each (n, *latent_shape)."""
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents -> images (unclamped; in [-1, 1] when z is on the data's latent manifold)."""
        h = self.decoder_in(z)
        for layer in self.decoder_blocks:
            h = layer(h, 2 * h.shape[-1]) if isinstance(layer, Upsample) else layer(h)
        return self.decoder_out(h)

    def forward(self, x: torch.Tensor, sample: bool = True):
        """(reconstruction, mean, logvar); z drawn from q(z | x) by reparameterisation."""
        mean, logvar = self.encode(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean) if sample else mean
        return self.decode(z), mean, logvar


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z | x) || N(0, I)) per sample, summed over latent dimensions (nats)."""
    return 0.5 * (mean**2 + logvar.exp() - 1.0 - logvar).flatten(1).sum(1)


def vae_loss(vae: VAE, x: torch.Tensor, kl_weight: float) -> tuple:
    """Reconstruction error (mean squared, per pixel) + kl_weight * KL per pixel: the
    beta-VAE objective LDM uses with a small beta so the latent keeps the detail.
    Returns (loss, reconstruction mse, kl per pixel)."""
    recon, mean, logvar = vae(x)
    mse = F.mse_loss(recon, x)
    kl = kl_divergence(mean, logvar).mean() / x[0].numel()
    return mse + kl_weight * kl, mse, kl
