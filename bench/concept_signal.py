"""How much of a scene does each kind of word decide? The share of the pixel variance of a
caption's scenes that knowing one concept explains, at the high noise where a layout is
decided (x0_hat there is the mean image of the caption's scenes):

    explained = mean_k || mean(x | k) - mean(x) ||^2 / E || x - mean(x) ||^2

over the values k of the concept: the place of one shape ("in the top left" ...), or the
relation of two ("to the left of" ...: which object is where, their cells otherwise as the
data draws them). Concepts are learned roughly in the order of this signal (Okawa et al.
2023, "Compositional abilities emerge multiplicatively"); a relation's is tiny, which is why
the text-to-image model hears places but not relations (bench/text_sensitivity.py) and why
zoo.diffusion.caption_contrast and the position_opposite scenes exist.

    python bench/concept_signal.py          # writes bench/out/concept_signal.md
"""
import argparse

import numpy as np

from bench.report import write_report
from zoo.data import scenes
from zoo.data.shapes import POSITIONS

A, B = ("circle", "red"), ("square", "blue")  # any two objects: the shares depend on the layout, not on them


def image(objects) -> np.ndarray:
    return scenes.render(objects).astype(np.float32) / 127.5 - 1


def explained(groups: list) -> float:
    """Share of the variance of all images that the group means explain (equal-sized groups)."""
    every = np.concatenate(groups)
    mean = every.mean(0)
    total = ((every - mean) ** 2).sum(axis=(1, 2, 3)).mean()
    return float(np.mean([((g.mean(0) - mean) ** 2).sum() for g in groups]) / total)


LAYOUTS = ("position", scenes.OPPOSITE, scenes.TEMPLATE)


def relation_group(rng, relation: str, n: int, layout: str) -> np.ndarray:
    """n images of A `relation` B, the cells as a LAYOUTS category draws them: two random
    cells, the caption one of the relations that hold; the two ends of the relation's axis;
    the middles of two opposite edges."""
    out = []
    while len(out) < n:
        cells = scenes._cells(rng, 2)
        a, b = scenes._object(rng, cells[0], *A), scenes._object(rng, cells[1], *B)
        holds = scenes._relations(a, b)
        (ra, ca), (rb, cb) = POSITIONS[a.position], POSITIONS[b.position]
        along, across = ((ca, cb), (ra, rb)) if relation in scenes.RELATIONS[:2] else ((ra, rb), (ca, cb))
        fits = {"position": rng.random() < 1 / len(holds), scenes.OPPOSITE: abs(along[0] - along[1]) == 2,
                scenes.TEMPLATE: abs(along[0] - along[1]) == 2 and across == (1, 1)}[layout]
        if relation in holds and fits:
            out.append(image([a, b]))
    return np.stack(out)


def measure(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    places = [np.stack([image([scenes._object(rng, p, *A)]) for _ in range(n)]) for p in POSITIONS]
    relations = {f"relation ({layout} scenes)": explained([relation_group(rng, r, n, layout) for r in scenes.RELATIONS])
                 for layout in LAYOUTS}
    return {"place (one shape)": explained(places), **relations}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-value", type=int, default=400, help="images per value of a concept")
    args = ap.parse_args(argv)
    result = measure(args.per_value)
    rows = "\n".join(f"| {name} | {share:.3f} |" for name, share in result.items())
    write_report("concept_signal", result, "Share of the pixel variance of a caption's scenes that one concept "
                 f"explains ({args.per_value} images per value; bench/concept_signal.py):\n\n| concept | explained |\n"
                 f"|---|---|\n{rows}\n")


if __name__ == "__main__":
    main()
