"""What guidance buys and costs on the bundled MNIST models: the accuracy / diversity trade-off.

    python bench/guidance.py                  # writes bench/out/guidance.md
    python bench/guidance.py --update-card    # also records the numbers in weights/mnist-cond

For each setting, N samples per class (DPM-Solver++ 2M, 20 steps, the same seeds in every
setting) are judged by an independent digit classifier (bench/digit_quality.py's, trained
on clean digits; not the noise-aware classifier that guides):
- accuracy: share of samples the judge assigns to the requested class;
- confident: share assigned to it with confidence > 0.9;
- diversity: mean distance between two samples of the same class (RMS over pixels in
  [-1, 1]), next to the same number for real test digits. Guidance should raise the
  first two and lower the third (Ho & Salimans 2022, Fig. 1; Dhariwal & Nichol 2021).
"""
import argparse
import time
from pathlib import Path

import torch

import zoo
from bench.digit_quality import classify, train_classifier
from bench.report import write_report
from zoo.pipelines.conditional import GuidedPipeline
from zoo.data.images import load_images

ROOT = Path(__file__).resolve().parents[1]

CFG_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0)
CLASSIFIER_SCALES = (1.0, 2.0, 4.0, 8.0)


def diversity(images: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean RMS distance between distinct samples of the same class, pixels in [-1, 1]."""
    x = images.reshape(len(images), -1).float() / 127.5 - 1
    dists = []
    for k in labels.unique():
        d = torch.cdist(x[labels == k], x[labels == k]) / x.shape[1] ** 0.5
        m = len(d)
        dists.append(d.sum() / (m * (m - 1)))
    return float(torch.stack(dists).mean())


def judge(judge_net, images, labels) -> dict:
    conf, pred = classify(judge_net, images)
    hit = pred == labels
    return {"accuracy": float(hit.float().mean()), "confident": float((hit & (conf > 0.9)).float().mean()),
            "diversity": diversity(images.permute(0, 3, 1, 2), labels)}


def settings():
    """(name, pipeline, guidance w, classifier scale) of every measured setting."""
    cond, uncond, clf = zoo.load("mnist-cond"), GuidedPipeline(zoo.load("mnist")), zoo.load("mnist-classifier")
    rows = [(f"mnist-cond, CFG w = {w:g}", cond, w, 0.0, None) for w in CFG_WEIGHTS]
    rows += [(f"mnist (unconditional), classifier s = {s:g}", uncond, 0.0, s, clf) for s in CLASSIFIER_SCALES]
    rows += [("mnist-cond, w = 1 + classifier s = 2", cond, 1.0, 2.0, clf)]
    return rows


def run(per_class: int) -> dict:
    start = time.perf_counter()
    judge_net = train_classifier()
    test = load_images("mnist-offline", "test")
    real = {"diversity": diversity(test.images, test.labels)}
    labels = torch.arange(10).repeat_interleave(per_class)
    rows = []
    for name, pipe, w, s, clf in settings():
        images, calls, seconds = [], 0, 0.0
        for lo in range(0, len(labels), 50):  # sample i has seed i, whatever the chunking
            out = pipe(labels[lo:lo + 50].tolist(), steps=20, solver="dpmpp_2m", seed=lo, guidance=w,
                       classifier=clf, classifier_scale=s)
            images.append(torch.from_numpy(out.images))
            calls, seconds = out.network_calls, seconds + out.seconds
        rows.append({"setting": name, "w": w, "s": s, **judge(judge_net, torch.cat(images), labels),
                     "network_calls": calls, "seconds": round(seconds, 1)})
        print(rows[-1], flush=True)
    return {"per_class": per_class, "real": real, "rows": rows, "bench_seconds": round(time.perf_counter() - start)}


def markdown(r: dict) -> str:
    lines = [f"{r['per_class']} samples per class (DPM-Solver++ 2M, 20 steps, the same seeds everywhere), judged by an "
             "independent digit classifier. Real test digits have diversity "
             f"**{r['real']['diversity']:.3f}**.", "",
             "| setting | accuracy | confident (> 0.9) | diversity | network passes per sample | seconds |",
             "|---|---|---|---|---|---|"]
    for row in r["rows"]:
        lines.append(f"| {row['setting']} | {row['accuracy']:.1%} | {row['confident']:.1%} | {row['diversity']:.3f} | "
                     f"{row['network_calls']} | {row['seconds']} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--update-card", action="store_true", help="write the numbers into weights/mnist-cond")
    args = ap.parse_args()
    if args.per_class < 2:
        ap.error("--per-class must be at least 2 (diversity compares two samples of a class)")
    r = run(args.per_class)
    text = markdown(r)
    write_report("guidance", r, text)
    if args.update_card:
        from zoo.hub import record_evaluation

        best = max((row for row in r["rows"] if row["s"] == 0), key=lambda row: row["accuracy"])
        plain = next(row for row in r["rows"] if row["w"] == 0 and row["s"] == 0)
        record_evaluation(ROOT / "weights" / "mnist-cond",
                          {"accuracy_w0": round(plain["accuracy"], 4), "best_w": best["w"],
                           "accuracy_best_w": round(best["accuracy"], 4), "diversity_w0": round(plain["diversity"], 4),
                           "diversity_real": round(r["real"]["diversity"], 4)}, text, "bench/guidance.py")


if __name__ == "__main__":
    main()
