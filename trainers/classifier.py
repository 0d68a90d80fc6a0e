"""Train the noise-aware classifier p(y | x_t, t) of classifier guidance (Dhariwal & Nichol
2021, Sec. 4): cross-entropy on forward-process draws x_t of real labelled images, at
uniform random t on the schedule the guided diffusion model uses.

    python -m trainers.classifier --dataset mnist-offline --fp16-weights --release weights/mnist-classifier

After training, the accuracy on the held-out split at several noise levels goes into the
checkpoint (config.json 'eval' and the model card).
"""
import argparse
from pathlib import Path

import torch
from torch.nn import functional as F

from trainers.common import Release, add_loop_args, command_line, loop_config, public_path, train
from zoo.data.images import load_images
from zoo.diffusion import SCHEDULES, DiffusionConfig, NoisyClassifier, diffuse
from zoo.hub import CardInfo
from zoo.nets.classifier import Classifier

EVAL_TIMES = (0.0, 0.25, 0.5, 0.75, 0.9)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist-offline", help="a labelled image source (see trainers.pixels)")
    ap.add_argument("--schedule", choices=sorted(SCHEDULES), default="vp-cosine",
                    help="the schedule of the diffusion model it will guide")
    ap.add_argument("--channels", type=int, default=Classifier.Config.channels, help="width of the first stage")
    ap.add_argument("--fp16-weights", action="store_true", help="store the released weights in float16")
    add_loop_args(ap, steps=3000, batch_size=64, lr=2e-3, warmup=100, lr_decay="cosine", ema_decay=0.999,
                  ckpt_every=500, log_every=50, out=None)
    return ap.parse_args(argv)


@torch.no_grad()
def accuracy_by_time(classifier: NoisyClassifier, data, times=EVAL_TIMES, seed: int = 0) -> dict:
    """Share of the images whose label is the argmax at each t (fixed noise per t)."""
    device = next(classifier.parameters()).device
    x0, labels = data.images.float() / 127.5 - 1, data.labels.to(device)
    accuracy = {}
    for t in times:
        g = torch.Generator().manual_seed(seed)
        alpha, sigma = classifier.schedule.alpha_sigma(torch.tensor(t, dtype=torch.float64))
        x_t = (float(alpha) * x0 + float(sigma) * torch.randn(x0.shape, generator=g)).to(device)
        logits = torch.cat([classifier(chunk, t) for chunk in x_t.split(500)])
        accuracy[t] = float((logits.argmax(1) == labels).float().mean())
    return accuracy


def evaluation(schedule: str, test):
    """Release.evaluate: held-out accuracy by noise level, as numbers and a markdown table."""
    def evaluate(net):
        accuracy = accuracy_by_time(NoisyClassifier(net, schedule), test)
        rows = "\n".join(f"| {t} | {a:.3f} |" for t, a in accuracy.items())
        print("held-out accuracy by t: " + ", ".join(f"{t}: {a:.3f}" for t, a in accuracy.items()))
        return ({"test_accuracy_by_t": {str(t): round(a, 4) for t, a in accuracy.items()}},
                f"Accuracy on the {len(test)} held-out images of x_t at time t:\n\n| t | accuracy |\n|---|---|\n"
                + rows + "\n")
    return evaluate


def main(argv=None):
    args = parse_args(argv)
    args.out = args.out or f"runs/classifier-{Path(args.dataset).name}"
    cfg = loop_config(args, may_change=("fp16_weights",))  # the release's storage, not what is trained
    dataset = public_path(args.dataset, cfg.out)  # a local data set's folders stay private
    data, test = load_images(args.dataset, "train"), load_images(args.dataset, "test")
    if (data.labels < 0).any():
        raise ValueError(f"a classifier needs labels; {args.dataset} has unlabelled images")
    c, h, _ = data.shape
    config = Classifier.Config(in_channels=c, image_size=h, num_classes=int(data.labels.max()) + 1,
                               channels=args.channels)
    card = CardInfo(title=f"Noise-aware classifier on {dataset}", pipeline_tag="image-classification",
                    tags=["classifier-guidance", args.schedule], description=(
                        f"Time-conditioned CNN p(y | x_t, t) for classifier guidance of {args.schedule} diffusion "
                        "models, from the diffusion model zoo."),
                    data=f"{dataset}: {len(data)} labelled images of shape {'x'.join(map(str, data.shape))}")
    release = Release("classifier", config, DiffusionConfig(schedule=args.schedule), card,
                      dtype=torch.float16 if args.fp16_weights else torch.float32,
                      command=command_line("trainers.classifier", argv), evaluate=evaluation(args.schedule, test))

    def loss_fn(net, batch):
        x0, y = batch
        x_t, t, _ = diffuse(x0, SCHEDULES[args.schedule])
        return F.cross_entropy(NoisyClassifier(net, args.schedule)(x_t, t), y)

    torch.manual_seed(cfg.seed)
    result = train(Classifier(config), loss_fn, lambda step, g: data.batch(cfg.batch_size, g, with_labels=True), cfg,
                   release)
    print(f"released {public_path(result.release_dir, cfg.out)} after {result.step} steps")
    return result


if __name__ == "__main__":
    main()
