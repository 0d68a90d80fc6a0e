"""The caption-contrast loss (zoo.diffusion.caption_contrast): its hard negatives are false
for their images, it is the diffusion loss where no caption has one, its term is the
softplus of the batch's error gap, and the trainer records it."""
import math

import numpy as np
import pytest
import torch

from zoo import hub
from zoo.data import scene_judge, scenes
from zoo.data.captioned import CAPTIONED, mirrored
from zoo.diffusion import DiffusionConfig, diffusion_loss
from zoo.diffusion.caption_contrast import caption_contrast_loss
from zoo.nets.dit import DiT
from zoo.nets.text_encoder import TextEncoder, vocab_ids


def test_mirrored_captions_are_false_for_their_scenes():
    """Every scene whose caption has a hard negative: the judge passes the caption and fails
    its negative on the rendered image; held-out phrasings are never used as negatives."""
    assert mirrored("a red circle to the left of a blue square") == "a red circle to the right of a blue square"
    assert mirrored("a small red circle in the top left") == "a small red circle in the top right"
    assert mirrored("three yellow circles") is None
    negative = CAPTIONED["scenes"].negative
    assert negative("a circle below a square") is None  # "a circle above a square" is held out
    assert negative("a triangle above a triangle") is None  # as true mirrored
    checked = 0
    for category, objects, caption in scenes.sample_scenes(300, seed=4, mixture={"position": 3, "single_object": 1}):
        neg = negative(caption)
        if neg is None:
            continue
        reads, checked = scene_judge.read_objects(scenes.render(objects)), checked + 1
        assert scene_judge.follows(scene_judge.parse_prompt(caption), reads), caption
        assert not scene_judge.follows(scene_judge.parse_prompt(neg), reads), (caption, neg)
        assert not scene_judge.held_out(neg)
    assert checked > 200


def test_opposite_scenes_put_the_pair_at_the_two_ends_of_the_relation_axis():
    """--mixture position_opposite: true relation captions (the judge reads them back), the
    two objects two cells apart along the axis the caption names, labelled position."""
    from zoo.data.shapes import POSITIONS

    drawn = scenes.sample_scenes(200, seed=2, mixture={scenes.OPPOSITE: 1})
    for category, objects, caption in drawn:
        assert category == "position"
        assert scene_judge.follows(scene_judge.parse_prompt(caption), scene_judge.read_objects(scenes.render(objects)))
        (ra, ca), (rb, cb) = (POSITIONS[o.position] for o in objects)
        axis = 1 if "left" in caption or "right" in caption else 0
        assert abs((ra, ca)[axis] - (rb, cb)[axis]) == 2, caption
    relations = {r for _, _, c in drawn for r in scenes.RELATIONS if f" {r} " in c}
    assert relations == set(scenes.RELATIONS)
    # position_template: the same at the middles of two opposite edges
    cells = {o.position for _, objects, _ in scenes.sample_scenes(100, seed=2, mixture={scenes.TEMPLATE: 1})
             for o in objects}
    assert cells == {"top", "bottom", "left", "right"}
    # naming no OPPOSITE leaves the draws of an old mixture as they were
    assert scenes.check_mixture({"position": 1}) == {**dict.fromkeys(scenes.CATEGORIES, 0.0), "position": 1.0}


def _setup(seed=0):
    torch.manual_seed(seed)
    net = DiT(DiT.Config(width=32, depth=1, heads=2, input_size=4,
                         text=TextEncoder.Config(vocab=vocab_ids(scenes.vocabulary()), width=32, layers=1)))
    for p in net.parameters():  # off the zero-initialised start, so captions change the output
        p.data.add_(0.05 * torch.randn_like(p))
    denoiser = DiffusionConfig(parameterisation="v").denoiser(net)
    captions = ["a red circle to the left of a blue square", "three circles", "a circle above a triangle",
                "a blue square"]
    text = net.text_encoder.tokenize(captions)
    negative = net.text_encoder.tokenize([mirrored(c) or c for c in captions])
    return net, denoiser, torch.randn(4, 4, 4, 4), text, negative


def _loss(fn, *args, seed=1, **kwargs):
    return fn(*args, generator=torch.Generator().manual_seed(seed), **kwargs)


def test_contrast_loss_is_the_diffusion_loss_plus_the_softplus_of_the_gap():
    net, denoiser, z, text, negative = _setup()
    net.eval()  # no caption dropout: both losses see the same captions
    plain = _loss(diffusion_loss, denoiser, z, text=text)
    assert torch.allclose(_loss(caption_contrast_loss, denoiser, z, text, text, 5.0, 100.0), plain)  # no pairs
    for weight, beta in ((1.0, 100.0), (3.0, 10.0)):
        total = _loss(caption_contrast_loss, denoiser, z, text, negative, weight, beta)
        # the gap by hand: rows 0 and 2 have negatives; the same (t, eps) draw for both captions
        err = lambda rows: _loss(_errors, denoiser, z, rows)
        gap = (err(text)[[0, 2]] - err(negative)[[0, 2]]).mean()
        expected = plain + weight * torch.nn.functional.softplus(beta * gap) / beta
        assert torch.allclose(total, expected, atol=1e-6)
    assert not torch.allclose(err(text)[[0, 2]], err(negative)[[0, 2]])  # the captions do differ


def _errors(denoiser, z, rows, generator):
    from zoo.diffusion.losses import diffuse, sample_errors

    x_t, t, eps = diffuse(z, denoiser.schedule, "uniform", generator)
    pred, c = denoiser.raw(x_t, t, text=rows)
    return sample_errors(denoiser, pred, c, z, eps)


def test_contrast_gradient_reaches_the_mirrored_words():
    """The term's gradient moves the embeddings of 'left' / 'right', which the diffusion loss
    of a caption without them cannot; dropped captions have no pair."""
    net, denoiser, z, text, negative = _setup()
    net.train()
    torch.manual_seed(0)
    caption_contrast_loss(denoiser, z, text, negative, 1.0, 100.0).backward()
    rows = net.text_encoder.tokenize(["left", "right"])[:, 1]
    grad = net.text_encoder.transformer.token_embedding.weight.grad[rows]
    assert grad.abs().sum() > 0
    net.config.caption_dropout = 0.999  # every caption dropped: no pair, the plain loss of the empty prompt
    torch.manual_seed(0)
    loss = caption_contrast_loss(denoiser, z, text, negative, 1.0, 100.0)
    assert math.isfinite(loss.item())


def test_trainer_records_the_contrast_and_refuses_bad_settings(tmp_path):
    from trainers import text2image, vae

    vae.main(["--dataset", "scenes", "--num-images", "16", "--steps", "1", "--ckpt-every", "1", "--batch-size", "4",
              "--channels", "8,8,8", "--out", str(tmp_path / "vae")])
    small = ["--dataset", "scenes", "--vae", str(tmp_path / "vae" / "release"), "--vae-name", "scenes-vae",
             "--num-images", "16", "--steps", "2", "--ckpt-every", "2", "--batch-size", "8", "--width", "32",
             "--depth", "1", "--heads", "2", "--text-width", "32", "--text-layers", "1", "--eval-samples", "2",
             "--mixture", "position=1"]
    text2image.main([*small, "--caption-contrast", "2", "--contrast-beta", "50", "--out", str(tmp_path / "c")])
    training = hub.load_config(tmp_path / "c" / "release")["training"]
    assert training["caption_contrast"] == 2.0 and training["contrast_beta"] == 50.0
    assert "--caption-contrast 2" in (tmp_path / "c" / "release" / "README.md").read_text()
    for bad in (["--caption-contrast", "-1"], ["--caption-contrast", "nan"], ["--contrast-beta", "0"]):
        with pytest.raises(ValueError, match="--caption-contrast must be finite"):
            text2image.main([*small, *bad, "--out", str(tmp_path / "bad")])


def test_concept_signal_measures_what_a_word_decides():
    """bench/concept_signal.py: explained is 1 when the groups are constant and different, 0
    when they are the same; on the scenes, a place decides most of a one-shape image and a
    relation little of a two-shape one, more when the pair sits at the ends of the axis and most
    in the fixed template layout."""
    from bench import concept_signal

    ones, zeros = np.ones((3, 2, 2, 1)), np.zeros((3, 2, 2, 1))
    assert concept_signal.explained([ones, zeros]) == pytest.approx(1.0)
    assert concept_signal.explained([np.concatenate([ones, zeros])] * 2) == pytest.approx(0.0)
    shares = concept_signal.measure(60)
    place, relation, opposite, template = shares.values()
    assert place > 0.6 and relation < 0.05 and 2 * relation < opposite < 0.2 and template > 2 * opposite
