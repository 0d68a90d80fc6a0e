"""Distil a zoo teacher into a few-step student; writes Hub-shaped checkpoint folders.

    python -m trainers.distill --teacher toy-gmm --method progressive --teacher-steps 64 --rounds 6 \\
        --release 'weights/toy2d/gmm-pd{steps}' --release-steps 1,2,4
    python -m trainers.distill --teacher toy-moons --method consistency --release weights/toy2d/moons-cd
    python -m trainers.distill --teacher USER/toy2d-moons-flow --method reflow --push-to-hub USER/moons-reflow
    python -m trainers.distill --teacher mnist-cond --method consistency --guidance-range 0,4 --sample-steps 1,4 \
        --release weights/mnist-cond-cd

Methods (the math is zoo.diffusion.distill):
  progressive  Salimans & Ho 2022: each round halves the steps (teacher-steps / 2 ** round); the
               student starts from the teacher's weights and predicts v; round k's teacher is
               round k-1's student. Every round is a run of the shared loop in OUT/round-k.
  consistency  Song et al. 2023 (CD): one-step consistency function, EMA target network
               (--target-decay, kept in the optimizer state so --resume is exact), one teacher
               DDIM step between adjacent Karras times (--intervals); samples at 1, 2 or 4 steps.
  reflow       Liu et al. 2022: couplings (noise, the teacher's ODE solution from it) retrain a
               rectified flow from the teacher's weights (flow-schedule teachers only).

The teacher is a registry name or a Hub repo id of a toy 2D model or a class-conditional
UNet (trained, not distilled); other kinds are refused. A class-conditional teacher is
distilled with classifier-free guidance: each sample's w is drawn from --guidance-range and
is an input of the student (Meng et al. 2023; trainers/distill_teachers.py). --resume refuses
a different teacher or method (the shared loop's run-flag check, before anything loads). All
shared-loop flags apply (EMA, --push-to-hub, ...).
"""
import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from trainers.common import Release, add_loop_args, command_line, loop_config, public_path, train
from trainers.distill_teachers import Teacher, TeacherRefused, check_guidance_range, load_teacher
from zoo.data.toy2d import toy_density_image
from zoo.diffusion import DiffusionConfig, sample_info
from zoo.diffusion import distill as dm
from zoo.hub import CardInfo

STUDENT_PARAM = {"progressive": "v", "consistency": "edm"}  # v: stable at 1-2 steps (Salimans & Ho, Sec. 4)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", required=True, help="registry name or Hub repo id of a toy 2D model or a "
                    "class-conditional UNet")
    ap.add_argument("--method", choices=dm.DISTILL_METHODS, required=True)
    ap.add_argument("--teacher-steps", type=int, default=64, help="progressive: the teacher's DDIM steps")
    ap.add_argument("--rounds", type=int, default=6, help="progressive: halvings (student steps = teacher / 2^r)")
    ap.add_argument("--release-steps", default="", help="progressive: comma-separated student step counts "
                    "whose rounds release to --release (a pattern with {steps}); default the last round")
    ap.add_argument("--intervals", type=int, default=64, help="consistency: N time intervals")
    ap.add_argument("--target-decay", type=float, default=0.95, help="consistency: EMA rate of the target net")
    ap.add_argument("--sample-steps", default="1,2,4", help="consistency: the step counts the student supports")
    ap.add_argument("--guidance-range", default="0,4", help="guided teachers: the w range the student learns "
                    "(low,high; w is drawn uniformly per sample and becomes the student's input)")
    ap.add_argument("--couplings", type=int, default=40_000, help="reflow: (noise, sample) pairs")
    ap.add_argument("--coupling-steps", type=int, default=64, help="reflow: teacher Heun steps per coupling")
    add_loop_args(ap, steps=3000, batch_size=512, lr=1e-3, lr_decay="cosine", ema_decay=0.995, ckpt_every=1000,
                  log_every=100, out=None)
    return ap.parse_args(argv)


def _floats(text: str) -> tuple:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--guidance-range must be two numbers low,high, got {text!r}") from None
    return lo, hi


def _ints(text: str) -> tuple:
    try:
        return tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    except ValueError:
        raise SystemExit(f"expected comma-separated integers, got {text!r}") from None


# ----------------------------------------------------------------------------- rounds


@dataclasses.dataclass
class Round:
    """One run of the shared loop: which student it makes and where."""

    index: int            # 1-based
    steps: tuple          # step counts the student supports
    out: str
    release: str | None   # None: OUT/release of this round


def plan_rounds(args) -> list:
    if args.method != "progressive":
        steps = _ints(args.sample_steps) if args.method == "consistency" else ()
        return [Round(1, steps, args.out, args.release)]
    if args.rounds < 1 or args.teacher_steps % 2 ** args.rounds:
        raise SystemExit(f"--teacher-steps {args.teacher_steps} must be divisible by 2^--rounds ({2 ** args.rounds})")
    wanted = _ints(args.release_steps) or (args.teacher_steps >> args.rounds,)
    rounds = []
    for k in range(1, args.rounds + 1):
        steps = args.teacher_steps >> k
        release = args.release.format(steps=steps) if args.release and steps in wanted else None
        rounds.append(Round(k, (steps,), str(Path(args.out) / f"round-{k}"), release))
    return rounds


def round_loop_config(args, rnd: Round):
    """The shared loop's config of one round; --resume refuses changed run flags here, before
    the teacher loads."""
    return loop_config(argparse.Namespace(**{**vars(args), "out": rnd.out, "release": rnd.release}))


# ----------------------------------------------------------------------------- objectives


class TargetEMA(torch.optim.AdamW):
    """AdamW that also keeps consistency distillation's target network theta^- (Song et al.
    2023, Alg. 2: theta^- <- mu theta^- + (1 - mu) theta, starting at theta) in its
    per-parameter state, as Lookahead keeps its slow weights: the shared loop checkpoints the
    optimizer state, so --resume restores the target exactly."""

    def __init__(self, params, decay: float, **kw):
        super().__init__(params, **kw)
        self.decay = decay

    @torch.no_grad()
    def step(self, closure=None):
        before = {p: p.detach().clone() for g in self.param_groups for p in g["params"]
                  if "target" not in self.state[p]}
        loss = super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                target = self.state[p].get("target", before.get(p))
                self.state[p]["target"] = target.lerp_(p.detach(), 1 - self.decay)
        return loss

    def target_params(self, module) -> dict:
        return {n: self.state[p]["target"] if "target" in self.state[p] else p.detach()
                for n, p in module.named_parameters()}


class WithParams(torch.nn.Module):
    """`net` called with other parameter values (torch.func.functional_call): the target network."""

    def __init__(self, net, params: dict):
        super().__init__()
        self.inner, self.values = [net], params  # a list: not a submodule

    def forward(self, x, t, **cond):
        return torch.func.functional_call(self.inner[0], self.values, (x, t), cond)


def progressive_objective(args, rnd: Round, teacher: Teacher, diffusion):
    sch, steps = diffusion.schedule, rnd.steps[0]

    def loss(model, batch):
        x0, cond = batch
        goal, student = teacher.bind(diffusion.denoiser(model), cond, x0.device)
        return dm.progressive_loss(student, goal, x0, steps, sch)

    return loss, teacher.batches(args.batch_size), None


def consistency_objective(args, rnd: Round, teacher, diffusion):
    sch, times, holder = diffusion.schedule, dm.consistency_times(diffusion.schedule, args.intervals), {}

    def optimizer(params):
        holder["opt"] = TargetEMA(params, args.target_decay, lr=args.lr, weight_decay=0.0)
        return holder["opt"]

    def loss(model, batch):
        x0, cond = batch
        f = dm.ConsistencyFunction(model, sch, diffusion.sigma_data)
        f_target = dm.ConsistencyFunction(WithParams(model, holder["opt"].target_params(model)), sch,
                                          diffusion.sigma_data)
        goal, f = teacher.bind(f, cond, x0.device)
        _, f_target = teacher.bind(f_target, cond, x0.device)
        return dm.consistency_loss(f, f_target, goal, x0, times, sch)

    return loss, teacher.batches(args.batch_size), optimizer


def reflow_couplings(teacher, n: int, steps: int, seed: int):
    """Liu et al. 2022: z ~ N(0, I) and x0 = the teacher's PF-ODE solution from it (Heun)."""
    from zoo.diffusion import get_schedule

    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed + 1_000_003))
    x_init = get_schedule(teacher.schedule).prior_std() * z
    x0 = sample_info(teacher.denoiser, (n, 2), schedule=teacher.schedule, steps=steps, solver="heun",
                     spacing="logsnr", x_init=x_init).x0
    return x0.float(), z


def reflow_objective(args, rnd: Round, teacher, diffusion):
    x0, z = reflow_couplings(teacher, args.couplings, args.coupling_steps, args.seed)

    def batch(step, generator):
        idx = torch.randint(len(x0), (args.batch_size,), generator=generator)
        return x0[idx], z[idx]

    def loss(model, pair):
        student = diffusion.denoiser(model)
        return dm.coupled_loss(student, pair[0], pair[1])

    return loss, batch, None


OBJECTIVES = {"progressive": progressive_objective, "consistency": consistency_objective, "reflow": reflow_objective}


# ----------------------------------------------------------------------------- release


def student_diffusion(method: str, teacher) -> DiffusionConfig:
    """The student's diffusion section: the teacher's schedule; progressive predicts v, a
    consistency function has EDM's F (with shifted c_skip / c_out), reflow keeps the flow."""
    d = teacher.denoiser
    param = STUDENT_PARAM.get(method, d.parameterisation)
    return DiffusionConfig(schedule=teacher.schedule, parameterisation=param, sigma_data=d.sigma_data)


def distill_section(args, rnd: Round, teacher: Teacher) -> dm.DistillConfig:
    first = {"progressive": args.teacher_steps, "consistency": args.intervals, "reflow": args.coupling_steps}
    lo, hi = teacher.guidance or (0.0, 0.0)
    return dm.DistillConfig(teacher=public_path(args.teacher), method=args.method,
                            rounds=rnd.index if args.method == "progressive" else 1, steps=rnd.steps,
                            teacher_steps=first[args.method], guidance_input=bool(teacher.guidance),
                            guidance_min=lo, guidance_max=hi,
                            teacher_solver="heun" if args.method == "reflow" else "ddim")


def card_for(d: dm.DistillConfig, teacher: Teacher, earlier_s: float) -> CardInfo:
    steps = ", ".join(map(str, d.steps)) or "any"
    rounds = (f" Round {d.rounds} of progressive distillation from {d.teacher_steps} teacher steps; the earlier "
              f"rounds took {earlier_s:.1f} s of CPU (this round's time is below).") if d.rounds > 1 else ""
    what = (f"the 2D '{teacher.dataset}' point cloud" if teacher.kind == "toy2d" else
            f"'{teacher.dataset}' images, its classifier-free guidance w in [{d.guidance_min:g}, {d.guidance_max:g}] "
            "an input of the student (Meng et al. 2023): one network pass per step")
    kind = "Toy 2D" if teacher.kind == "toy2d" else "Class-conditional"
    return CardInfo(title=f"{kind} {d.method} student of {d.teacher} ({steps} step{'s' * (steps != '1')})",
                    tags=[teacher.kind, "distillation", d.method],
                    description=f"A {d.method} student (trainers/distill.py) of the zoo model `{d.teacher}` on {what}. "
                                f"Teacher: {d.teacher}; method: {d.method}; rounds: {d.rounds}; supported steps: "
                                f"{steps}; sampler: {dm.STUDENT_SAMPLERS[d.method]}." + rounds,
                    data=f"'{teacher.dataset}' and the teacher's {d.teacher_solver} ODE steps")


def samples_image(d: dm.DistillConfig, diffusion: DiffusionConfig, teacher: Teacher):
    """sample_fn: the student at its fewest supported steps: 2000 points over the data
    density, or a grid of digits 0-9 (a row per w of its range's ends and middle)."""
    config = {"distill": dataclasses.asdict(d), "diffusion": dataclasses.asdict(diffusion),
              "data": {"dataset": teacher.dataset}}
    steps = d.steps[0] if d.steps else 2

    def points(net):
        from zoo import figures as plots
        from zoo.pipelines.distill import student_pipeline

        out = student_pipeline(net, config)(n=2000, steps=steps, solver="euler", seed=0)
        fig = plots.samples_figure(out.points, toy_density_image(teacher.dataset), 3.0,
                                   f"{teacher.dataset}: {d.method} student, {steps} step(s)")
        return plots.figure_image(fig)

    def digits(net):
        from zoo.pipelines.distill import image_student_pipeline
        from zoo.pipelines.pixels import grid_image

        pipe, ws = image_student_pipeline(net, config), (d.guidance_min, (d.guidance_min + d.guidance_max) / 2,
                                                          d.guidance_max)
        k = pipe.num_classes
        images = [pipe(list(range(k)), steps=steps, guidance=w, seed=0).images for w in ws]
        return grid_image(np.concatenate(images), nrow=k)

    return points if teacher.kind == "toy2d" else digits


def run_round(args, argv, rnd: Round, cfg, teacher: Teacher, earlier_s: float):
    diffusion, d = student_diffusion(args.method, teacher), distill_section(args, rnd, teacher)
    net = teacher.student_net()
    loss_fn, batch_fn, optimizer_fn = OBJECTIVES[args.method](args, rnd, teacher, diffusion)
    extra = {"data": {"dataset": teacher.dataset}, "distill": dataclasses.asdict(d),
             "training": {"earlier_rounds_wall_time_s": round(earlier_s, 3)}}
    # fp16 storage halves the file (bench/distill.py measures the released students)
    release = Release(teacher.arch, net.config, diffusion, card_for(d, teacher, earlier_s), extra=extra,
                      dtype=torch.float16, command=command_line("trainers.distill", argv))
    return train(net, loss_fn, batch_fn, cfg, release, sample_fn=samples_image(d, diffusion, teacher),
                 optimizer_fn=optimizer_fn)


def main(argv=None):
    args = parse_args(argv)
    args.out = args.out or f"runs/distill-{args.method}-{args.teacher.replace('/', '--')}"
    rounds = plan_rounds(args)
    configs = [round_loop_config(args, rnd) for rnd in rounds]  # --resume refusals before anything loads
    try:
        guidance = check_guidance_range(*_floats(args.guidance_range))
        teacher = load_teacher(args.teacher, args.method, guidance=guidance)
    except TeacherRefused as err:
        raise SystemExit(f"refused: {err}") from None
    except ValueError as err:
        raise SystemExit(str(err)) from None
    earlier = 0.0
    for rnd, cfg in zip(rounds, configs):
        result = run_round(args, argv, rnd, cfg, teacher, earlier)
        earlier += result.wall_time
        print(f"round {rnd.index}: released {public_path(result.release_dir, cfg.out)} ({rnd.steps or 'any'} steps) "
              f"after {result.step} steps, loss {result.final_loss:.4f}, {result.wall_time:.1f} s")
        teacher = load_teacher(args.teacher, args.method, folder=result.release_dir, guidance=guidance)


if __name__ == "__main__":
    main()
