"""How well the bundled text-to-image model follows prompts, and what guidance and the
solver change: the captioned shapes data have known attributes, so the judge is exact.

    python bench/text2image.py                  # writes bench/out/text2image.md
    python bench/text2image.py --update-card    # also records the numbers in weights/shapes-t2i

For the captions of fresh random shapes (the same seeds in every setting; the caption
language has 630 sentences, all in the training set, so this measures how well the model
draws what a caption says, not generalisation to new sentences):
- per attribute, the share of samples that show what the caption names, and 'all';
- diversity where the caption is silent: the entropy (bits) of the position the judge
  reads on samples whose caption names no position. The data are uniform over the 9
  positions (log2 9 = 3.17 bits); guidance that collapses modes lowers it.
Then the same at w = 3 for several solvers and step counts, with the time per image.
"""
import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import zoo  # noqa: E402
from report import write_report  # noqa: E402
from trainers.text2image import EVAL_SEED  # noqa: E402
from zoo.data import shapes  # noqa: E402

GUIDANCE = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0)
SOLVER_RUNS = tuple((solver, steps, spacing) for spacing in ("logsnr", "quadratic")
                    for solver, steps in (("dpmpp_2m", 5), ("dpmpp_2m", 10), ("dpmpp_2m", 20), ("heun", 10),
                                          ("ddim", 20), ("euler", 20))) + (("ddpm", 50, "logsnr"),)


def position_entropy(images, prompts) -> float:
    """Entropy (bits) of the read position over the samples whose prompt names none."""
    seen = [shapes.read_shape(im).get("position") for im, p in zip(images, prompts)
            if "position" not in shapes.prompt_attributes(p)]
    counts = np.array(list(Counter(seen).values()), dtype=float)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def measure(pipe, prompts, guidance, solver="dpmpp_2m", steps=20, spacing="logsnr") -> dict:
    start = time.perf_counter()
    images = pipe.generate(prompts, guidance=guidance, solver=solver, steps=steps, spacing=spacing)
    seconds = (time.perf_counter() - start) / len(prompts)
    return {**shapes.judge(images, prompts), "position_entropy": position_entropy(images, prompts),
            "seconds_per_image": seconds}


def run(n: int) -> dict:
    pipe = zoo.load("shapes-t2i")
    prompts = [c for _, c in shapes.sample_shapes(n, seed=EVAL_SEED)]
    result = {"n": n, "model": pipe.description, "by_guidance": {}, "by_solver": {}}
    for w in GUIDANCE:
        result["by_guidance"][str(w)] = measure(pipe, prompts, w)
        print(f"w = {w}: {result['by_guidance'][str(w)]}", flush=True)
    for solver, steps, spacing in SOLVER_RUNS:
        name = f"{solver} {steps} {spacing}"
        result["by_solver"][name] = measure(pipe, prompts, 3.0, solver, steps, spacing)
        print(f"{name}: {result['by_solver'][name]}", flush=True)
    return result


def markdown(r: dict) -> str:
    cols = ("shape", "color", "size", "position", "all")
    head = "| {} | " + " | ".join(cols) + " | position entropy (bits) | ms per image |"
    line = lambda name, m: (f"| {name} | " + " | ".join(f"{m[c]:.1%}" for c in cols)  # noqa: E731
                            + f" | {m['position_entropy']:.2f} | {1000 * m['seconds_per_image']:.0f} |")
    rule = "|---" * (len(cols) + 3) + "|"
    out = [f"{r['n']} captions of fresh shapes, one sample each (same seeds everywhere), {r['model']}. "
           "Attribute columns: share of samples showing what the caption names (zoo.data.shapes.judge). Position entropy over samples "
           "whose caption names no position: data 3.17 bits.", "",
           "DPM-Solver++ 2M, 20 steps, logsnr spacing, by guidance w:", "",
           head.format("w"), rule]
    out += [line(w, m) for w, m in r["by_guidance"].items()]
    out += ["", "w = 3, by solver, steps and spacing (NFE = steps for all but heun, 2 steps - 1):", "",
            head.format("solver, steps, spacing"),
            rule]
    out += [line(name, m) for name, m in r["by_solver"].items()]
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500, help="captions of fresh shapes")
    ap.add_argument("--update-card", action="store_true", help="write the numbers into weights/shapes-t2i")
    args = ap.parse_args()
    if args.n < 10:
        ap.error("--n must be at least 10")
    r = run(args.n)
    text = markdown(r)
    write_report("text2image", r, text)
    if args.update_card:
        from zoo.hub import record_evaluation

        folder = ROOT / "weights" / "shapes-t2i"
        numbers = {"prompt_following_by_guidance": {w: {k: round(m[k], 4) for k in (*shapes.ATTRIBUTES, "all")}
                                                    for w, m in r["by_guidance"].items()},
                   "bench": {w: {k: round(v, 4) for k, v in m.items()} for w, m in r["by_guidance"].items()}}
        record_evaluation(folder, numbers, text, "bench/text2image.py")


if __name__ == "__main__":
    main()
