"""The training loop's settings: LoopConfig, one command-line flag each, and the rule of an
honest resume (which flags define a run and must match its checkpoint; trainers/resume.py)."""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from trainers.resume import check_resume, run_flags
from zoo.optim import LR_DECAYS


@dataclass
class LoopConfig:
    """Loop settings, one CLI flag each (see add_loop_args)."""

    out: str = "runs/run"
    release: str | None = None  # release folder; default OUT/release
    steps: int = 1000
    batch_size: int = 128
    lr: float = 2e-4
    warmup: int = 0  # linear LR warm-up steps (stateless, so resume stays exact)
    lr_decay: str = "none"  # none | cosine (zoo.optim.learning_rate)
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    ckpt_every: int = 500
    log_every: int = 50
    seed: int = 0
    mixed_precision: str = "no"  # no | fp16 | bf16
    grad_accum: int = 1
    resume: bool = False
    push_to_hub: str | None = None
    init_from: str | None = None  # a released checkpoint folder whose weights the run starts from
    # not a flag: the run-defining flags (loop_config), recorded in the checkpoint's state.json
    run: dict = field(default_factory=dict)

    @property
    def release_dir(self) -> Path:
        return Path(self.release) if self.release else Path(self.out) / "release"


def add_loop_args(parser: argparse.ArgumentParser, **defaults) -> argparse.ArgumentParser:
    """Add the shared loop flags; `defaults` overrides LoopConfig defaults per trainer."""
    base = dataclasses.replace(LoopConfig(), **defaults)
    group = parser.add_argument_group("training loop")
    group.add_argument("--out", default=base.out, help="run folder: checkpoint/, release/, log.csv")
    group.add_argument("--release", default=base.release, help="release folder (default OUT/release)")
    group.add_argument("--steps", type=int, default=base.steps)
    group.add_argument("--batch-size", type=int, default=base.batch_size, help="per process, per micro-batch")
    group.add_argument("--lr", type=float, default=base.lr)
    group.add_argument("--warmup", type=int, default=base.warmup)
    group.add_argument("--lr-decay", choices=LR_DECAYS, default=base.lr_decay)
    group.add_argument("--grad-clip", type=float, default=base.grad_clip)
    group.add_argument("--ema-decay", type=float, default=base.ema_decay)
    group.add_argument("--ckpt-every", type=int, default=base.ckpt_every)
    group.add_argument("--log-every", type=int, default=base.log_every)
    group.add_argument("--seed", type=int, default=base.seed)
    group.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default=base.mixed_precision)
    group.add_argument("--grad-accum", type=int, default=base.grad_accum)
    group.add_argument("--resume", action="store_true", default=base.resume, help="continue from OUT/checkpoint")
    group.add_argument("--push-to-hub", metavar="REPO_ID", default=base.push_to_hub)
    group.add_argument("--init-from", metavar="FOLDER", default=base.init_from,
                       help="start from the weights of a released checkpoint folder (same architecture and net "
                            "config; e.g. weights/scenes-t2i) to fine-tune it; optimizer and EMA start afresh")
    return parser


# Flags a resumed run may change: how long it runs and where its outputs go, never what is trained.
MAY_CHANGE = ("steps", "push_to_hub", "release", "ckpt_every", "log_every", "resume", "out")


def loop_config(args: argparse.Namespace, may_change: tuple = ()) -> LoopConfig:
    """LoopConfig from parsed args. Every other flag, the trainer's own included, defines the
    run unless it is in MAY_CHANGE or `may_change` (e.g. a storage dtype of the release);
    with --resume they must match the checkpoint's (RunChanged otherwise), checked here,
    before the trainer loads data or weights."""
    names = {f.name for f in dataclasses.fields(LoopConfig)} - {"run"}
    cfg = LoopConfig(**{k: v for k, v in vars(args).items() if k in names})
    cfg.run = run_flags(args, cfg.out, (*MAY_CHANGE, *may_change))
    if cfg.resume:
        check_resume(cfg)
    return cfg
