"""zoo.pipelines.conditional: guided sampling of class-conditional and unconditional UNets, the
noise-aware classifier, their trainers, and the exact answer on a Gaussian mixture."""
import numpy as np
import pytest
import torch

from zoo import hub
from zoo.pipelines.conditional import load_classifier, load_pipeline
from zoo.diffusion import SCHEDULES, DiffusionConfig, NoisyClassifier, sample
from zoo.nets.classifier import Classifier
from zoo.nets.unet import UNet
from zoo.pipelines.pixels import to_uint8

SHAPE = (1, 8, 8)


def tiny_unet(num_classes: int, seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    net = UNet(UNet.Config(image_size=8, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                           attn_resolutions=(), num_classes=num_classes))
    for p in net.parameters():  # leave the zero-initialised start, so labels change the output
        p.data.add_(0.05 * torch.randn_like(p))
    return net.eval()


def tiny_classifier(num_classes: int = 3, schedule: str = "vp-cosine", size: int = 8) -> NoisyClassifier:
    torch.manual_seed(1)
    net = Classifier(Classifier.Config(image_size=size, num_classes=num_classes, channels=8))
    return NoisyClassifier(net.eval(), schedule)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    diffusion = DiffusionConfig(schedule="vp-cosine", parameterisation="v")
    for name, classes in (("cond", 3), ("uncond", 0)):
        net = tiny_unet(classes)
        hub.save_checkpoint(root / name, net, "unet", net.config, diffusion, card=hub.CardInfo(title=name))
    clf = tiny_classifier()
    hub.save_checkpoint(root / "clf", clf.net, "classifier", clf.net.config, DiffusionConfig(schedule="vp-cosine"),
                        extra={"eval": {"test_accuracy_by_t": {"0.0": 0.9}}})
    return root


def test_guidance_zero_is_the_plain_conditional_model_and_cfg_doubles_the_calls(folders):
    pipe = load_pipeline(folders / "cond", device="cpu")
    assert pipe.num_classes == 3
    plain = sample(pipe.base.denoiser, (3, *SHAPE), steps=6, seed=4, cond={"y": torch.tensor([0, 1, 2])})
    out = pipe(np.array([0, 1, 2]), steps=6, seed=4, guidance=0.0)  # numpy labels are fine
    assert not np.array_equal(out.images, pipe.base(n=3, steps=6, seed=4).images)  # labels matter
    assert np.array_equal(out.images, to_uint8(plain)) and out.nfe == out.network_calls == 6
    guided = pipe([0, 1, 2], steps=6, seed=4, guidance=2.0)
    assert (guided.nfe, guided.network_calls) == (6, 12) and not np.array_equal(guided.images, out.images)
    assert 6 < pipe([0, 1, 2], steps=6, seed=4, guidance=2.0, interval=(0.0, 0.5)).network_calls < 12


def test_a_seed_gives_the_same_guided_sample_whatever_the_batch(folders):
    pipe, clf = load_pipeline(folders / "cond", device="cpu"), load_classifier(folders / "clf", device="cpu")
    kw = dict(steps=5, guidance=1.5, classifier=clf, classifier_scale=2.0)
    alone = pipe([2], seed=11, **kw).images[0]
    batch = pipe([1, 2, 0], seed=[10, 11, 12], **kw).images
    assert np.array_equal(batch[1], alone)


class Brightness(torch.nn.Module):
    """A noise-aware classifier with a known answer: logits (-1, 0, 1) * 20 alpha(t) b for
    the mean brightness b of x_t, so class 0 means dark, 2 bright. Like a trained noisy
    classifier, it is flat where x_t says nothing about x0 (alpha -> 0)."""

    config = Classifier.Config(image_size=8, num_classes=3)

    def forward(self, x, t):
        alpha = SCHEDULES["vp-cosine"].alpha(t.double()).to(x.dtype)
        return 20 * (alpha * x.mean(dim=(1, 2, 3)))[:, None] * torch.tensor([-1.0, 0.0, 1.0])


def test_classifier_guidance_steers_an_unconditional_model_towards_the_label(folders):
    pipe, clf = load_pipeline(folders / "uncond", device="cpu"), NoisyClassifier(Brightness(), "vp-cosine")
    assert pipe.num_classes == 0
    labels, seeds = [0] * 6 + [2] * 6, list(range(6)) * 2  # the same noise for both labels

    images = pipe(labels, steps=8, seed=seeds, classifier=clf, classifier_scale=3.0).images
    dark, bright = (images[k:k + 6].mean() for k in (0, 6))
    assert bright > dark + 20  # of 255 grey levels, from the same noise


def test_loaded_classifier_carries_its_evaluation(folders):
    clf = load_classifier(folders / "clf", device="cpu")
    assert isinstance(clf, NoisyClassifier) and clf.card == {"test_accuracy_by_t": {"0.0": 0.9}}
    assert clf(torch.zeros(2, *SHAPE), 0.5).shape == (2, 3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(labels=[3]), r"labels must be in \[0, 2\]"),
    (dict(labels=[-1]), r"labels must be in"),
    (dict(labels=[]), "labels must hold 1 to 64"),
    (dict(labels=[0] * 65), "labels must hold 1 to 64"),
    (dict(labels=["1"]), "labels must be a list of class indices"),
    (dict(labels=[True]), "labels must be a list of class indices"),
    (dict(labels=[0], guidance=float("nan")), "guidance w must be a finite number"),
    (dict(labels=[0], guidance=float("inf")), "guidance w must be a finite number"),
    (dict(labels=[0], guidance=1e9), r"guidance w must be in \[-1, 20\]"),
    (dict(labels=[0], guidance=10**400), "guidance w must be a finite number"),
    (dict(labels=[0], guidance=1.0, interval=(0.5,)), r"interval must be a pair"),
    (dict(labels=[0], guidance=1.0, interval=5), r"interval must be a pair"),
    (dict(labels=[0], guidance=1.0, interval=("a", "b")), r"interval must be a pair"),
    (dict(labels=[0], guidance=1.0, interval=(0.2, 0.6, 0.9)), r"interval must be a pair"),
    (dict(labels=[0], guidance=1.0, interval=(0.7, 0.2)), r"interval must be a pair"),
    (dict(labels=[0], classifier_scale=2.0), "no classifier was given"),
    (dict(labels=[0], steps=0), "steps must be an integer"),
    (dict(labels=[0], solver="rk45"), "solver must be one of"),
])
def test_bad_requests_are_value_errors_naming_the_problem(folders, kwargs, message):
    pipe = load_pipeline(folders / "cond", device="cpu")
    with pytest.raises(ValueError, match=message):
        pipe(**kwargs)


def test_mismatched_models_are_refused(folders):
    uncond, cond = load_pipeline(folders / "uncond", device="cpu"), load_pipeline(folders / "cond", device="cpu")
    with pytest.raises(ValueError, match="needs a class-conditional model"):
        uncond([0], guidance=1.0)
    with pytest.raises(ValueError, match="needs a class-conditional model"):
        uncond([0], interval=(0.2, 0.5), classifier=tiny_classifier(), classifier_scale=1.0)
    with pytest.raises(ValueError, match="follows labels only with a classifier and classifier_scale > 0"):
        uncond([0], classifier=tiny_classifier(), classifier_scale=0.0)
    with pytest.raises(ValueError, match=r"classifier scale must be in \[0, 20\]"):
        cond([0], classifier=tiny_classifier(), classifier_scale=-0.5)
    with pytest.raises(ValueError, match="follows labels only with a classifier"):
        uncond([0])
    with pytest.raises(ValueError, match="trained on the flow schedule"):
        cond([0], classifier=tiny_classifier(schedule="flow"), classifier_scale=1.0)
    with pytest.raises(ValueError, match="has 5 classes, the model 3"):
        cond([0], classifier=tiny_classifier(num_classes=5), classifier_scale=1.0)
    with pytest.raises(ValueError, match="takes 1x16x16 images"):
        cond([0], classifier=tiny_classifier(size=16), classifier_scale=1.0)
    with pytest.raises(ValueError, match="must be a NoisyClassifier"):
        cond([0], classifier=lambda x, t: x, classifier_scale=1.0)


@pytest.mark.slow
def test_conditional_and_classifier_trainers_release_loadable_checkpoints(tmp_path):
    from trainers.classifier import main as train_classifier
    from trainers.pixels import main as train_unet

    small = ["--steps", "3", "--batch-size", "4", "--warmup", "1"]
    train_unet(["--class-conditional", "--base-channels", "8", "--num-res-blocks", "1", "--attn-resolutions", "",
                *small, "--out", str(tmp_path / "run"), "--release", str(tmp_path / "cond")])
    card = (tmp_path / "cond" / "README.md").read_text()
    assert "classifier-free-guidance" in card and "--class-conditional" in card
    train_classifier(["--channels", "8", *small, "--out", str(tmp_path / "run-clf"),
                      "--release", str(tmp_path / "clf")])
    clf = load_classifier(tmp_path / "clf", device="cpu")
    assert set(clf.card["test_accuracy_by_t"]) == {"0.0", "0.25", "0.5", "0.75", "0.9"}
    assert "## Evaluation (at step 3, by the trainer)" in (tmp_path / "clf" / "README.md").read_text()
    pipe = load_pipeline(tmp_path / "cond", device="cpu")
    assert pipe.num_classes == 10 and pipe.base.denoiser.net.config.label_dropout == 0.1
    out = pipe([7, 3], steps=3, guidance=1.0, classifier=clf, classifier_scale=1.0)
    assert out.images.shape == (2, 28, 28, 1)


def test_trainer_refuses_unlabelled_data_and_bad_label_flags(tmp_path):
    from PIL import Image as PILImage

    from trainers.pixels import main as train_unet

    run = ["--steps", "1", "--out", str(tmp_path / "r")]
    with pytest.raises(ValueError, match="--label-dropout must be in"):
        train_unet(["--class-conditional", "--label-dropout", "1.5", *run])
    with pytest.raises(ValueError, match="--label-dropout applies only with --class-conditional"):
        train_unet(["--label-dropout", "0.2", *run])
    (tmp_path / "flat").mkdir()
    for i in range(4):  # images without class folders: no labels
        PILImage.fromarray(np.full((28, 28), 40 * i, np.uint8)).save(tmp_path / "flat" / f"{i}.png")
    with pytest.raises(ValueError, match="--class-conditional needs labels"):
        train_unet(["--dataset", str(tmp_path / "flat"), "--class-conditional", *run])
