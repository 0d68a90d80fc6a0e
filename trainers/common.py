"""The training loop every trainer shares, built on Hugging Face accelerate.

    net = build_net(...)                                   # caller seeds, builds
    result = train(net, loss_fn, batch_fn, cfg, release, sample_fn=...)

* accelerate: device placement, mixed precision (bf16/fp16 on GPU), gradient
  accumulation, and multi-GPU / multi-node or `accelerate launch --cpu --num_processes 2`
  with no code change. `--batch-size` is per process and per micro-batch.
* EMA of the weights (torch.optim.swa_utils.AveragedModel, zoo.optim.ema_multi_avg_fn
  with warm-up);
  the released weights are the EMA.
* Exact resume. All randomness of a step is derived from (seed, step, micro-batch, rank):
  `batch_fn(step, generator)` draws from the generator it is given, and the global torch
  RNG (used by `loss_fn` for t and noise) is reseeded with the same key. Checkpoints hold
  model, EMA, optimizer, grad scaler, step, wall time and every RNG state, as safetensors
  + JSON (no pickle), written into a temp sibling folder and renamed over OUT/checkpoint.
  So SIGKILL + `--resume` ends with the same weights as an uninterrupted run (CPU).
* At each checkpoint: a sample grid from `sample_fn(ema_model) -> PIL.Image` and a
  Hub-shaped release folder (zoo.hub.save_checkpoint) whose model card records the
  command line, local paths shown by `public_path` (never a folder outside the run or the
  working directory; trainers use it for every path they write into config.json or the
  card). `--push-to-hub REPO_ID` uploads that folder at the end; the HF token appears in
  no file, log line or error message.
* Honest resume (trainers/resume.py). `loop_config(args)` records every flag that defines the run (all but
  MAY_CHANGE and a trainer's own `may_change`; trainers/loop_config.py) and the checkpoint keeps them; `--resume`
  with another value of any of them stops with one message listing each change, before
  any weights are loaded. Temp folders of killed writes are removed at the next start.
* tqdm progress bar; OUT/log.csv; TensorBoard through accelerate's tracker when installed.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, is_tensorboard_available
from safetensors.torch import load_file, save_file
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from trainers.published import (  # noqa: F401 - trainers
    command_line,
    looks_like_path,
    public_command,
    public_path,
    redact,  # import these from here
)
from trainers.init_from import init_weights
from trainers.loop_config import MAY_CHANGE, LoopConfig, add_loop_args, loop_config  # noqa: F401 - trainers
from trainers.resume import RunChanged, changed_message
from trainers.state_files import flatten_optimizer, rng_state, set_rng_state, state_tensors, unflatten_optimizer
from zoo import cpu, hub
from zoo.optim import ema_multi_avg_fn, learning_rate


@dataclass
class Release:
    """What the release folder needs beyond the weights (see zoo.hub.save_checkpoint)."""

    arch: str
    net_config: Any
    diffusion_config: Any
    card: hub.CardInfo = field(default_factory=hub.CardInfo)
    extra: dict = field(default_factory=dict)
    dtype: torch.dtype = torch.float32
    command: str | None = None  # for the card; default: this process's sys.argv
    # evaluate(ema_net) -> (numbers, markdown): run once on the main process at the last step,
    # recorded in config.json 'eval' and the card before any --push-to-hub
    evaluate: Callable[[torch.nn.Module], tuple] | None = None


@dataclass
class TrainResult:
    step: int
    final_loss: float
    wall_time: float
    release_dir: Path
    ema: torch.nn.Module  # the EMA net (plain module, on the accelerator's device)


# ----------------------------------------------------------------------------- helpers


def step_seed(seed: int, step: int, micro: int, rank: int) -> int:
    """A well-mixed 63-bit seed for one micro-batch of one process (numpy SeedSequence)."""
    state = np.random.SeedSequence([seed, step, micro, rank]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def to_device(batch, device):
    """Move tensors in (nested) dicts / lists / tuples to `device`."""
    if torch.is_tensor(batch):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def image_grid(images: torch.Tensor, nrow: int | None = None):
    """PIL grid of images in [-1, 1], shape (N, C, H, W) (for sample_fn callbacks)."""
    from torchvision.transforms.functional import to_pil_image
    from torchvision.utils import make_grid

    nrow = nrow or max(1, int(len(images) ** 0.5))
    grid = make_grid(images.detach().float().cpu().clamp(-1, 1), nrow=nrow, padding=1, pad_value=1.0)
    return to_pil_image((grid + 1) / 2)


def _has_accelerator() -> bool:
    return torch.cuda.is_available() or torch.backends.mps.is_available()


# ----------------------------------------------------------------------------- the loop


class _Loop:
    """State of one training run; `train()` below is the public entry point."""

    def __init__(self, net, loss_fn, batch_fn, cfg: LoopConfig, release: Release, sample_fn, optimizer_fn):
        self.cfg, self.release, self.loss_fn, self.batch_fn, self.sample_fn = cfg, release, loss_fn, batch_fn, sample_fn
        # the processes of this machine share its cores (zoo.cpu: one place for the app and the trainers)
        cpu.set_threads(int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        tracker = "tensorboard" if is_tensorboard_available() else None
        # cpu=True without a GPU: under torchrun (`accelerate launch --multi_gpu`) accelerate then
        # picks MULTI_CPU with gloo instead of running every process as a lone single process.
        self.acc = Accelerator(mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum,
                               log_with=tracker, project_dir=cfg.out, cpu=not _has_accelerator())
        # before the EMA copies the net (a --resume loads over both)
        self.start = init_weights(net, cfg.init_from, release.arch, release.net_config) if cfg.init_from else {}
        # EMA is built from the plain module before DDP wraps it; it lives outside DDP. Only the
        # parameters are averaged: the nets' buffers are constants (attention masks, position
        # tables, token maps), and averaging a causal mask's -inf entries gives NaN.
        self.ema = AveragedModel(net, multi_avg_fn=ema_multi_avg_fn(cfg.ema_decay), use_buffers=False)
        self.ema.to(self.acc.device)
        optimizer = (optimizer_fn or (lambda p: torch.optim.AdamW(p, lr=cfg.lr, weight_decay=0.0)))(net.parameters())
        self.model, self.optimizer = self.acc.prepare(net, optimizer)
        self.out, self.ckpt = Path(cfg.out), Path(cfg.out) / "checkpoint"
        self.step, self.wall, self.final_loss, self.window = 0, 0.0, float("nan"), []
        self.commands = [public_command(release.command or command_line(), cfg.out)]  # all that made the weights
        # the checkpoint's temp folder: named for the main process (so clean_orphans can tell a
        # killed writer's) and known to every rank (each writes its RNG file into it)
        pid, tag = broadcast_object_list([os.getpid(), uuid.uuid4().hex[:8]])
        self.ckpt_tmp = self.ckpt.with_name(f".{self.ckpt.name}.tmp-{pid}-{tag}")

    # -- one optimizer step ------------------------------------------------------------

    def train_step(self) -> float:
        cfg, acc = self.cfg, self.acc
        lr = learning_rate(cfg.lr, self.step, cfg.steps, cfg.warmup, cfg.lr_decay)
        for group in self.optimizer.param_groups:  # stateless: a function of step only
            group["lr"] = lr
        losses = []
        for micro in range(cfg.grad_accum):
            seed = step_seed(cfg.seed, self.step, micro, acc.process_index)
            torch.manual_seed(seed)  # loss_fn's t / noise draws
            batch = to_device(self.batch_fn(self.step, torch.Generator().manual_seed(seed)), acc.device)
            with acc.accumulate(self.model):
                loss = self.loss_fn(self.model, batch)
                acc.backward(loss)
                if acc.sync_gradients and cfg.grad_clip > 0:
                    acc.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach().float().item())
        self.ema.update_parameters(acc.unwrap_model(self.model))
        self.step += 1
        return sum(losses) / len(losses)

    def mean_loss(self) -> float:
        """Mean loss of the steps since the last call, averaged over processes (collective)."""
        local = torch.tensor(sum(self.window) / max(1, len(self.window)), device=self.acc.device)
        self.window = []
        return self.acc.reduce(local, reduction="mean").item()

    # -- checkpoints ---------------------------------------------------------------------

    def save_state(self) -> None:
        """All ranks write their RNG file into a temp folder; rank 0 the rest, then renames it."""
        acc, tmp = self.acc, self.ckpt_tmp
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)  # this run's own, from a save that failed part-way
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        tensors, meta = rng_state()
        save_file(tensors, str(tmp / f"rng_{acc.process_index}.safetensors"))
        (tmp / f"rng_{acc.process_index}.json").write_text(json.dumps(meta))
        if acc.is_main_process:
            self._save_main(tmp)
        acc.wait_for_everyone()
        if acc.is_main_process:
            hub.replace_dir(tmp, self.ckpt)
        acc.wait_for_everyone()

    def _save_main(self, tmp: Path) -> None:
        save_file(state_tensors(self.acc.unwrap_model(self.model)), str(tmp / "model.safetensors"))
        save_file(state_tensors(self.ema), str(tmp / "ema.safetensors"))
        opt_tensors, opt_meta = flatten_optimizer(self.optimizer.state_dict())
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        (tmp / "optimizer.json").write_text(json.dumps(opt_meta))
        scaler = self.acc.scaler.state_dict() if self.acc.scaler is not None else None
        state = {"step": self.step, "wall_time": self.wall, "final_loss": self.final_loss, "seed": self.cfg.seed,
                 "num_processes": self.acc.num_processes, "scaler": scaler, "commands": self.commands,
                 "run": self.cfg.run}
        (tmp / "state.json").write_text(json.dumps(state, indent=2))

    def load_state(self) -> None:
        if self.acc.is_main_process:
            hub.recover_dir(self.ckpt)  # a crash between replace_dir's two renames
        self.acc.wait_for_everyone()
        where = public_path(self.ckpt, self.cfg.out)
        if not (self.ckpt / "state.json").is_file():
            self.acc.print(f"--resume: no checkpoint in {where}, starting from scratch")
            return
        state = json.loads((self.ckpt / "state.json").read_text())
        processes = state.get("num_processes", self.acc.num_processes)
        if processes != self.acc.num_processes:  # the batch is per process, and so are the seeds
            raise RunChanged(changed_message(where, [("processes (accelerate launch --num_processes)", processes,
                                                       self.acc.num_processes)]))
        if not state.get("run"):
            self.acc.print(f"note: {where} predates recorded run flags; resuming without checking them")
        self.acc.unwrap_model(self.model).load_state_dict(load_file(str(self.ckpt / "model.safetensors")))
        self.ema.load_state_dict(load_file(str(self.ckpt / "ema.safetensors")))
        meta = json.loads((self.ckpt / "optimizer.json").read_text())
        self.optimizer.load_state_dict(unflatten_optimizer(load_file(str(self.ckpt / "optimizer.safetensors")), meta))
        if state["scaler"] and self.acc.scaler is not None:
            self.acc.scaler.load_state_dict(state["scaler"])
        rng = self.ckpt / f"rng_{self.acc.process_index}"
        if rng.with_suffix(".safetensors").is_file():
            set_rng_state(load_file(str(rng.with_suffix(".safetensors"))),
                          json.loads(rng.with_suffix(".json").read_text()))
        self.step, self.wall, self.final_loss = state["step"], state["wall_time"], state["final_loss"]
        # a continued run keeps its history (made public again: older checkpoints kept raw paths)
        earlier = [public_command(c, self.cfg.out) for c in state.get("commands", [])]
        self.commands = earlier + [c for c in self.commands if c not in earlier[-1:]]
        self.acc.print(f"resumed from {where} at step {self.step}")

    def write_release(self) -> None:
        """Main process: sample grid + Hub-shaped folder of the EMA weights with its card."""
        ema_net = self.ema.module
        image = None
        if self.sample_fn is not None:
            with torch.no_grad():
                image = self.sample_fn(ema_net.eval())
            image.save(self.out / f"samples_{self.step:07d}.png")
        card = dataclasses.replace(self.release.card, train_command=" && ".join(self.commands), steps=self.step,
                                   final_loss=self.final_loss, wall_time_s=self.wall)
        extra = {**self.release.extra, "training": {**self.release.extra.get("training", {}), **_training_facts(self)}}
        hub.save_checkpoint(self.cfg.release_dir, ema_net, self.release.arch, self.release.net_config,
                            self.release.diffusion_config, extra=extra, card=card, sample_image=image,
                            dtype=self.release.dtype)
        if self.release.evaluate is not None and self.step == self.cfg.steps:
            with torch.no_grad():
                numbers, text = self.release.evaluate(ema_net.eval())
            hub.record_evaluation(self.cfg.release_dir, numbers, text, f"at step {self.step}, by the trainer")


def _training_facts(loop: _Loop) -> dict:
    cfg = loop.cfg
    return {"steps": loop.step, "batch_size": cfg.batch_size, "num_processes": loop.acc.num_processes,
            "grad_accum": cfg.grad_accum, "lr": cfg.lr, "ema_decay": cfg.ema_decay, "seed": cfg.seed,
            "mixed_precision": cfg.mixed_precision, "final_loss": loop.final_loss, "wall_time_s": round(loop.wall, 3),
            **loop.start}



class _Log:
    """OUT/log.csv (main process); on resume, rows past the checkpoint are dropped."""

    def __init__(self, path: Path, resume_step: int):
        self.path = path
        rows = []
        if path.is_file() and resume_step > 0:
            with path.open() as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, ["step", "loss", "lr", "wall_time"])
            writer.writeheader()
            writer.writerows(rows)

    def write(self, step: int, loss: float, lr: float, wall: float) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([step, f"{loss:.6g}", f"{lr:.6g}", f"{wall:.3f}"])


def train(
    net: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor],
    batch_fn: Callable[[int, torch.Generator], Any],
    cfg: LoopConfig,
    release: Release,
    sample_fn: Callable[[torch.nn.Module], Any] | None = None,
    optimizer_fn: Callable | None = None,
) -> TrainResult:
    """Train `net` for cfg.steps optimizer steps; see the module docstring for the contract.

    loss_fn(model, batch) -> scalar; batch_fn(step, generator) -> batch (CPU tensors fine,
    moved to the device here; draw randomness only from `generator`); sample_fn(ema_net) ->
    PIL image; optimizer_fn(params) -> optimizer (default AdamW(lr=cfg.lr))."""
    loop = _Loop(net, loss_fn, batch_fn, cfg, release, sample_fn, optimizer_fn)
    acc = loop.acc
    if acc.is_main_process:
        loop.out.mkdir(parents=True, exist_ok=True)
        _clean_orphans(loop)
    acc.wait_for_everyone()
    if cfg.resume:
        loop.load_state()
        _stop_early(loop)
    log = _Log(loop.out / "log.csv", loop.step) if acc.is_main_process else None
    acc.init_trackers("train")
    bar = tqdm(total=cfg.steps, initial=loop.step, disable=not acc.is_main_process, desc="train")
    while loop.step < cfg.steps:
        t0 = time.perf_counter()
        loop.window.append(loop.train_step())
        loop.wall += time.perf_counter() - t0
        bar.update(1)
        _after_step(loop, log, bar)
    bar.close()
    try:
        if cfg.push_to_hub and acc.is_main_process:
            _push(cfg, acc)
    finally:
        acc.wait_for_everyone()
        acc.end_training()
        _release_accelerate_state(acc)
    return TrainResult(loop.step, loop.final_loss, loop.wall, cfg.release_dir, loop.ema.module)


def _stop_early(loop: _Loop) -> None:
    """A --resume whose --steps is the checkpoint's step ends the run there: the release becomes
    the final one (evaluation, and the command in the card); one past it is refused."""
    if loop.step > loop.cfg.steps:
        raise RunChanged(f"--resume refused: the checkpoint in {public_path(loop.ckpt, loop.cfg.out)} is at step "
                         f"{loop.step}, past --steps {loop.cfg.steps}")
    if loop.step == loop.cfg.steps and loop.acc.is_main_process:
        loop.write_release()


def _clean_orphans(loop: _Loop) -> None:
    """Main process, at start: remove what writers killed mid-write left next to the
    checkpoint and the release (and inside it: record_evaluation's rewrites, which a push
    would upload); a live writer's temp folder stays."""
    release = loop.cfg.release_dir
    removed = [*hub.clean_orphans(loop.ckpt), *hub.clean_orphans(release),
               *hub.clean_orphans(release / hub.CONFIG_NAME), *hub.clean_orphans(release / hub.CARD_NAME)]
    legacy = loop.ckpt.with_name(".checkpoint.tmp")  # the fixed name of earlier versions
    if legacy.is_dir():
        shutil.rmtree(legacy, ignore_errors=True)
        removed.append(legacy)
    if removed:
        loop.acc.print(f"removed temp files of killed writes: {', '.join(sorted(p.name for p in removed))}")


def _push(cfg: LoopConfig, acc: Accelerator) -> None:
    """Upload the release folder. An error whose report would show the token (message or
    chain) is replaced by one that does not."""
    try:
        url = hub.push_folder(cfg.release_dir, cfg.push_to_hub)
    except Exception as err:
        report = "".join(traceback.format_exception(err))
        if redact(report) == report:
            raise
        raise RuntimeError(f"--push-to-hub {cfg.push_to_hub} failed: {redact(str(err))} (the release folder "
                           f"{public_path(cfg.release_dir, cfg.out)} is complete; push it again)") from None
    acc.print(f"pushed {public_path(cfg.release_dir, cfg.out)} to {cfg.push_to_hub}: {redact(url)}")


def _release_accelerate_state(acc: Accelerator) -> None:
    """accelerate keeps process-wide singletons that refuse a second Accelerator with other
    settings (e.g. mixed precision). A single-process run clears them so the app or a test
    can call train() again in the same process; distributed runs keep their process group."""
    if acc.num_processes == 1:
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state()
        GradientState._reset_state()


def _after_step(loop: _Loop, log: _Log | None, bar) -> None:
    """Logging and checkpointing at their intervals (collectives: every rank gets here)."""
    cfg, step = loop.cfg, loop.step
    is_ckpt = step % cfg.ckpt_every == 0 or step == cfg.steps
    if step % cfg.log_every == 0 or is_ckpt:
        loop.final_loss = loop.mean_loss()
        lr = loop.optimizer.param_groups[0]["lr"]
        if log is not None:
            log.write(step, loop.final_loss, lr, loop.wall)
        loop.acc.log({"loss": loop.final_loss, "lr": lr}, step=step)
        bar.set_postfix(loss=f"{loop.final_loss:.4f}")
    if is_ckpt:
        if loop.acc.is_main_process:
            loop.write_release()
        loop.save_state()
