"""The teachers trainers/distill.py distils, whatever their kind: a toy 2D MLP, or a
class-conditional image UNet whose classifier-free guidance the student takes in.

A guided teacher's target is CFG at a w drawn per sample from the distilled range, and the
student gets that w as an input (Meng et al. 2023, "On Distillation of Guided Diffusion
Models", Sec. 4.1): one student serves the whole range with one network pass per step,
where its teacher made two per evaluation.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from zoo import registry
from zoo.diffusion.guidance import check_w, per_sample_guidance

TEACHER_TASKS = ("toy2d", "class-conditional")
DEFAULT_GUIDANCE_RANGE = (0.0, 4.0)  # Meng et al. 2023 distil w in [0, 4]


class TeacherRefused(ValueError):
    """A teacher this trainer cannot distil, with the reason."""


@dataclass
class Teacher:
    """What distillation needs of a teacher."""

    pipe: object             # its zoo pipeline
    kind: str                # one of TEACHER_TASKS
    denoiser: Callable       # D(x, t, **cond), the network's own denoiser (unguided)
    schedule: str
    dataset: str             # where the student's training batches come from
    guidance: tuple = ()     # (w_min, w_max): a guided teacher; the student takes w as an input
    w_input: bool = False    # the teacher is itself a student with a w input (a later progressive round)

    @property
    def arch(self) -> str:
        return "mlp" if self.kind == "toy2d" else "unet"

    @property
    def net(self) -> torch.nn.Module:
        return self.denoiser.net

    def batches(self, batch_size: int) -> Callable:
        """(step, generator) -> (x0, cond): data for the student; a guided teacher's cond
        holds the labels y and one w per sample drawn uniformly from its range."""
        if self.kind == "toy2d":
            from zoo.pipelines.toy2d import ToyTrainConfig, toy_batch

            points = toy_batch(ToyTrainConfig(dataset=self.dataset, batch_size=batch_size))
            return lambda step, g: (points(step, g), {})
        from zoo.data.images import load_images

        data, (lo, hi) = load_images(self.dataset, "train"), self.guidance

        def batch(step, g):
            x0, y = data.batch(batch_size, g, with_labels=True)
            return x0, {"y": y, "w": lo + (hi - lo) * torch.rand(batch_size, generator=g)}
        return batch

    def bind(self, student: Callable, cond: dict, device) -> tuple:
        """(teacher, student) as functions of (x, t) for one batch's conditions, on the
        batch's device (the teacher follows the student there: accelerate places only the
        student)."""
        self.net.to(device)
        if not cond:
            return self.denoiser, student
        cond = {k: v.to(device) for k, v in cond.items()}
        bound_student = lambda x, t: student(x, t, **cond)  # noqa: E731
        if self.w_input:  # an earlier round's student: w is already its input
            return (lambda x, t: self.denoiser(x, t, **cond)), bound_student
        return per_sample_guidance(self.denoiser, cond["w"], {"y": cond["y"]}, {}), bound_student

    def student_net(self) -> torch.nn.Module:
        """The student starts from the teacher's weights (Salimans & Ho 2022; Song et al. 2023;
        Liu et al. 2022); a guided teacher's gains the w input, zero-initialised (zoo.nets.unet),
        and drops no labels (the teacher's label dropout trained its null class, which the
        student never uses)."""
        if self.guidance and not self.w_input:
            from zoo.nets.unet import UNet

            # no label dropout: every target is the guided prediction for the sample's own label
            net = UNet(dataclasses.replace(self.net.config, guidance_input=True, label_dropout=0.0))
            missing, unexpected = net.load_state_dict(self.net.state_dict(), strict=False)
            assert not unexpected and all(k.startswith("guidance.") for k in missing), (missing, unexpected)
        else:
            net = copy.deepcopy(self.net)
        net = net.float().train()
        for p in net.parameters():
            p.requires_grad_(True)
        return net


def check_guidance_range(lo, hi) -> tuple:
    lo, hi = check_w(lo, "--guidance-range low"), check_w(hi, "--guidance-range high")
    if lo > hi:
        raise ValueError(f"--guidance-range must be low,high with low <= high, got {lo:g},{hi:g}")
    return lo, hi


def load_teacher(name: str, method: str, folder=None, guidance: tuple = DEFAULT_GUIDANCE_RANGE) -> Teacher:
    """The teacher of a run: a zoo model (registry name or Hub repo id) of a supported kind,
    or (later progressive rounds) the previous round's release folder. Refused: other kinds,
    students (distil the original teacher), reflow without a flow schedule."""
    if folder is not None:
        return _from_folder(Path(folder), guidance)
    try:
        entry = registry.entry_for(name, TEACHER_TASKS, "teacher")
    except ValueError as err:
        raise TeacherRefused(f"--teacher {name}: {err}. trainers.distill distils toy 2D models (an MLP on a 2D point "
                             "cloud) and class-conditional UNets (mnist-cond: guidance becomes the student's input); "
                             "unconditional image models, VAEs and text-to-image models are not supported on this "
                             "build.") from None
    pipe = registry.load(name)
    if getattr(pipe, "distill", None) is not None:
        raise TeacherRefused(f"--teacher {name} is itself a {pipe.distill.method} student; distil its teacher "
                             f"{pipe.distill.teacher} instead")
    if method == "reflow" and (entry.task != "toy2d" or pipe.schedule != "flow"):
        raise TeacherRefused(f"--method reflow needs a toy 2D flow-schedule teacher (rectified flow); {name} uses the "
                             f"{pipe.schedule} schedule. Train one with: python -m trainers.toy2d --objective flow "
                             "--schedule flow")
    return _teacher(pipe, entry.task, registry.resolve(name), check_guidance_range(*guidance))


def _teacher(pipe, task: str, folder: Path, guidance: tuple, w_input: bool = False) -> Teacher:
    if task == "toy2d":
        return Teacher(pipe, task, pipe.denoiser, pipe.schedule, pipe.dataset)
    from zoo.hub.checkpoint import load_config

    dataset = load_config(folder).get("data", {}).get("dataset")
    if not isinstance(dataset, str) or not dataset:
        raise TeacherRefused(f"{folder.name}: its config.json names no training data set (data.dataset), which the "
                             "student trains on")
    return Teacher(pipe, task, pipe.base.denoiser, pipe.schedule, dataset, guidance, w_input)


def _from_folder(folder: Path, guidance: tuple) -> Teacher:
    """An earlier progressive round's student as the next round's teacher."""
    from zoo.repos import kind_of

    task = kind_of(folder).task
    if task == "toy2d":
        from zoo.pipelines.toy2d import load_pipeline

        return _teacher(load_pipeline(folder), task, folder, guidance)
    from zoo.pipelines.conditional import load_pipeline

    pipe = load_pipeline(folder)
    return _teacher(pipe, task, folder, guidance, w_input=pipe.distill.guidance_input)
