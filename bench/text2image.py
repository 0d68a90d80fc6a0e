"""A GenEval-style table (Ghosh et al. 2023) for the scene text-to-image model: the share of
prompts whose sample shows exactly what they ask for, per category (single object, two
objects, counting, colours, position, attribute binding) and overall (the mean of the
categories), for prompts drawn as the training captions are ("seen") and for prompts
with a held-out combination ("held-out": a colour-shape pair no training image shows, or a
relation phrasing no caption uses). zoo.data.scene_judge reads every object back from the
pixels (exact on rendered scenes), so the numbers need no detector.

    python bench/text2image.py                    # writes bench/out/text2image.md
    python bench/text2image.py --update-card      # also records the numbers in weights/scenes-t2i

Rows: guidance w in {0, 1, 3, 5} (DPM-Solver++ 2M, 20 steps); at w = 3 every solver at 10
and 20 steps with both fixed spacings; and the earlier one-shape model (shapes-t2i, 32x32)
on the prompts its language covers (single object and colours), the reference the scene
model must beat there. GenEval's published numbers for Stable Diffusion are printed beside
it for orientation only: a different world, the same categories.
"""
import argparse
import time
from pathlib import Path

import zoo
from bench.report import write_report
from zoo.data import scene_judge, scenes
from zoo.diffusion.solvers import SOLVERS, nfe_per_step

ROOT = Path(__file__).resolve().parents[1]

MODEL, BASELINE = "scenes-t2i", "shapes-t2i"
GUIDANCE = (0.0, 1.0, 3.0, 5.0)
SOLVER_W = 3.0
STEPS = (10, 20)
SPACINGS = ("logsnr", "quadratic")
BASELINE_CATEGORIES = ("single_object", "colors", scenes.ABSOLUTE)  # the one-shape model's language covers these
COLUMNS = scenes.CATEGORIES + ("overall", scenes.ABSOLUTE)  # absolute positions: outside GenEval, not in overall
# GenEval, Table 2 (Ghosh et al. 2023): single, two, counting, colors, position, color_attr, overall
GENEVAL = {"SD v1.5": (0.97, 0.38, 0.35, 0.76, 0.04, 0.06, 0.43), "SDXL": (0.98, 0.74, 0.39, 0.85, 0.15, 0.23, 0.55)}


def measure(pipe, prompts: dict, **sampling) -> dict:
    """{split: {category: share, 'overall': mean}, 'ms_per_image'} for the prompts of each split."""
    out, start, count = {}, time.perf_counter(), 0
    for split, pairs in prompts.items():
        texts = [p for _, p in pairs]
        images = pipe.generate(texts, **sampling)
        result = scene_judge.judge(images, texts)
        out[split] = {**result["by_category"], "overall": result["overall"]}
        count += len(texts)
    out["ms_per_image"] = 1000 * (time.perf_counter() - start) / count
    return out


def load_model(spec: str):
    """A zoo entry's name, or a checkpoint folder (a run's release, for a pilot)."""
    from zoo.pipelines.text2image import load_pipeline

    return load_pipeline(Path(spec)) if Path(spec).is_dir() else zoo.load(spec)


ROWS = ("headline", "guidance", "all")


def runs(rows: str = "all") -> list:
    """(row name, sampling keyword arguments) of the scene model's rows: 'headline' (w = 3,
    DPM-Solver++ 2M, 20 steps: the targets' setting), 'guidance' (every w of GUIDANCE) or
    'all' (also every solver at 10 and 20 steps with each fixed spacing, at w = 3)."""
    guided = [(f"w = {w:g}, dpmpp_2m 20 logsnr", dict(guidance=w)) for w in GUIDANCE
              if rows != "headline" or w == SOLVER_W]
    if rows != "all":
        return guided
    return guided + [(f"w = 3, {solver} {steps} {spacing}", dict(guidance=SOLVER_W, solver=solver, steps=steps,
                                                                 spacing=spacing))
                     for spacing in SPACINGS for steps in STEPS for solver in SOLVERS
                     if (solver, steps, spacing) != ("dpmpp_2m", 20, "logsnr")]  # a guidance row


def run(per_category: int, model: str = MODEL, rows: str = "all") -> dict:
    prompts = {split: scenes.benchmark_prompts(split, per_category) for split in ("seen", "held_out")}
    pipe = load_model(model)
    result = {"per_category": per_category, "model": pipe.description, "rows": {}, "baseline": {}}
    for name, sampling in runs(rows):
        result["rows"][name] = measure(pipe, prompts, **sampling)
        print(name, {k: round(v["overall"], 3) for k, v in result["rows"][name].items() if isinstance(v, dict)},
              {k: round(v, 3) for k, v in result["rows"][name]["seen"].items()}, flush=True)
    if rows == "all":
        old = {"seen": [(c, p) for c, p in prompts["seen"] if c in BASELINE_CATEGORIES]}
        result["baseline"] = {BASELINE: measure(zoo.load(BASELINE), old, guidance=SOLVER_W)}
    return result


def text_frontier(per_category: int) -> dict:
    """The few-step frontier (bench/frontier.py) of the scene model at w = 3 on seen prompts,
    scored by the GenEval-style overall share."""
    from bench import frontier

    prompts = {"seen": scenes.benchmark_prompts("seen", per_category)}
    pipe = zoo.load(MODEL)

    def score(solver, steps, spacing):
        m = measure(pipe, prompts, guidance=SOLVER_W, solver=solver, steps=steps, spacing=spacing)
        return {"nfe": nfe_per_step(solver, steps), **m["seen"], "ms_per_image": m["ms_per_image"]}

    return {"model": MODEL, "per_category": per_category, "rows": frontier.measure_frontier(pipe, score)}


def frontier_markdown(r: dict) -> str:
    from bench import frontier

    lines = [f"Few-step frontier of `{r['model']}` at w = {SOLVER_W:g}: {r['per_category']} seen prompts per category, "
             "one sample each; GenEval-style overall share (the mean of the six categories). Bold: optimized beats "
             "the best fixed spacing.", ""]
    return "\n".join(lines + frontier.frontier_table(r["rows"], "overall", "overall (best fixed)", "{:.2f}")) + "\n"


def _cells(m: dict, split: str) -> list:
    return [f"{m[split][c]:.2f}" if c in m.get(split, {}) else "–" for c in COLUMNS]


def markdown(r: dict) -> str:
    heads = " | ".join(COLUMNS)
    head = f"| setting | {heads} | {heads} | ms / image |"
    rule = "|---" * (2 * len(COLUMNS) + 2) + "|"
    out = [f"GenEval-style table: {r['per_category']} prompts per category and split, one sample each (image i "
           f"has seed i), {r['model']}. Left: seen prompts; right: held-out combinations (a dash: the category has "
           "none). Share of samples showing exactly what the prompt asks for (zoo.data.scene_judge); overall: the "
           "mean of GenEval's six categories; absolute_position (one shape at a named place, 'a small red circle in "
           "the top left') is outside GenEval and scored apart.", "",
           head, rule]
    for name, m in r["rows"].items():
        out.append(f"| {name} | " + " | ".join(_cells(m, "seen") + _cells(m, "held_out"))
                   + f" | {m['ms_per_image']:.0f} |")
    for name, m in r["baseline"].items():
        out.append(f"| {name} (one-shape model, 32x32), w = 3 | "
                   + " | ".join(_cells(m, "seen") + _cells(m, "held_out"))
                   + f" | {m['ms_per_image']:.0f} |")
    six = " | ".join(scenes.CATEGORIES + ("overall",))
    out += ["", "For orientation only, GenEval's published scores (real photographs, an object detector as judge; "
            "Ghosh et al. 2023, Table 2):", "", f"| model | {six} |", "|---" * (len(scenes.CATEGORIES) + 2) + "|"]
    out += [f"| {name} | " + " | ".join(f"{v:.2f}" for v in values) + " |" for name, values in GENEVAL.items()]
    return "\n".join(out) + "\n"


def card_numbers(r: dict) -> dict:
    """What the model card keeps: the guidance rows, rounded."""
    rows = {name: m for name, m in r["rows"].items() if name.endswith("dpmpp_2m 20 logsnr")}
    return {"geneval_style": {name: {split: {k: round(v, 3) for k, v in m[split].items()}
                                     for split in ("seen", "held_out")} for name, m in rows.items()}}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-category", type=int, default=50, help="prompts per category and split")
    ap.add_argument("--update-card", action="store_true", help=f"write the numbers into weights/{MODEL}")
    ap.add_argument("--model", default=MODEL, help="a zoo entry or a checkpoint folder (e.g. a run's release, to "
                                                   "compare a pilot)")
    ap.add_argument("--rows", choices=ROWS, default="all", help="headline: w = 3, DPM-Solver++ 2M 20 steps only; "
                                                                "guidance: each w; all: also every solver")
    ap.add_argument("--report", default="text2image", help="bench/out/REPORT.md and .json")
    ap.add_argument("--frontier", action="store_true", help="the few-step frontier instead "
                    "(bench/out/text2image_frontier.md)")
    args = ap.parse_args()
    if args.per_category < 5:
        ap.error("--per-category must be at least 5")
    if args.frontier:
        r = text_frontier(args.per_category)
        write_report("text2image_frontier", r, frontier_markdown(r))
        return
    if args.update_card and (args.model != MODEL or args.rows == "headline"):
        ap.error(f"--update-card records the guidance rows of {MODEL}: no --model, --rows guidance or all")
    r = run(args.per_category, args.model, args.rows)
    text = markdown(r)
    write_report(args.report, r, text)
    if args.update_card:
        from zoo.hub import record_evaluation

        record_evaluation(ROOT / "weights" / MODEL, card_numbers(r), text, "bench/text2image.py")


if __name__ == "__main__":
    main()
