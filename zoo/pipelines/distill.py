"""Distilled toy 2D students as zoo pipelines (trained by trainers/distill.py).

A student is an ordinary checkpoint (config.json + model.safetensors + card) whose config
has a 'distill' section (zoo.diffusion.distill.DistillConfig): teacher, method, rounds and
the step counts it supports. Loading goes through zoo.hub.load_checkpoint's validation;
`student_pipeline` then wraps the net for its method:

    progressive  Denoiser (v) sampled by DDIM on the nested uniform grid, N steps only
    consistency  ConsistencyFunction sampled by multistep consistency sampling, its steps only
    reflow       an ordinary flow model: every solver, any step count
"""
from __future__ import annotations

from zoo.diffusion import DiffusionConfig
from zoo.diffusion.distill import (STUDENT_SAMPLERS, ConsistencyFunction, DistillConfig, check_student_steps,
                                   consistency_sample, consistency_sample_times, nested_times, sample_on_times)
from zoo.gpu import place
from zoo.pipelines.toy2d import ToyOutput, ToyPipeline, check_points


def distill_config(section: dict) -> DistillConfig:
    values = dict(section)
    values["steps"] = tuple(values.get("steps", ()))
    return DistillConfig(**values)


def describe(d: DistillConfig) -> str:
    steps = ", ".join(map(str, d.steps)) or "any"
    rounds = f", {d.rounds} round{'s' * (d.rounds != 1)}" if d.method == "progressive" else ""
    return f"{d.method} student of {d.teacher}{rounds} · steps: {steps} · sampler: {STUDENT_SAMPLERS[d.method]}"


class StudentPipeline(ToyPipeline):
    """A few-step student: samples only with the step counts it was distilled for, with its
    own sampler (the `solver` and `spacing` arguments do not apply and are ignored)."""

    def __init__(self, denoiser, schedule: str, dataset: str, distill: DistillConfig, description: str = ""):
        super().__init__(denoiser, schedule, dataset, description or describe(distill))
        self.distill = distill

    def __call__(self, n: int = 2000, steps: int | None = None, solver: str = "ddim", seed: int = 0,
                 spacing: str = "uniform", callback=None, **options) -> ToyOutput:
        check_points(n)
        steps = self.distill.steps[-1] if steps is None else steps
        check_student_steps(steps, self.distill.steps, f"this {self.distill.method} student")
        kw = dict(seed=seed, callback=callback, device=place(self.denoiser))
        if self.distill.method == "consistency":
            out = consistency_sample(self.denoiser, (n, 2), self.schedule,
                                     consistency_sample_times(self.schedule, steps), **kw)
        else:
            out = sample_on_times(self.denoiser, (n, 2), self.schedule, nested_times(self.schedule, steps), **kw)
        return ToyOutput(out.x0.cpu(), out.nfe, out.seconds)


def student_denoiser(net, method: str, diffusion: DiffusionConfig):
    """The function a student's net is sampled through, by method."""
    if method == "consistency":
        return ConsistencyFunction(net, diffusion.schedule, diffusion.sigma_data).eval()
    return diffusion.denoiser(net).eval()


def student_pipeline(net, config: dict) -> ToyPipeline:
    """The pipeline of a validated student checkpoint (net + its config.json)."""
    d, diffusion = distill_config(config["distill"]), DiffusionConfig(**config["diffusion"])
    dataset = config.get("data", {}).get("dataset", "gmm")
    denoiser = student_denoiser(net, d.method, diffusion)
    if d.method == "reflow":  # a rectified flow: the ordinary pipeline, every solver
        pipe = ToyPipeline(denoiser, diffusion.schedule, dataset, describe(d))
        pipe.distill = d
        return pipe
    return StudentPipeline(denoiser, diffusion.schedule, dataset, d)


def supported_steps(pipe) -> tuple:
    """The step counts a pipeline samples with: a student's, or () for any."""
    d = getattr(pipe, "distill", None)
    return tuple(d.steps) if d is not None else ()
