"""Distilled students as zoo pipelines (trained by trainers/distill.py): of toy 2D teachers,
and of class-conditional image teachers with guidance w as an input (Meng et al. 2023).

A student is an ordinary checkpoint (config.json + model.safetensors + card) whose config
has a 'distill' section (zoo.diffusion.distill.DistillConfig): teacher, method, rounds and
the step counts it supports. Loading goes through zoo.hub.load_checkpoint's validation;
`student_pipeline` then wraps the net for its method:

    progressive  Denoiser (v) sampled by DDIM on the nested uniform grid, N steps only
    consistency  ConsistencyFunction sampled by multistep consistency sampling, its steps only
    reflow       an ordinary flow model: every solver, any step count

An image student (ImageStudentPipeline) is called like the Guidance tab's GuidedPipeline,
labels in, with `guidance` feeding the student's w input: one network pass per step where
its guided teacher made two per evaluation.
"""
from __future__ import annotations

import torch

from zoo.diffusion import DiffusionConfig
from zoo.diffusion.guidance import check_w
from zoo.diffusion.distill import (STUDENT_SAMPLERS, ConsistencyFunction, DistillConfig, check_student_steps,
                                   consistency_sample, consistency_sample_times, nested_times, sample_on_times)
from zoo.gpu import place
from zoo.pipelines.conditional import GuidedOutput, GuidedPipeline, check_labels
from zoo.pipelines.pixels import PixelPipeline, to_uint8
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
        out = student_sample(self.denoiser, self.distill, (n, 2), self.schedule, steps, seed=seed, callback=callback,
                             device=place(self.denoiser))
        return ToyOutput(out.x0.cpu(), out.nfe, out.seconds)


def student_sample(denoiser, d: DistillConfig, shape: tuple, schedule, steps=None, **kw):
    """A student's own sampler at one of its step counts (its last, the most, by default):
    multistep consistency sampling, or DDIM on the nested grid (progressive)."""
    steps = d.steps[-1] if steps is None else steps
    check_student_steps(steps, d.steps, f"this {d.method} student")
    if d.method == "consistency":
        return consistency_sample(denoiser, shape, schedule, consistency_sample_times(schedule, steps), **kw)
    return sample_on_times(denoiser, shape, schedule, nested_times(schedule, steps), **kw)


class ImageStudentPipeline(GuidedPipeline):
    """A few-step student of a class-conditional image teacher, called like GuidedPipeline:
    labels in, `guidance` fed to the student's w input (checked against the w range it was
    distilled over), its own sampler at its own step counts (solver and spacing ignored)."""

    def __init__(self, base: PixelPipeline, num_classes: int, distill: DistillConfig):
        super().__init__(base, num_classes)
        self.distill, self.description = distill, describe(distill)
        if distill.guidance_input:
            self.DEFAULT_W = min(max(GuidedPipeline.DEFAULT_W, distill.guidance_min), distill.guidance_max)

    def check_guidance(self, guidance) -> float:
        d, w = self.distill, check_w(guidance)
        if not d.guidance_input:
            if w != 0:
                raise ValueError("this student has no guidance input (distilled without w); use guidance=0")
            return w
        if not d.guidance_min <= w <= d.guidance_max:
            raise ValueError(f"this student was distilled for guidance w in [{d.guidance_min:g}, {d.guidance_max:g}]; "
                             f"got w = {w:g}")
        return w

    def __call__(self, labels, steps: int | None = None, solver: str = "ddim", seed: int = 0, spacing: str = "uniform",
                 guidance: float | None = None, classifier=None, classifier_scale: float = 0.0, interval=None,
                 callback=None, **options) -> GuidedOutput:
        if classifier_scale or interval is not None:  # a classifier at scale 0 only judges (the Guidance tab)
            raise ValueError("a distilled student takes guidance as its w input: classifier guidance and a guidance "
                             "interval do not apply")
        w = self.check_guidance(self.DEFAULT_W if guidance is None else guidance)
        labels = check_labels(labels, self.num_classes)
        device = place(self.base.denoiser)
        cond = {"y": torch.tensor(labels, device=device)}
        if self.distill.guidance_input:
            cond["w"] = torch.full((len(labels),), w, device=device)
        out = student_sample(lambda x, t: self.base.denoiser(x, t, **cond), self.distill,
                             (len(labels), *self.image_shape), self.schedule, steps, seed=seed, callback=callback,
                             device=device)
        return GuidedOutput(to_uint8(out.x0), out.nfe, out.seconds, out.nfe)


def student_denoiser(net, method: str, diffusion: DiffusionConfig):
    """The function a student's net is sampled through, by method."""
    if method == "consistency":
        return ConsistencyFunction(net, diffusion.schedule, diffusion.sigma_data).eval()
    return diffusion.denoiser(net).eval()


def image_student_pipeline(net, config: dict) -> ImageStudentPipeline:
    """The pipeline of a validated image student checkpoint (a class-conditional UNet)."""
    d, diffusion = distill_config(config["distill"]), DiffusionConfig(**config["diffusion"])
    c = net.config
    base = PixelPipeline(student_denoiser(net, d.method, diffusion), diffusion.schedule,
                         (c.in_channels, c.image_size, c.image_size), describe(d), config.get("eval", {}))
    return ImageStudentPipeline(base, c.num_classes, d)


def student_pipeline(net, config: dict) -> ToyPipeline:
    """The pipeline of a validated toy student checkpoint (net + its config.json)."""
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
