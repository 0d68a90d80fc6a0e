"""Toy 2D zoo module: an MLP denoiser on a 2D point cloud, trained in seconds.

    pipe = zoo.load("toy-moons")                 # bundled checkpoint
    pipe = train_pipeline(ToyTrainConfig("moons"))   # or train in-process
    out = pipe(n=2000, steps=20, solver="heun", seed=0)
    out.points, out.nfe, out.seconds

`ToyTrainConfig`, `toy_batch` and `toy_loss` are shared with trainers/toy2d.py, so the
CLI trainer and the in-browser one train the same thing.
"""
import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch
from torch.optim.swa_utils import AveragedModel

from zoo.checks import check_choice
from zoo.pipelines.base import Pipeline
from zoo.data.toy2d import GMM_PARAMS, TOY_DATASETS, sample_toy
from zoo.diffusion import DiffusionConfig, GaussianMixture, diffusion_loss, sample_info
from zoo.diffusion.config import optimized_times_of
from zoo.diffusion.guidance import check_scale, check_w, classifier_free_guidance, classifier_guidance
from zoo.diffusion.metrics import sliced_wasserstein
from zoo.gpu import place
from zoo.nets.mlp import MLP
from zoo.optim import ema_multi_avg_fn, learning_rate

MAX_POINTS = 20_000


@dataclass
class ToyTrainConfig:
    """A toy training run. The defaults reach a good fit in about 11 s on 2 CPU cores
    (two moons: sliced Wasserstein 0.025 to the data, against 0.016 between two true sets)."""

    dataset: str = "moons"
    diffusion: DiffusionConfig = field(default_factory=lambda: DiffusionConfig(schedule="vp-cosine",
                                                                               parameterisation="eps"))
    net: MLP.Config = field(default_factory=lambda: MLP.Config(hidden=96, depth=2))
    steps: int = 2000
    batch_size: int = 512
    lr: float = 1e-2
    lr_decay: str = "cosine"  # a decayed lr reaches a good fit in few steps
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    seed: int = 0


@dataclass
class ToyOutput:
    points: torch.Tensor  # (n, 2)
    nfe: int
    seconds: float


class ToyPipeline(Pipeline):
    """A denoiser for one 2D data set plus what the tab needs to evaluate it."""

    distill = None  # a distilled student's DistillConfig (zoo.pipelines.distill)

    def __init__(self, denoiser: Callable, schedule: str, dataset: str, description: str = ""):
        super().__init__(denoiser, schedule, description)
        self.dataset = dataset

    def __call__(self, n: int = 2000, steps: int = 20, solver: str = "heun", seed: int = 0,
                 spacing: str = "logsnr", callback=None, **options) -> ToyOutput:
        out, _ = self.sample((check_points(n), 2), steps=steps, solver=solver, spacing=spacing, seed=seed,
                             callback=callback, **options)
        return ToyOutput(out.x0.cpu(), out.nfe, out.seconds)

    def distance_to_data(self, points: torch.Tensor, seed: int = 12345) -> float:
        """Sliced Wasserstein distance to a fresh set of true points of the same size."""
        return sliced_wasserstein(points, sample_toy(self.dataset, len(points), seed))


def check_points(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_POINTS:
        raise ValueError(f"number of points must be an integer in [1, {MAX_POINTS}], got {n!r}")
    return n


def gmm() -> GaussianMixture:
    """The 'gmm' data set's mixture, whose exact denoiser is known."""
    return GaussianMixture(**GMM_PARAMS)


def exact_pipeline(schedule: str = "vp-cosine") -> ToyPipeline:
    """The Gaussian mixture with its exact denoiser E[x0 | x_t]: only solver error remains."""
    return ToyPipeline(gmm().denoiser(schedule), schedule, "gmm", "exact denoiser of the Gaussian mixture")


@dataclass
class GuidedMixtureOutput:
    points: torch.Tensor  # guided samples
    target: torch.Tensor  # exact samples of the requested component, p(x0 | k)
    nfe: int
    swd: float            # sliced Wasserstein distance of points to target
    floor: float          # the same distance between two exact sets of p(x0 | k)


GUIDED_BASES = ("conditional", "unconditional")


def guided_mixture(component: int, guidance: float = 0.0, classifier_scale: float = 0.0,
                   base: str = "conditional", n: int = 4000, steps: int = 20, solver: str = "heun",
                   spacing: str = "quadratic", seed: int = 0, schedule: str = "vp-cosine") -> GuidedMixtureOutput:
    """Guidance with every part exact, on the 'gmm' mixture (class k = component k): the
    conditional denoiser E[x0 | x_t, k], the unconditional one E[x0 | x_t], and the noisy
    classifier p_t(k | x_t). Guiding the unconditional model with classifier scale 1 samples
    p(x0 | k) exactly (Bayes' rule on the scores). Guiding the conditional one, CFG with w
    and classifier guidance with s = w are the same thing (score + w grad log p_t(k | x_t)),
    and neither samples p(x0 | k): both sharpen it away from the other components."""
    check_choice(base, GUIDED_BASES, "base")
    guidance, classifier_scale = check_w(guidance), check_scale(classifier_scale)
    if base == "unconditional" and guidance != 0:
        raise ValueError("classifier-free guidance needs the conditional model; use base='conditional'")
    check_points(n)
    mixture = gmm()
    exact = mixture.component(component)
    d_mix, d_k = mixture.denoiser(schedule), exact.denoiser(schedule)

    def labelled(x, t, k=None):  # k=None: the unconditional model
        return d_mix(x, t) if k is None else d_k(x, t)

    d = classifier_free_guidance(labelled, guidance, {"k": component}, {}) if base == "conditional" else d_mix
    if classifier_scale != 0:
        d = classifier_guidance(d, mixture.class_log_prob_grad(component, schedule), classifier_scale, schedule)
    out = sample_info(d, (n, 2), schedule=schedule, steps=steps, solver=solver, spacing=spacing, seed=seed,
                      dtype=torch.float64)
    target = exact.sample(n, torch.Generator().manual_seed(seed + 1))
    floor = sliced_wasserstein(exact.sample(n, torch.Generator().manual_seed(seed + 2)), target)
    return GuidedMixtureOutput(out.x0, target, out.nfe, sliced_wasserstein(out.x0, target), floor)


def toy_batch(config: ToyTrainConfig) -> Callable[[int, torch.Generator], torch.Tensor]:
    """batch_fn(step, generator): fresh points every step, drawn from `generator`."""
    check_choice(config.dataset, sorted(TOY_DATASETS), "dataset")

    def batch(step: int, generator: torch.Generator) -> torch.Tensor:
        return sample_toy(config.dataset, config.batch_size, int(torch.randint(2**62, (1,), generator=generator)))

    return batch


def toy_loss(config: ToyTrainConfig) -> Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]:
    """loss_fn(net, x0): the diffusion loss of the configured schedule and objective."""
    d = config.diffusion

    def loss(net, x0):
        return diffusion_loss(d.denoiser(net), x0, d.t_sampling)

    return loss


def new_net(config: ToyTrainConfig) -> MLP:
    torch.manual_seed(config.seed)
    return MLP(config.net)


def train_steps(config: ToyTrainConfig, report_every: int = 100) -> Iterator[tuple]:
    """Train in-process (Adam, the shared lr schedule, gradient clipping, EMA) on
    `zoo.gpu.device()`; yields (step, mean loss since the last report, seconds, pipeline
    or None); the last item carries the EMA pipeline."""
    net, batch, loss_fn = new_net(config), toy_batch(config), toy_loss(config)
    device = place(net)
    ema = AveragedModel(net, multi_avg_fn=ema_multi_avg_fn(config.ema_decay))
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, fused=True)  # fused: fewer kernel launches
    gen, start, window = torch.Generator().manual_seed(config.seed), time.perf_counter(), []
    for step in range(config.steps):
        opt.param_groups[0]["lr"] = learning_rate(config.lr, step, config.steps, decay=config.lr_decay)
        loss = loss_fn(net, batch(step, gen).to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
        opt.step()
        ema.update_parameters(net)
        window.append(loss.item())
        if (step + 1) % report_every == 0 or step + 1 == config.steps:
            done = step + 1 == config.steps
            pipe = pipeline_from_net(copy.deepcopy(ema.module).eval(), config) if done else None
            yield step + 1, sum(window) / len(window), time.perf_counter() - start, pipe
            window = []


def train_pipeline(config: ToyTrainConfig) -> ToyPipeline:
    """Train to the end and return the EMA pipeline."""
    for *_, pipe in train_steps(config):
        pass
    return pipe


def pipeline_from_net(net: torch.nn.Module, config: ToyTrainConfig) -> ToyPipeline:
    d = config.diffusion
    denoiser = d.denoiser(net).eval()
    return ToyPipeline(denoiser, d.schedule, config.dataset,
                       f"MLP, {d.parameterisation} objective, {d.schedule} schedule, {config.steps} steps")


def load_pipeline(folder: Path, device: Optional[str] = None) -> ToyPipeline:
    """Registry builder: a toy checkpoint folder -> pipeline."""
    from zoo.hub import load_checkpoint

    net, config = load_checkpoint(folder, device=device or "cpu")
    if "distill" in config:  # a few-step student (trainers/distill.py)
        from zoo.pipelines.distill import student_pipeline

        return student_pipeline(net, config)
    d = DiffusionConfig(**config["diffusion"])
    dataset = config.get("data", {}).get("dataset", "gmm")
    denoiser = d.denoiser(net).eval()
    steps = config.get("training", {}).get("steps", "?")
    pipe = ToyPipeline(denoiser, d.schedule, dataset,
                       f"bundled MLP, {d.parameterisation} objective, {d.schedule} schedule, {steps} steps")
    pipe.optimized_times = optimized_times_of(config)
    return pipe


def config_sections(config: ToyTrainConfig) -> dict:
    """The extra config.json sections a toy checkpoint carries."""
    return {"data": {"dataset": config.dataset},
            "training": {k: v for k, v in asdict(config).items() if k not in ("net", "diffusion")}}
