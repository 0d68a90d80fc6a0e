"""Class-conditional sampling with guidance: classifier-free guidance of a class-conditional
UNet, classifier guidance by a noise-aware classifier, or both.

    pipe = zoo.load("mnist-cond")                    # GuidedPipeline of a class-conditional UNet
    clf = zoo.load("mnist-classifier")               # NoisyClassifier p(y | x_t, t)
    out = pipe(labels=[3] * 8, guidance=2.0, steps=20, seed=0)              # CFG, w = 2
    out = pipe(labels=[3] * 8, classifier=clf, classifier_scale=3.0)        # classifier guidance
    GuidedPipeline(zoo.load("mnist"))(labels=[7], classifier=clf, classifier_scale=3.0)  # of an
                                                     # unconditional model (Dhariwal & Nichol)

Conventions (zoo.diffusion.guidance): D_w = D(x|y) + w (D(x|y) - D(x|null)), so w = 0 is
the plain conditional model; classifier guidance adds s grad log p(y | x_t) to the score.
"""
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from zoo.diffusion.guidance import (NoisyClassifier, check_interval, check_scale, check_w, classifier_free_guidance,
                                    classifier_guidance, classifier_log_prob_grad)
from zoo.gpu import place
from zoo.pipelines.pixels import MAX_BATCH, ImageOutput, PixelPipeline, from_uint8, to_uint8



@dataclass
class GuidedOutput(ImageOutput):
    """nfe counts evaluations of the guided denoiser (as the DPM-Solver++ paper counts
    guided sampling); network_calls counts UNet passes (CFG makes two per evaluation)."""


def _is_index(y) -> bool:
    return isinstance(y, numbers.Integral) and not isinstance(y, bool)


def check_labels(labels, num_classes: int) -> list:
    """A list of int class indices, one per sample (numpy / torch integers accepted)."""
    if _is_index(labels):
        labels = [labels]
    try:
        labels = [int(y) if _is_index(y) else y for y in labels]
    except TypeError:  # not iterable
        pass
    if not isinstance(labels, list) or not all(_is_index(y) for y in labels):
        raise ValueError(f"labels must be a list of class indices, got {labels!r}")
    if not 1 <= len(labels) <= MAX_BATCH:
        raise ValueError(f"labels must hold 1 to {MAX_BATCH} class indices (one per sample), got {len(labels)}")
    bad = [y for y in labels if not 0 <= y < num_classes]
    if bad:
        raise ValueError(f"labels must be in [0, {num_classes - 1}], got {bad}")
    return labels


class GuidedPipeline:
    """Labels in, guided samples out, over a PixelPipeline's denoiser. A class-conditional
    UNet takes both kinds of guidance; an unconditional one takes classifier guidance only."""

    DEFAULT_W = 2.0  # the classifier-free guidance the Guidance tab opens on (and optimized times assume)

    def __init__(self, base: PixelPipeline, num_classes: int = 0):
        self.base, self.num_classes = base, num_classes
        self.description, self.card, self.image_shape = base.description, base.card, base.image_shape

    @property
    def schedule(self):
        return self.base.schedule

    def guided_denoiser(self, y: torch.Tensor, guidance: float, classifier, scale: float, interval=None, d=None):
        """The guided denoiser D(x, t) for labels y (one model call, two with CFG, + a
        classifier gradient with classifier guidance); `d` replaces the model's denoiser."""
        d = self.base.denoiser if d is None else d
        if self.num_classes:
            d = classifier_free_guidance(d, guidance, {"y": y}, {}, interval)  # {}: the null class
        if classifier is not None and scale != 0:
            d = classifier_guidance(d, classifier_log_prob_grad(classifier, y), scale, self.base.denoiser.schedule)
        return d

    def _check(self, labels, guidance, classifier, classifier_scale, interval):
        """w >= -1 (-1 is the unconditional model), s >= 0."""
        guidance, scale = check_w(guidance), check_scale(classifier_scale)
        interval = check_interval(interval)
        if not self.num_classes and (guidance != 0 or interval is not None):
            raise ValueError("classifier-free guidance (and its interval) needs a class-conditional model; this one "
                             "is unconditional (use guidance=0 and a classifier)")
        if scale != 0 and classifier is None:
            raise ValueError("classifier scale is set but no classifier was given")
        if classifier is not None:
            _check_classifier(classifier, self)
        if not self.num_classes and (classifier is None or scale == 0):
            raise ValueError("an unconditional model follows labels only with a classifier and classifier_scale > 0")
        classes = self.num_classes or classifier.net.config.num_classes
        return check_labels(labels, classes), guidance, scale, interval

    def __call__(self, labels: Sequence[int], steps: int = 20, solver: str = "dpmpp_2m", seed: int = 0,
                 spacing: str = "logsnr", guidance: float = 0.0, classifier: Optional[NoisyClassifier] = None,
                 classifier_scale: float = 0.0, interval=None, callback=None, **options) -> GuidedOutput:
        labels, guidance, scale, interval = self._check(labels, guidance, classifier, classifier_scale, interval)
        y = torch.tensor(labels, device=place(self.base.denoiser, classifier))
        out, passes = self.base.sample(
            (len(labels), *self.image_shape), lambda net: self.guided_denoiser(y, guidance, classifier, scale, interval,
                                                                                net),
            extra=(classifier,), steps=steps, solver=solver, spacing=spacing, seed=seed, callback=callback, **options)
        return GuidedOutput(to_uint8(out.x0), out.nfe, out.seconds, passes)


def as_guided(pipe) -> GuidedPipeline:
    """A guided view of a loaded model: an unconditional PixelPipeline takes classifier
    guidance through GuidedPipeline; a class-conditional model already is one."""
    return GuidedPipeline(pipe) if isinstance(pipe, PixelPipeline) else pipe


@torch.no_grad()
def classify_samples(classifier, images) -> np.ndarray:
    """A noise-aware classifier's verdict (argmax class) on finished uint8 (n, H, W, C)
    samples, read at t = 0."""
    x = from_uint8(images).to(next(classifier.parameters()).device)
    return classifier(x, 0.0).argmax(1).cpu().numpy()


def _check_classifier(classifier, pipe: GuidedPipeline) -> None:
    if not isinstance(classifier, NoisyClassifier):
        raise ValueError(f"classifier must be a NoisyClassifier (zoo.load of a classifier entry), got "
                         f"{type(classifier).__name__}")
    if classifier.schedule.name != pipe.base.denoiser.schedule.name:
        raise ValueError(f"the classifier was trained on the {classifier.schedule.name} schedule, the model uses "
                         f"{pipe.base.denoiser.schedule.name}")
    c = classifier.net.config
    if (c.in_channels, c.image_size, c.image_size) != tuple(pipe.image_shape):
        raise ValueError(f"the classifier takes {c.in_channels}x{c.image_size}x{c.image_size} images, the model makes "
                         f"{'x'.join(map(str, pipe.image_shape))}")
    if pipe.num_classes and c.num_classes != pipe.num_classes:
        raise ValueError(f"the classifier has {c.num_classes} classes, the model {pipe.num_classes}")


def load_pipeline(folder: Path, device: Optional[str] = None) -> GuidedPipeline:
    """Registry builder: a UNet checkpoint folder (class-conditional or not) -> GuidedPipeline."""
    from zoo.hub import load_checkpoint
    from zoo.hub.checkpoint import load_config
    from zoo.pipelines.pixels import load_pipeline as load_pixels

    if "distill" in load_config(folder):  # a few-step student (trainers/distill.py)
        from zoo.pipelines.distill import image_student_pipeline

        return image_student_pipeline(*load_checkpoint(folder, device=device or "cpu"))
    base = load_pixels(folder, device)
    return GuidedPipeline(base, base.denoiser.net.config.num_classes)


def load_classifier(folder: Path, device: Optional[str] = None) -> NoisyClassifier:
    """Registry builder: a classifier checkpoint folder -> NoisyClassifier on its schedule
    (on the CPU until a sampling call places it)."""
    from zoo.hub import load_checkpoint

    net, config = load_checkpoint(folder, device=device or "cpu")
    classifier = NoisyClassifier(net, config["diffusion"]["schedule"]).eval()
    classifier.card = config.get("eval", {})
    return classifier
