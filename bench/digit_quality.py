"""Are the bundled MNIST models' samples recognisable, varied, balanced digits that are not
copies of the training set? Measured per solver and step count.

    python bench/digit_quality.py                    # mnist and mnist-cond: bench/out/digit_quality.md
    python bench/digit_quality.py --update-card      # also records the numbers in weights/mnist(-cond)
    python bench/digit_quality.py --model runs/pixels-mnist-offline/release --solvers dpmpp_2m:20 \\
        --no-vlb --report pilot                      # a training run's release (a pilot)

1. A digit classifier (zoo.nets.classifier at t = 0) is trained on the 4,500 training digits
   of the offline MNIST source; its accuracy on the 500 held-out test digits, and the share
   of them it classifies with confidence > 0.9, are what a perfect generator would score.
2. N samples per solver and step count (the unconditional model; the class-conditional one
   at w = 0, N / 10 per class, no guidance): the share classified with confidence > 0.9,
   the share of samples in each class (by the classifier's argmax; real data: 10% each),
   and for the conditional model the share that is the requested class.
3. Frechet distance (Heusel et al. 2017, FID's formula) between the samples and the 500
   test digits in the classifier's penultimate features; its reference is the same
   distance between 500 training digits and the test digits (mean over the 9 disjoint
   500-digit subsets of the training set), so a ratio of 1 is "as close as real data".
4. Memorisation (Carlini et al. 2023, Extracting Training Data from Diffusion Models): each
   sample's L2 distance to its nearest training digit, against the same distance for the
   real test digits, which the model never saw. A model that copies training digits has a
   lower tail than real data: the 1st percentile of the samples' distances and the share of
   samples closer than the test digits' 1st percentile (about 1% for a model that does not
   copy) are reported.
5. The variational bound in bits/dim on the 500 test digits (Ho et al. 2020, discrete
   pixels: bin width 2/255 on [-1, 1]).
6. For a model whose registry entry has a guide (mnist: mnist-guide), the AUTOGUIDED rows
   again with autoguidance (Karras et al. 2024) at the entry's w, as the tab samples it.
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from bench.report import write_report
from zoo.data.images import load_images
from zoo.diffusion.likelihood import bits_per_dim, vlb_nats
from zoo.nets.classifier import Classifier
from zoo.pipelines.pixels import from_uint8

ROOT = Path(__file__).resolve().parents[1]

SOLVERS = (("dpmpp_2m", 10), ("dpmpp_2m", 20), ("heun", 10), ("heun", 20), ("ddim", 20), ("ddim", 50),
           ("ddpm", 100), ("ddpm", 250))
HEADLINE = ("dpmpp_2m", 20)  # the tabs' default sampler: the model card's headline numbers
AUTOGUIDED = (("dpmpp_2m", 10), ("dpmpp_2m", 20), ("heun", 20))  # again autoguided, for a model with a guide
CONFIDENT = 0.9


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
def judge(net: Classifier, x: torch.Tensor) -> dict:
    """Confidence, argmax label and penultimate features (the head's input, read by a hook)
    of images x in [-1, 1], (n, 1, 28, 28)."""
    seen = {}
    hook = net.head.register_forward_hook(lambda module, inputs, output: seen.update(features=inputs[0]))
    try:
        probs = F.softmax(net(x), dim=1)
    finally:
        hook.remove()
    return {"confidence": probs.max(1).values, "label": probs.argmax(1), "features": seen["features"].double()}


def classify(net, images_uint8) -> tuple:
    """(confidence, label) of uint8 images (n, H, W, C)."""
    out = judge(net, from_uint8(images_uint8))
    return out["confidence"], out["label"]


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """|mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)) between the Gaussians fitted to
    two feature sets (rows are samples). tr (C_a C_b)^(1/2) is computed as the trace of the
    square root of the symmetric PSD matrix C_a^(1/2) C_b C_a^(1/2), which has the same
    eigenvalues, so only symmetric eigendecompositions are needed."""
    a, b = a.double(), b.double()
    ca, cb = torch.cov(a.T), torch.cov(b.T)
    w, v = torch.linalg.eigh(ca)
    root_a = (v * w.clamp(min=0).sqrt()) @ v.T
    cross = torch.linalg.eigvalsh(root_a @ cb @ root_a).clamp(min=0).sqrt().sum()
    return float((a.mean(0) - b.mean(0)).pow(2).sum() + ca.trace() + cb.trace() - 2 * cross)


def frechet_reference(train_features: torch.Tensor, test_features: torch.Tensor) -> float:
    """Mean Frechet distance from disjoint random training subsets of the test set's size to
    the test set: what real data scores at the samples' set size (FD is biased upwards at
    small n). Random, because the training digits are stored sorted by class."""
    n = len(test_features)
    shuffled = train_features[torch.randperm(len(train_features), generator=torch.Generator().manual_seed(0))]
    chunks = [shuffled[i:i + n] for i in range(0, len(shuffled) - n + 1, n)]
    return float(np.mean([frechet_distance(c, test_features) for c in chunks]))


def nearest_distances(x: torch.Tensor, train: torch.Tensor, chunk: int = 500) -> torch.Tensor:
    """Each row's L2 distance to its nearest training image, as RMS per pixel (images in [-1, 1])."""
    flat = train.flatten(1).double()
    out = [torch.cdist(x[i:i + chunk].flatten(1).double(), flat).min(1).values for i in range(0, len(x), chunk)]
    return torch.cat(out) / flat.shape[1] ** 0.5


def memorisation(sample_nn: torch.Tensor, real_nn: torch.Tensor) -> dict:
    """Carlini et al.'s comparison: the samples' nearest-training-digit distances against
    those of real unseen digits, at the lower tail (1st percentile)."""
    real_p1 = float(torch.quantile(real_nn, 0.01))
    return {"nn_p1": float(torch.quantile(sample_nn, 0.01)), "nn_p1_real": real_p1,
            "nn_median": float(sample_nn.median()), "closer_than_real_p1": float((sample_nn < real_p1).double().mean())}


class Reference:
    """The real digits every model is measured against, and the judge."""

    def __init__(self):
        self.clf = train_classifier()
        train, test = load_images("mnist-offline", "train"), load_images("mnist-offline", "test")
        self.train_x, self.test_x = (from_uint8(train.images.permute(0, 2, 3, 1)),
                                     from_uint8(test.images.permute(0, 2, 3, 1)))
        real = judge(self.clf, self.test_x)
        self.test_features, self.test_labels = real["features"], test.labels
        self.accuracy = float((real["label"] == test.labels).double().mean())
        self.real_confident = float((real["confidence"] > CONFIDENT).double().mean())
        self.fd_reference = frechet_reference(judge(self.clf, self.train_x)["features"], self.test_features)
        self.real_nn = nearest_distances(self.test_x, self.train_x)
        self.training_sets = {"mnist-offline": (self.train_x, self.real_nn)}

    def training_set(self, dataset: str) -> tuple:
        """(training digits, the test digits' nearest-training distances) of the data a model
        was trained on (its config's data.dataset): memorisation is measured against what the
        model saw; every source shares mnist-offline's test digits."""
        if dataset not in self.training_sets:
            train = load_images(dataset, "train")
            train_x = from_uint8(train.images.permute(0, 2, 3, 1))
            self.training_sets[dataset] = (train_x, nearest_distances(self.test_x, train_x))
        return self.training_sets[dataset]

    def summary(self) -> dict:
        return {"classifier_test_accuracy": self.accuracy, "real_confident": self.real_confident,
                "frechet_reference": self.fd_reference, **memorisation(self.real_nn, self.real_nn)}

    def measure(self, x: torch.Tensor, labels: torch.Tensor | None = None, dataset: str = "mnist-offline") -> dict:
        """Every number of one set of samples x in [-1, 1]; `labels`: the requested classes;
        `dataset`: the model's training data, for the memorisation check."""
        out = judge(self.clf, x)
        train_x, real_nn = self.training_set(dataset)
        shares = torch.bincount(out["label"], minlength=10).double() / len(x)
        row = {"confident": float((out["confidence"] > CONFIDENT).double().mean()), "class_shares": shares.tolist(),
               "class_share_min": float(shares.min()), "class_share_max": float(shares.max()),
               "frechet_distance": frechet_distance(out["features"], self.test_features),
               **memorisation(nearest_distances(x, train_x), real_nn), "memorisation_against": dataset}
        row["frechet_ratio"] = row["frechet_distance"] / self.fd_reference
        if labels is not None:
            row["on_class"] = float((out["label"] == labels).double().mean())
        return row


def load_model(spec: str):
    """A bundled entry's name (weights/NAME) or a checkpoint folder -> (folder, GuidedPipeline);
    the pipeline's num_classes says whether it is class-conditional."""
    from zoo.pipelines.conditional import load_pipeline

    folder = ROOT / "weights" / spec if "/" not in spec and (ROOT / "weights" / spec).is_dir() else Path(spec)
    return folder, load_pipeline(folder)


def training_data(folder: Path) -> str:
    """The data set a checkpoint was trained on (its config.json's data.dataset)."""
    import json

    return json.loads((Path(folder) / "config.json").read_text()).get("data", {}).get("dataset", "mnist-offline")


def draw(pipe, n: int, solver: str, steps: int, chunk: int = 50, spacing: str = "logsnr",
         guidance: float = 0.0, autoguidance: float = 0.0, guiding_model=None) -> dict:
    """n samples as the app makes them (uint8, read back to [-1, 1]); sample i has seed i.
    A class-conditional model draws class i % 10 for sample i, with guidance w (default 0:
    none; a distilled student takes it as its input and samples with its own sampler); an
    unconditional one may be autoguided by `guiding_model` (a PixelPipeline) with weight
    `autoguidance`."""
    images, seconds, nfe = [], 0.0, 0
    labels = torch.arange(n) % 10 if pipe.num_classes else None
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        if labels is None:
            out = pipe.base(n=k, steps=steps, solver=solver, seed=start, spacing=spacing, autoguidance=autoguidance,
                            guiding_model=guiding_model)
        else:
            out = pipe(labels[start:start + k].tolist(), steps=steps, solver=solver, seed=start, guidance=guidance,
                       spacing=spacing)
        images.append(out.images)
        seconds, nfe = seconds + out.seconds, out.nfe
        passes = out.network_calls
    return {"x": from_uint8(np.concatenate(images)), "labels": labels, "seconds": seconds, "nfe": nfe,
            "passes": passes}


def test_vlb(pipe, test_x: torch.Tensor, n_terms: int = 200) -> float:
    """Variational bound (bits/dim) of the model on the test digits (a conditional model: its null class)."""
    nats = vlb_nats(pipe.base.denoiser, test_x, pipe.schedule, steps=1000, n_terms=n_terms, seed=0)
    return float(bits_per_dim(nats, test_x[0].numel(), bin_width=2 / 255).mean())


def measure_model(ref: Reference, spec: str, n: int, solvers, vlb: bool, guide: str | None = None) -> dict:
    """Every row of one model: (solver, steps) rows unguided, (solver, steps, w) rows
    autoguided with weight w by `guide` (default: the model's registry entry's guide)."""
    folder, pipe = load_model(spec)
    rows, dataset = [], training_data(folder)
    guide, autoguided = guide or entry_guide(spec), any(len(row) == 3 for row in solvers)
    if autoguided and (pipe.num_classes or not guide):
        raise ValueError(f"autoguided rows need an unconditional model with a guide (--guide or its registry "
                         f"entry's); {spec} is {'class-conditional' if pipe.num_classes else 'without one'}")
    guiding = load_model(guide)[1].base if autoguided else None
    for solver, steps, *w in solvers:
        w = w[0] if w else 0.0
        s = draw(pipe, n, solver, steps, autoguidance=w, guiding_model=guiding if w else None)
        rows.append({"solver": solver, "steps": steps, "nfe": s["nfe"], "passes": s["passes"],
                     "seconds": round(s["seconds"], 1), "autoguidance": w, **({"guide": guide} if w else {}),
                     **ref.measure(s["x"], s["labels"], dataset)})
        print(f"{spec} {solver} {steps} (autoguidance {w:g}): {rows[-1]['confident']:.1%} confident, "
              f"FD x{rows[-1]['frechet_ratio']:.2f}", flush=True)
    return {"model": spec, "folder": str(folder), "conditional": bool(pipe.num_classes), "rows": rows,
            "vlb_bits_per_dim_test": test_vlb(pipe, ref.test_x) if vlb else None}


def _entry(spec: str):
    """The registry entry of a bundled name, None for a checkpoint folder."""
    from zoo import registry

    try:
        return registry.get_entry(spec)
    except ValueError:
        return None


def entry_guide(spec: str) -> str | None:
    """The guiding model of a registry entry (autoguidance), None for a folder or an entry without one."""
    entry = _entry(spec)
    return entry.guide if entry else None


def with_autoguided_rows(spec: str, solvers: tuple) -> tuple:
    """`solvers` plus AUTOGUIDED at the registry entry's autoguidance w, for a model that has a guide."""
    entry = _entry(spec)
    if entry is None or not entry.guide:
        return tuple(solvers)
    return (*solvers, *((solver, steps, entry.autoguidance) for solver, steps in AUTOGUIDED))


def run(models, solvers, n: int, vlb: bool = True, guide: str | None = None) -> dict:
    """Every model's rows; solvers None: SOLVERS, and AUTOGUIDED for a model with a guide."""
    start = time.perf_counter()
    ref = Reference()
    result = {"samples": n, "reference": ref.summary(),
              "models": [measure_model(ref, m, n, solvers or with_autoguided_rows(m, SOLVERS), vlb, guide)
                         for m in models]}
    result["bench_seconds"] = round(time.perf_counter() - start, 1)
    return result


REFERENCE_STEPS = ("dpmpp_2m", 50)  # issue 16: the 10-step confident share within 2 points of this one's


def digit_frontier(spec: str, n: int) -> dict:
    """The few-step frontier (bench/frontier.py) of one model, scored by the confident share,
    and the many-step reference row."""
    from bench import frontier

    ref = Reference()
    folder, pipe = load_model(spec)
    dataset = training_data(folder)

    w = pipe.DEFAULT_W if pipe.num_classes else 0.0  # a guided model's times were searched at its tab's w

    def measure(solver, steps, spacing):
        s = draw(pipe, n, solver, steps, spacing=spacing, guidance=w)
        return {"nfe": s["nfe"], "seconds": round(s["seconds"], 1), **ref.measure(s["x"], s["labels"], dataset)}

    rows = frontier.measure_frontier(pipe.base, measure)
    reference = {"solver": REFERENCE_STEPS[0], "steps": REFERENCE_STEPS[1], "spacing": "logsnr",
                 **measure(*REFERENCE_STEPS, "logsnr")}
    return {"model": spec, "samples": n, "guidance": w, "rows": rows, "reference_row": reference,
            "reference": ref.summary()}


def parse_solvers(text: str) -> tuple:
    """'dpmpp_2m:20,ddpm:250,dpmpp_2m:20:1.5' -> (('dpmpp_2m', 20), ('ddpm', 250), ('dpmpp_2m', 20, 1.5)):
    a third field is an autoguidance w."""
    rows = [item.split(":") for item in text.split(",") if item]
    return tuple((name, int(steps), *(float(w) for w in rest)) for name, steps, *rest in rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--model", action="append", help="bundled name or checkpoint folder (repeatable; default "
                                                     "mnist and mnist-cond)")
    ap.add_argument("--solvers", type=parse_solvers, help="e.g. dpmpp_2m:20,ddpm:250,dpmpp_2m:20:1.5 (a third field: "
                    "autoguidance w); default: the issue's eight rows, and AUTOGUIDED at the entry's w for a model "
                    "with a guide")
    ap.add_argument("--guide", help="the guiding model of autoguided rows (default: the registry entry's guide)")
    ap.add_argument("--no-vlb", action="store_true", help="skip the variational bound")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    ap.add_argument("--report", default="digit_quality", help="bench/out/REPORT.md and .json")
    ap.add_argument("--frontier", action="store_true", help="the few-step frontier of the first model instead "
                    "(bench/out/digit_frontier.md)")
    ap.add_argument("--update-card", action="store_true", help="write the numbers into the bundled weights' folders")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models = args.model or ["mnist", "mnist-cond"]
    from bench.digit_report import frontier_markdown, markdown, update_card

    if args.frontier:
        r = digit_frontier(models[0], args.n)
        write_report("digit_frontier", r, frontier_markdown(r))
        return
    if args.update_card and ((args.solvers and HEADLINE not in args.solvers) or args.n != 500):
        ap.error(f"--update-card needs the headline setting {HEADLINE} and --n 500")
    r = run(models, args.solvers, args.n, vlb=not args.no_vlb, guide=args.guide)
    write_report(args.report, r, markdown(r))
    if args.update_card:
        for m in r["models"]:
            if Path(m["folder"]).resolve().parent == (ROOT / "weights").resolve():
                update_card(m, r)


if __name__ == "__main__":
    main()
