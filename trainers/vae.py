"""Train the KL autoencoder of the text-to-image model on captioned images (`shapes` or `scenes`)
(latent diffusion, Rombach et al. 2022: first the autoencoder, then the diffusion model
on its latents, see trainers.text2image).

    python -m trainers.vae --fp16-weights --release weights/shapes-vae
    python -m trainers.vae --dataset scenes --fp16-weights --release weights/scenes-vae

After training, the reconstruction error and the share of shape attributes the
reconstructions keep (the data set's judge) on held-out images go into the checkpoint.
"""
import argparse

import numpy as np
import torch

from trainers.common import Release, add_loop_args, command_line, image_grid, loop_config, public_path, train
from zoo.data.captioned import CAPTIONED, captioned
from zoo.hub import CardInfo
from zoo.nets.vae import VAE, vae_loss
from zoo.pipelines.pixels import to_uint8

TEST_SEED = 10_000  # held-out images: another seed of the generator


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=sorted(CAPTIONED), default="shapes", help="the captioned images")
    ap.add_argument("--num-images", type=int, default=20_000, help="size of the generated training set")
    ap.add_argument("--channels", type=lambda s: tuple(int(v) for v in s.split(",")), default=(16, 32, 64),
                    help="comma-separated widths per resolution (len - 1 halvings)")
    ap.add_argument("--latent-channels", type=int, default=4)
    ap.add_argument("--kl-weight", type=float, default=1e-4, help="beta of the KL term (per pixel)")
    ap.add_argument("--fp16-weights", action="store_true", help="store the released weights in float16")
    add_loop_args(ap, steps=4000, batch_size=32, lr=2e-3, warmup=100, lr_decay="cosine", ema_decay=0.999,
                  ckpt_every=500, log_every=50, out="runs/vae-shapes")
    return ap.parse_args(argv)


@torch.no_grad()
def reconstruct(vae: VAE, images: torch.Tensor) -> np.ndarray:
    """uint8 (n, 3, H, W) -> uint8 (n, H, W, 3) decoded from the posterior means."""
    device = next(vae.parameters()).device
    x = images.float().to(device) / 127.5 - 1
    return np.concatenate([to_uint8(vae.decode(vae.encode(chunk)[0])) for chunk in x.split(256)])


def evaluation(test, captions, data):
    """Release.evaluate: PSNR of the reconstructions and the shape attributes they keep."""
    def evaluate(vae):
        recon = reconstruct(vae, test.images)
        truth = test.images.permute(0, 2, 3, 1).numpy()
        mse = float(((recon.astype(np.float64) - truth) ** 2).mean())
        psnr = 10 * np.log10(255.0**2 / mse)
        kept = data.score(recon, captions)
        print(f"held-out PSNR {psnr:.2f} dB, attributes kept: {kept}")
        numbers = {"psnr_db": round(psnr, 2), "attributes_kept": {k: round(v, 4) for k, v in kept.items()}}
        rows = "\n".join(f"| {k} | {v:.3f} |" for k, v in kept.items())
        return numbers, (f"On {len(test)} held-out images: PSNR {psnr:.2f} dB. Share of the attributes their captions "
                         f"name that the reconstructions keep (read back by the {data.name} judge):\n\n"
                         f"| attribute | kept |\n|---|---|\n{rows}\n")
    return evaluate


def main(argv=None):
    args = parse_args(argv)
    cfg = loop_config(args, may_change=("fp16_weights",))  # the release's storage, not what is trained
    spec = captioned(args.dataset)
    data, _ = spec.load(args.num_images, cfg.seed)
    test, test_captions = spec.load(1000, TEST_SEED)
    config = VAE.Config(image_size=spec.image_size, channels=args.channels, latent_channels=args.latent_channels)
    card = CardInfo(title=f"KL autoencoder for the {spec.name} data set", tags=["vae", "latent-diffusion", spec.name],
                    description=(f"Convolutional KL-VAE (latent diffusion's first stage), 3x{spec.image_size}x"
                                 f"{spec.image_size} images to "
                                 f"{'x'.join(map(str, config.latent_shape))} latents, KL weight {args.kl_weight}, "
                                 "from the diffusion model zoo."),
                    data=f"{args.num_images} generated images: {spec.description}, seed {cfg.seed}")
    release = Release("vae", config, {}, card, extra={"kl_weight": args.kl_weight, "data": {"dataset": spec.name}},
                      dtype=torch.float16 if args.fp16_weights else torch.float32,
                      command=command_line("trainers.vae", argv), evaluate=evaluation(test, test_captions, spec))
    originals = test.images[:16].float() / 127.5 - 1

    def sample_fn(vae):  # originals (top two rows) over their reconstructions
        x = originals.to(next(vae.parameters()).device)
        return image_grid(torch.cat([x, vae.decode(vae.encode(x)[0])]), nrow=8)

    torch.manual_seed(cfg.seed)
    result = train(VAE(config), lambda net, x: vae_loss(net, x, args.kl_weight)[0],
                   lambda step, g: data.batch(cfg.batch_size, g), cfg, release, sample_fn=sample_fn)
    print(f"released {public_path(result.release_dir, cfg.out)} after {result.step} steps, "
          f"loss {result.final_loss:.5f}")
    return result


if __name__ == "__main__":
    main()
