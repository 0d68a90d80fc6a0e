"""Are the bundled MNIST model's samples recognisable digits of all ten classes?

    python bench/digit_quality.py                    # writes bench/out/digit_quality.md
    python bench/digit_quality.py --update-card      # also records the numbers in weights/mnist

1. Trains a digit classifier (zoo.nets.classifier at t = 0) on the 4,500 training digits of
   the offline MNIST source and measures its accuracy on the 500 held-out test digits.
2. Samples N digits from `zoo.load("mnist")` with several solvers and reports the share
   classified with confidence > 0.9 and the class histogram (a model that draws only some
   digits, or blobs, fails both).
3. The variational bound in bits/dim of the model on the 500 real test digits (Ho et al.
   2020, discrete pixels: bin width 2/255 on [-1, 1]).
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import zoo  # noqa: E402
from report import write_report  # noqa: E402
from zoo.data.images import load_images  # noqa: E402
from zoo.diffusion.likelihood import bits_per_dim, vlb_nats  # noqa: E402
from zoo.nets.classifier import Classifier  # noqa: E402
from zoo.pixels import from_uint8  # noqa: E402

SOLVERS = (("dpmpp_2m", 20), ("heun", 20), ("ddim", 50), ("ddpm", 100))


def train_classifier(steps: int = 1500, batch: int = 64, seed: int = 0) -> Classifier:
    data, gen = load_images("mnist-offline", "train"), torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = Classifier(Classifier.Config())
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for step in range(steps):
        x, y = data.batch(batch, gen, with_labels=True)
        shift = torch.randint(-2, 3, (2,), generator=gen).tolist()  # small translations: robust to placement
        loss = F.cross_entropy(net(torch.roll(x, shift, dims=(2, 3))), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


@torch.no_grad()
def classify(net, images_uint8) -> tuple:
    x = from_uint8(images_uint8)
    probs = F.softmax(net(x), dim=1)
    return probs.max(1).values, probs.argmax(1)


def sample_digits(pipe, n: int, solver: str, steps: int, chunk: int = 50):
    images, seconds = [], 0.0
    for start in range(0, n, chunk):
        out = pipe(n=min(chunk, n - start), steps=steps, solver=solver, seed=start)
        images.append(out.images)
        seconds += out.seconds
    return torch.from_numpy(np.concatenate(images)), seconds


def test_vlb(pipe, n_terms: int = 200) -> float:
    test = load_images("mnist-offline", "test")
    x0 = test.images.float() / 127.5 - 1
    nats = vlb_nats(pipe.denoiser, x0, pipe.schedule, steps=1000, n_terms=n_terms, seed=0)
    return float(bits_per_dim(nats, x0[0].numel(), bin_width=2 / 255).mean())


def run(n: int):
    start = time.perf_counter()
    clf = train_classifier()
    test = load_images("mnist-offline", "test")
    real_conf, pred = classify(clf, test.images.permute(0, 2, 3, 1))
    accuracy = float((pred == test.labels).float().mean())
    real_confident = float((real_conf > 0.9).float().mean())  # what a perfect generator would score
    pipe = zoo.load("mnist")
    rows = []
    for solver, steps in SOLVERS:
        images, seconds = sample_digits(pipe, n, solver, steps)
        conf, label = classify(clf, images)
        hist = torch.bincount(label[conf > 0.9], minlength=10).tolist()
        rows.append({"solver": solver, "steps": steps, "confident": float((conf > 0.9).float().mean()),
                     "histogram": hist, "seconds": round(seconds, 1)})
    result = {"classifier_test_accuracy": accuracy, "real_confident": real_confident, "samples": n, "solvers": rows,
              "vlb_bits_per_dim_test": test_vlb(pipe), "bench_seconds": round(time.perf_counter() - start, 1)}
    return result


def markdown(r: dict) -> str:
    lines = [f"Digit classifier (trained on 4,500 real digits): **{r['classifier_test_accuracy']:.1%}** accuracy on the "
             f"500 held-out test digits, {r['real_confident']:.1%} of which it classifies with confidence > 0.9 "
             f"(the score of a perfect generator). {r['samples']} samples per solver from the bundled `mnist` model.", "",
             "| solver | steps | share with confidence > 0.9 | confident samples per class 0-9 | seconds |",
             "|---|---|---|---|---|"]
    for row in r["solvers"]:
        lines.append(f"| {row['solver']} | {row['steps']} | {row['confident']:.1%} | "
                     f"{' / '.join(map(str, row['histogram']))} | {row['seconds']} |")
    lines += ["", f"Variational bound on the 500 real test digits: **{r['vlb_bits_per_dim_test']:.3f} bits/dim** "
                  "(1000-step discretisation, 200 sampled terms)."]
    return "\n".join(lines) + "\n"


def update_card(folder: Path, r: dict, text: str) -> None:
    """Record the numbers in config.json ('eval') and the model card."""
    from zoo.hub import record_evaluation

    best = max(r["solvers"], key=lambda row: row["confident"])
    record_evaluation(folder, {"vlb_bits_per_dim_test": round(r["vlb_bits_per_dim_test"], 4),
                               "confident_digits": round(best["confident"], 4), "confident_solver": best["solver"],
                               "classifier_test_accuracy": round(r["classifier_test_accuracy"], 4)},
                      text, "bench/digit_quality.py")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--update-card", action="store_true", help="write the numbers into weights/mnist")
    args = ap.parse_args()
    r = run(args.n)
    text = markdown(r)
    write_report("digit_quality", r, text)
    if args.update_card:
        update_card(ROOT / "weights" / "mnist", r, text)


if __name__ == "__main__":
    main()
