"""Optimised sampling times for a checkpoint, stored in its config.json.

    python -m trainers.optimize_steps toy-moons                     # a registry name (bundled: in place)
    python -m trainers.optimize_steps USER/toy2d-gmm --output DIR   # a Hub repo: a copy of it in DIR
    python -m trainers.optimize_steps weights/toy2d/moons --solvers dpmpp_3m --steps 5,10

For each solver and step count, zoo.diffusion.optimize_steps picks the times minimising the
mean distance of the few-step solution to a many-step one from the same noise. The result
goes into config.json's "sampling" section ({"optimized_times": {solver: {steps: times}},
"optimized_info": how and how well}), merged with what is there, written atomically; the
spacing "optimized" then samples with them. A Hub snapshot in the local cache is never
edited: --output writes a copy of the checkpoint (push it with huggingface-cli upload).
"""
import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from zoo.data.captioned import captioned
from zoo.diffusion.guidance import check_w
from zoo.diffusion.optimize_steps import STEP_COUNTS, OptimizeConfig, check_request, default_draws, optimize_times
from zoo.hub.checkpoint import CONFIG_NAME, is_checkpoint, load_config
from zoo.hub.files import atomic_write_text

DEFAULT_SOLVERS = ("dpmpp_3m", "dpmpp_2m", "heun", "euler", "ddim")


@dataclass
class Model:
    """What the search needs of a pipeline: a denoiser for n draws (seed picks their
    conditions), its schedule, the sample shape, and how it was conditioned (for the record)."""

    denoiser_for: Callable   # (n, seed) -> denoiser(x, t) for n draws
    schedule: str
    shape: tuple
    conditioning: dict


def model_of(pipe, guidance=None) -> Model:
    """The searchable model of a pipeline; ValueError for one it cannot search. A guided
    model is searched with classifier-free guidance at `guidance` (default: the w its tab
    opens on), one condition per draw drawn as in training (labels 0-9 in turn; captions
    of its data set), since the guided ODE is the one it is sampled with."""
    from zoo.pipelines.conditional import GuidedPipeline
    from zoo.pipelines.pixels import PixelPipeline
    from zoo.pipelines.text2image import DEFAULT_W, TextToImagePipeline
    from zoo.pipelines.toy2d import ToyPipeline

    if getattr(pipe, "distill", None) is not None:  # students: their own grid, or (reflow) not loaded with times
        raise ValueError(f"{pipe.distill.method} students are not searched: a distilled student samples on its own "
                         f"grid at the steps it was distilled for ({list(pipe.distill.steps) or 'any'})")
    if isinstance(pipe, ToyPipeline):
        return Model(lambda n, seed: pipe.denoiser, pipe.schedule, (2,), {})
    if isinstance(pipe, GuidedPipeline) and not pipe.num_classes:
        pipe = pipe.base
    if isinstance(pipe, PixelPipeline):
        return Model(lambda n, seed: pipe.denoiser, pipe.schedule, pipe.image_shape, {})
    if isinstance(pipe, GuidedPipeline):
        w = check_w(pipe.DEFAULT_W if guidance is None else guidance)
        return Model(lambda n, seed: pipe.guided_denoiser(torch.arange(n) % pipe.num_classes, w, None, 0.0),
                     pipe.schedule, pipe.image_shape, {"guidance": w, "conditions": "labels 0-9 in turn"})
    if isinstance(pipe, TextToImagePipeline):
        w, captions = check_w(DEFAULT_W if guidance is None else guidance), captioned(pipe.dataset).captions
        return Model(lambda n, seed: pipe.guided_denoiser(captions(n, seed), w), pipe.schedule, pipe.latent_shape,
                     {"guidance": w, "conditions": f"fresh {pipe.dataset} training captions"})
    raise ValueError(f"optimized times are computed for toy 2D, image and text-to-image models; {type(pipe).__name__} "
                     "is not one")


def resolve(model: str):
    """(pipeline, checkpoint folder) of a registry name, Hub repo id or local checkpoint folder."""
    import zoo
    from zoo import registry

    if Path(model).is_dir():
        from zoo.repos import kind_of

        folder = Path(model)
        return registry._builder(kind_of(folder).pipeline)(folder), folder
    return zoo.load(model), registry.resolve(model)


def target_folder(folder: Path, output) -> Path:
    """Where config.json is written: --output (a copy of the checkpoint), or the folder itself
    unless it is a snapshot in the Hugging Face cache."""
    if output is not None:
        output = Path(output)
        if output.resolve() != folder.resolve():
            shutil.copytree(folder, output, dirs_exist_ok=True, symlinks=False)
        return output
    if "snapshots" in folder.resolve().parts or not is_checkpoint(folder):
        raise ValueError(f"{folder.name} is a Hub snapshot or not a checkpoint folder of this project; pass "
                         "--output FOLDER to write a copy with the optimized times")
    return folder


def store(folder: Path, results: list, config: OptimizeConfig, conditioning: dict = None) -> None:
    """Merge the results into config.json's sampling section, atomically (temp file + rename)."""
    data = load_config(folder)
    section = data.setdefault("sampling", {})
    times, info = section.setdefault("optimized_times", {}), section.setdefault("optimized_info", {})
    for key, value in (conditioning or {}).items():  # one record describes every stored time
        if times and info.get(key, value) != value:
            raise ValueError(f"{folder.name} stores times searched with {key} = {info[key]!r}; this run used "
                             f"{value!r}. Run again with the same setting, or write a copy with --output")
    info.update(criterion="mean |x_few - x_ref| over noise draws, x_ref: DPM-Solver++(3M) "
                          f"{config.reference_steps} logsnr steps from the same noise",
                draws=config.draws, holdout=config.holdout, iterations=config.iterations, **(conditioning or {}))
    errors = info.setdefault("errors", {})
    for r in results:
        times.setdefault(r.solver, {})[str(r.steps)] = [round(v, 9) for v in r.times]
        errors.setdefault(r.solver, {})[str(r.steps)] = {"optimized": r.holdout_error, **r.fixed_errors}
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    atomic_write_text(folder / CONFIG_NAME, text)
    load_config(folder)  # what was written must load


def _ints(text: str) -> tuple:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="registry name, Hub repo id (owner/name[@revision]) or checkpoint folder")
    ap.add_argument("--solvers", default=",".join(DEFAULT_SOLVERS), help="comma-separated deterministic solvers")
    ap.add_argument("--steps", type=_ints, default=STEP_COUNTS, help="comma-separated step counts")
    ap.add_argument("--draws", type=int, default=OptimizeConfig.draws)
    ap.add_argument("--holdout", type=int, default=OptimizeConfig.holdout, help="fresh draws the result is reported on")
    ap.add_argument("--iterations", type=int, default=OptimizeConfig.iterations)
    ap.add_argument("--reference-steps", type=int, default=OptimizeConfig.reference_steps)
    ap.add_argument("--guidance", type=float, default=None, help="guided models: the CFG weight w searched with "
                    "(default: the w the model's tab opens on)")
    ap.add_argument("--output", default=None, help="write a copy of the checkpoint here (needed for Hub repos)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    solvers = tuple(s for s in args.solvers.split(",") if s)
    for solver in solvers:
        for steps in args.steps:
            check_request(solver, steps)
    config = OptimizeConfig(draws=args.draws, holdout=args.holdout, iterations=args.iterations,
                            reference_steps=args.reference_steps)
    pipe, folder = resolve(args.model)
    load_config(folder)  # this project's config.json (a diffusers repo has none to carry the times)
    model = model_of(pipe, args.guidance)
    start = time.perf_counter()
    draws = default_draws(model.denoiser_for, model.schedule, model.shape, config)
    print(f"reference solutions of {config.draws} + {config.holdout} draws: {time.perf_counter() - start:.1f}s",
          flush=True)
    results = []
    for solver in solvers:
        for steps in args.steps:
            start = time.perf_counter()
            r = optimize_times(None, model.schedule, solver, steps, model.shape, config, draws)
            best = min(r.fixed_errors, key=r.fixed_errors.get)
            print(f"{solver:9s} {steps:3d} steps: optimized {r.holdout_error:.3e} | best fixed {best} "
                  f"{r.fixed_errors[best]:.3e} | {time.perf_counter() - start:.1f}s", flush=True)
            results.append(r)
    out = target_folder(folder, args.output)
    store(out, results, config, model.conditioning)
    print(f"wrote {len(results)} schedules to {out.name}/{CONFIG_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
