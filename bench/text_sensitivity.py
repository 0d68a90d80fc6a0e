"""Which words does a text-to-image model listen to? For minimal pairs of prompts that differ
in one kind of word, the relative change of the denoiser's output x0_hat = D(z_t | prompt)
at the same noisy latent z_t:

    || D(z_t | p) - D(z_t | p') || / || D(z_t | p) ||     at t = 0.9, 0.7, 0.5

    colour        "a red circle"                      / "a blue circle"
    shape         "a red circle"                      / "a red square"
    place         "a red circle in the top left"      / "a red circle in the bottom right"
    relation      "a red circle to the left of a blue square" / "... to the right of ..."
    binding       "a red circle and a blue square"    / "a blue circle and a red square"

Layout is decided at high noise (t >= 0.7 on the cosine schedule), so a model whose output
does not move there when only the place or the relation changes cannot follow such prompts,
however it is sampled; the GenEval-style table (bench/text2image.py) says how often it
fails, this says why. Cheap: a few network passes, no sampling.

    python bench/text_sensitivity.py                                  # scenes-t2i
    python bench/text_sensitivity.py --model scenes-t2i --model runs/x/release
"""
import numpy as np
import torch

from bench.report import compare_models, model_parser
from bench.text2image import MODEL, load_model
from zoo.data import scenes
from zoo.data.shapes import COLORS, SHAPES, position_phrase

TIMES = (0.9, 0.7, 0.5)
KINDS = ("colour", "shape", "place", "relation", "binding")
OPPOSITE = {"top left": "bottom right", "top right": "bottom left", "left": "right", "top": "bottom"}


def _object(rng) -> tuple:
    """A (colour, shape) pair that training images show (no held-out pair)."""
    while True:
        color, shape = str(rng.choice(list(COLORS))), str(rng.choice(SHAPES))
        if (color, shape) not in scenes.HELD_OUT_PAIRS:
            return color, shape


def minimal_pairs(kind: str, n: int, seed: int = 0) -> list:
    """n prompt pairs (p, p') of training-caption form that differ only in one kind of word."""
    rng, pairs = np.random.default_rng(seed), []
    while len(pairs) < n:
        (c1, s1), (c2, s2) = _object(rng), _object(rng)
        if kind == "colour" and c1 != c2 and (c2, s1) not in scenes.HELD_OUT_PAIRS:
            pairs.append((f"a {c1} {s1}", f"a {c2} {s1}"))
        elif kind == "shape" and s1 != s2 and (c1, s2) not in scenes.HELD_OUT_PAIRS:
            pairs.append((f"a {c1} {s1}", f"a {c1} {s2}"))
        elif kind == "place":
            here = str(rng.choice(list(OPPOSITE)))
            pairs.append((f"a {c1} {s1} {position_phrase(here)}", f"a {c1} {s1} {position_phrase(OPPOSITE[here])}"))
        elif kind == "relation" and s1 != s2:
            r = str(rng.choice(scenes.RELATIONS))
            if {(s1, r, s2), (s1, scenes.INVERSE[r], s2)} & scenes.HELD_OUT_RELATIONS:
                continue  # a phrasing no caption uses
            pairs.append((f"a {c1} {s1} {r} a {c2} {s2}", f"a {c1} {s1} {scenes.INVERSE[r]} a {c2} {s2}"))
        elif kind == "binding" and c1 != c2 and s1 != s2 and not {(c2, s1), (c1, s2)} & scenes.HELD_OUT_PAIRS:
            pairs.append((f"a {c1} {s1} and a {c2} {s2}", f"a {c2} {s1} and a {c1} {s2}"))
    return pairs


def noisy_latents(pipe, t: float, n: int, seed: int = 0) -> torch.Tensor:
    """z_t = alpha_t z0 + sigma_t eps for the (normalised) latents z0 of n random training
    scenes: the inputs the denoiser meets at t (a sampler's, not pure noise)."""
    images = np.stack([scenes.render(objects) for _, objects, _ in scenes.sample_scenes(n, seed)])
    z0 = pipe.latent.encode_uint8(torch.from_numpy(images)).cpu()
    alpha, sigma = pipe.denoiser.schedule.alpha_sigma(torch.tensor(t, dtype=torch.float64))
    eps = torch.randn(z0.shape, generator=torch.Generator().manual_seed(seed))
    return float(alpha) * z0 + float(sigma) * eps


@torch.no_grad()
def sensitivity(pipe, pairs: list, t: float, draws: int = 8) -> float:
    """Mean over pairs (p, p') of ||D(z_t | p) - D(z_t | p')|| / ||D(z_t | p)||, the same
    `draws` noisy latents for every pair."""
    z, tt = noisy_latents(pipe, t, draws), torch.full((draws,), t)
    changes = []
    for p, q in pairs:
        a = pipe.denoiser(z, tt, context=pipe.context([p] * draws))
        b = pipe.denoiser(z, tt, context=pipe.context([q] * draws))
        changes.append(float((a - b).flatten(1).norm(dim=1).mean() / a.flatten(1).norm(dim=1).mean()))
    return float(np.mean(changes))


def measure(spec: str, pairs_per_kind: int) -> dict:
    pipe = load_model(spec)
    if pipe.dataset != "scenes":
        raise SystemExit(f"{spec} was trained on {pipe.dataset}: the minimal pairs are scene captions")
    pairs = {kind: minimal_pairs(kind, pairs_per_kind) for kind in KINDS}
    return {"model": spec, "by_time": {str(t): {k: sensitivity(pipe, pairs[k], t) for k in KINDS} for t in TIMES},
            "examples": {k: list(v[0]) for k, v in pairs.items()}}


def markdown(results: list) -> str:
    lines = ["Relative change of the denoiser's x0_hat when one kind of word changes (bench/text_sensitivity.py; "
             "minimal pairs of training-caption form; z_t: 8 training scenes' latents noised to t, the same for "
             "both prompts):", "",
             "| model | t | " + " | ".join(KINDS) + " |", "|---|---" + "|---" * len(KINDS) + "|"]
    for r in results:
        for t, row in r["by_time"].items():
            lines.append(f"| {r['model']} | {t} | " + " | ".join(f"{row[k]:.3f}" for k in KINDS) + " |")
    examples = results[0]["examples"]
    lines += ["", "Pairs such as: " + "; ".join(f"{k}: '{a}' / '{b}'" for k, (a, b) in examples.items())]
    return "\n".join(lines) + "\n"


def main():
    ap = model_parser(__doc__, MODEL, "text_sensitivity")
    ap.add_argument("--pairs", type=int, default=12, help="minimal pairs per kind of word")
    args = ap.parse_args()
    compare_models(args, MODEL, lambda spec: measure(spec, args.pairs), markdown)


if __name__ == "__main__":
    main()
