"""Does a relation's word decide which object goes where, or only the axis?

For every ordered pair of shapes (a red X, a blue Y) and each axis, sample "X <rel> Y" and
"X <inverse rel> Y" ("to the left of" / "to the right of", "above" / "below") from the same
seeds. Among the seeds where both samples show exactly one X and one Y, count those where X's
side relative to Y flips with the word:

    flip share = #{seeds: side(X | "X rel Y") != side(X | "X inverse Y")} / #{seeds read}

A model that follows the word scores 1. One that has learned only the axis from it (a
bag-of-words fact: both captions draw the pair side by side, the same seed the same way
round) scores 0, and still has half of GenEval's position prompts right. Pairs where one
phrasing never appears in a training caption (zoo.data.scenes.HELD_OUT_RELATIONS) are
reported apart: following them is compositional generalisation, not recall.

    python bench/relation_flips.py                                    # scenes-t2i
    python bench/relation_flips.py --model scenes-t2i --model runs/x/release
"""

import torch

from bench.report import compare_models, model_parser
from bench.text2image import MODEL, SOLVER_W, load_model
from zoo.data import scene_judge, scenes
from zoo.data.shapes import SHAPES

AXES = (("to the left of", 0), ("above", 1))  # the relation and the image axis it orders (x: 0, y: 1)
SAMPLING = dict(guidance=SOLVER_W, solver="dpmpp_2m", steps=20, spacing="logsnr")  # the targets' setting


def probes() -> list:
    """(X, Y, relation, axis, held) for every ordered pair of distinct shapes and each axis;
    held: one of the two phrasings is held out of training."""
    out = []
    for x in SHAPES:
        for y in (s for s in SHAPES if s != x):
            for relation, axis in AXES:
                phrasings = {(x, relation, y), (x, scenes.INVERSE[relation], y)}
                out.append((x, y, relation, axis, bool(phrasings & scenes.HELD_OUT_RELATIONS)))
    return out


def first_before_second(spec, reads: list, axis: int) -> bool | None:
    """Whether the prompt's first object is left of (axis 0) / above (axis 1) its second in
    the objects read from one image; None unless exactly one of each was read."""
    found = [[r for r in reads if scene_judge.matches(r, wanted)] for wanted in spec.objects]
    if any(len(f) != 1 for f in found):
        return None
    return scene_judge.centre(found[0][0])[axis] < scene_judge.centre(found[1][0])[axis]


def count_flips(sides: list, mirrored_sides: list) -> tuple:
    """(flips, seeds read): seeds where both images were read and the order differs."""
    both = [(a, b) for a, b in zip(sides, mirrored_sides) if a is not None and b is not None]
    return sum(a != b for a, b in both), len(both)


@torch.no_grad()
def flips(pipe, probe: tuple, seeds: int) -> tuple:
    """(flips, seeds read) of one probe: the same seeds 0..seeds-1 for both phrasings."""
    x, y, relation, axis, _ = probe
    sides = []
    for word in (relation, scenes.INVERSE[relation]):
        prompt = f"a red {x} {word} a blue {y}"
        spec = scene_judge.parse_prompt(prompt)
        images = pipe.generate([prompt] * seeds, **SAMPLING)
        sides.append([first_before_second(spec, scene_judge.read_objects(im), axis) for im in images])
    return count_flips(*sides)


def measure(spec: str, seeds: int) -> dict:
    pipe = load_model(spec)
    rows = []
    for probe in probes():
        n_flips, n_read = flips(pipe, probe, seeds)
        rows.append({"pair": f"{probe[0]} {probe[2]} / {scenes.INVERSE[probe[2]]} {probe[1]}", "held": probe[4],
                     "flips": n_flips, "read": n_read})
    total = {split: [sum(r[k] for r in rows if r["held"] == held) for k in ("flips", "read")]
             for split, held in (("seen", False), ("held_out", True))}
    return {"model": spec, "rows": rows, "share": {s: f / max(n, 1) for s, (f, n) in total.items()}}


def markdown(results: list) -> str:
    lines = [f"Same seeds, mirrored relation (bench/relation_flips.py; a red X, a blue Y; w = {SOLVER_W}, "
             "DPM-Solver++ 2M 20 steps): seeds whose first object changes side / seeds with both objects read.", "",
             "| pair | " + " | ".join(r["model"] for r in results) + " |", "|---" * (len(results) + 1) + "|"]
    for i, row in enumerate(results[0]["rows"]):
        cells = [f"{r['rows'][i]['flips']}/{r['rows'][i]['read']}" for r in results]
        lines.append(f"| {row['pair']}{' (held out)' if row['held'] else ''} | " + " | ".join(cells) + " |")
    for split in ("seen", "held_out"):
        lines.append(f"| **flip share, {split.replace('_', '-')}** | "
                     + " | ".join(f"**{r['share'][split]:.2f}**" for r in results) + " |")
    return "\n".join(lines) + "\n"


def main():
    ap = model_parser(__doc__, MODEL, "relation_flips")
    ap.add_argument("--seeds", type=int, default=16, help="seeds per phrasing")
    args = ap.parse_args()
    if args.seeds < 1:
        raise SystemExit("--seeds must be at least 1")
    compare_models(args, MODEL, lambda spec: measure(spec, args.seeds), markdown)


if __name__ == "__main__":
    main()
