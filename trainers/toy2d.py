"""Train an MLP denoiser on a 2D point cloud; writes a Hub-shaped checkpoint folder.

    python -m trainers.toy2d --dataset moons --release weights/toy2d/moons
    python -m trainers.toy2d --dataset gmm --objective flow --schedule flow --push-to-hub USER/toy2d-gmm

Any dataset x objective (eps, x0, v, flow, score) x schedule; all shared-loop flags
(--resume, --push-to-hub, --mixed-precision, ...). The loss and batches are those of
zoo.pipelines.toy2d, so this trains exactly what the app trains in the browser.
"""
import argparse
import dataclasses

import torch

from trainers.common import Release, add_loop_args, command_line, loop_config, public_path, train
from zoo.data.toy2d import TOY_DATASETS, toy_density_image
from zoo.diffusion import PARAMETERISATIONS, SCHEDULES, T_SAMPLINGS, DiffusionConfig
from zoo.hub import CardInfo
from zoo.nets.mlp import MLP
from zoo.pipelines.toy2d import ToyTrainConfig, config_sections, new_net, pipeline_from_net, toy_batch, toy_loss

# The CLI's defaults are the bundled weights' settings: a longer run of a wider net than the
# in-browser default (ToyTrainConfig), which is tuned to finish in about 11 s.
DEFAULTS = dataclasses.replace(ToyTrainConfig(), steps=20_000, lr=3e-3, net=MLP.Config(hidden=128, depth=3))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=TOY_DATASETS, default=DEFAULTS.dataset)
    ap.add_argument("--objective", choices=PARAMETERISATIONS, default=DEFAULTS.diffusion.parameterisation)
    ap.add_argument("--schedule", choices=sorted(SCHEDULES), default=DEFAULTS.diffusion.schedule)
    ap.add_argument("--t-sampling", choices=T_SAMPLINGS, default=DEFAULTS.diffusion.t_sampling)
    ap.add_argument("--hidden", type=int, default=DEFAULTS.net.hidden)
    ap.add_argument("--depth", type=int, default=DEFAULTS.net.depth)
    add_loop_args(ap, steps=DEFAULTS.steps, batch_size=DEFAULTS.batch_size, lr=DEFAULTS.lr,
                  ema_decay=DEFAULTS.ema_decay, lr_decay=DEFAULTS.lr_decay, grad_clip=DEFAULTS.grad_clip,
                  ckpt_every=2000, log_every=100, out=None)
    return ap.parse_args(argv)


def samples_image(toy: ToyTrainConfig):
    """sample_fn for the loop: 2000 Heun samples over the data density, as a PIL image."""
    def draw(net):
        from zoo import figures as plots

        out = pipeline_from_net(net, toy)(n=2000, steps=20, solver="heun", seed=0)
        fig = plots.samples_figure(out.points, toy_density_image(toy.dataset), 3.0,
                                   f"{toy.dataset}: 2000 samples, Heun, 20 steps")
        return plots.figure_image(fig)
    return draw


def main(argv=None):
    args = parse_args(argv)
    args.out = args.out or f"runs/toy2d-{args.dataset}"
    cfg = loop_config(args)
    toy = ToyTrainConfig(
        dataset=args.dataset,
        diffusion=DiffusionConfig(schedule=args.schedule, parameterisation=args.objective, t_sampling=args.t_sampling),
        net=dataclasses.replace(DEFAULTS.net, hidden=args.hidden, depth=args.depth),
        steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, lr_decay=cfg.lr_decay, grad_clip=cfg.grad_clip,
        ema_decay=cfg.ema_decay, seed=cfg.seed)
    card = CardInfo(title=f"Toy 2D diffusion: {args.dataset}", tags=["toy2d", args.objective, args.schedule],
                    description=f"MLP denoiser ({args.objective} objective, {args.schedule} schedule) on the 2D "
                                f"'{args.dataset}' point cloud, from the diffusion model zoo.",
                    data=f"zoo.data.toy2d '{args.dataset}', fresh points every step")
    # fp16 storage halves the file; the bundled models' distance to the data is unchanged
    release = Release("mlp", toy.net, toy.diffusion, card, extra=config_sections(toy), dtype=torch.float16,
                      command=command_line("trainers.toy2d", argv))
    result = train(new_net(toy), toy_loss(toy), toy_batch(toy), cfg, release, sample_fn=samples_image(toy))
    print(f"released {public_path(result.release_dir, cfg.out)} after {result.step} steps, "
          f"loss {result.final_loss:.4f}, {result.wall_time:.1f} s")


if __name__ == "__main__":
    main()
