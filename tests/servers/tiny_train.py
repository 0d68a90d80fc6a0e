"""A tiny trainer on trainers/common.py, for the loop tests (plain, killed+resumed,
`accelerate launch --cpu --num_processes 2`, --push-to-hub). Run with PYTHONPATH
holding the repository root and tests/."""
import argparse
import shlex
import time

import torch

from servers import tiny
from trainers.common import Release, add_loop_args, image_grid, loop_config, train
from zoo.diffusion.config import DiffusionConfig
from zoo.hub import CardInfo


def main(argv=None):
    parser = add_loop_args(argparse.ArgumentParser(), steps=20, batch_size=16, lr=1e-2, ckpt_every=5,
                           log_every=2, ema_decay=0.9)
    parser.add_argument("--step-delay", type=float, default=0.0, help="seconds per batch (lets tests kill mid-run)")
    args = parser.parse_args(argv)
    cfg = loop_config(args)
    tiny.register()
    torch.manual_seed(cfg.seed)
    net_cfg = tiny.TinyNet.Config()
    net = tiny.TinyNet(net_cfg)

    def batch_fn(step, generator):
        time.sleep(args.step_delay)
        return tiny.batch_fn(step, generator, cfg.batch_size)

    def sample_fn(ema_net):
        return image_grid(torch.rand(4, 3, 8, 8) * 2 - 1)

    card = CardInfo(title="tiny ring", tags=["toy2d"], datasets=["ring"], data="noisy ring, 2D")
    release = Release("tiny", net_cfg, DiffusionConfig(schedule="flow", parameterisation="flow"), card,
                      extra={"data": {"name": "ring"}},
                      command=None if argv is None else shlex.join(["python", "tests/servers/tiny_train.py", *argv]))
    return train(net, tiny.loss_fn, batch_fn, cfg, release, sample_fn=sample_fn)


if __name__ == "__main__":
    result = main()
    print(f"done step={result.step} loss={result.final_loss:.4f}")
