"""Text to image: the text encoder, the DiT, the VAE, the latent pipeline with CFG, the
registry entries and both trainers, on tiny configs."""
import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from zoo import hub, registry
from zoo.data import shapes
from zoo.diffusion import DiffusionConfig, sample
from zoo.nets.dit import DiT
from zoo.nets.text_encoder import PAD, UNKNOWN, TextEncoder, bpe_tokenizer, pretrained_config, vocab_ids
from zoo.nets.vae import VAE, kl_divergence
from zoo.pipelines.text2image import LatentSpace, load_pipeline, load_vae

VOCAB = vocab_ids(shapes.vocabulary())


def tiny_dit(seed: int = 0) -> DiT:
    torch.manual_seed(seed)
    net = DiT(DiT.Config(width=32, depth=1, heads=2, text=TextEncoder.Config(vocab=VOCAB, width=32, layers=1)))
    for p in net.parameters():  # leave the zero-initialised start, so prompts change the output
        p.data.add_(0.05 * torch.randn_like(p))
    return net.eval()


def tiny_vae(seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    return VAE(VAE.Config(channels=(8, 8, 8))).eval()


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("t2i")
    vae, dit = tiny_vae(), tiny_dit()
    hub.save_checkpoint(root / "vae", vae, "vae", vae.config, {}, extra={"eval": {"psnr_db": 30.0}})
    latent = {"vae": str(root / "vae"), "vae_sha256": hub.weights_sha256(root / "vae"), "scale": 2.0, "shift": 0.1}
    hub.save_checkpoint(root / "dit", dit, "dit", dit.config, DiffusionConfig(parameterisation="v"),
                        extra={"latent": latent})
    return root


def test_tokenizer_keeps_the_caption_words_and_maps_the_rest_to_unknown():
    enc = TextEncoder(TextEncoder.Config(vocab=VOCAB, width=32, layers=1))
    rows = enc.tokenize(["a red circle", "a red dog", ""])
    tok = bpe_tokenizer()
    sot, eot = (int(enc.table[i]) for i in (tok.sot_token_id, tok.eot_token_id))
    assert rows[0, :5].tolist() == [sot, *(int(enc.table[i]) for i in tok.encode("a red circle")), eot]
    assert min(rows[0, 1:4].tolist()) >= 2 and rows[1, 3] == UNKNOWN and (rows[0, 5:] == PAD).all()
    assert rows[2, :2].tolist() == [sot, eot]
    with pytest.raises(ValueError, match="prompt too long: 30 tokens, at most 22"):
        enc.tokenize(["red " * 30])
    with pytest.raises(ValueError, match="end_of_text"):  # typed in, it would move the pooling position
        enc.tokenize(["a red <end_of_text> circle"])
    assert enc.unknown_pieces(["a red circle, 3 dogs", "a blue square"]) == [",", "3", "dogs"]


def test_text_encoder_pools_at_the_end_of_text_token():
    enc = TextEncoder(TextEncoder.Config(vocab=VOCAB, width=32, layers=1)).eval()
    rows = enc.tokenize(["a small red circle", "a blue square on the left"])
    pooled, tokens, mask = enc(rows)
    end = mask.sum(1) - 1  # position of end-of-text
    expected = tokens[torch.arange(2), end] @ enc.transformer.text_projection
    assert torch.allclose(pooled, expected, atol=1e-6) and mask.sum().item() == 6 + 8


def test_bidirectional_encoder_lets_early_words_see_later_ones_and_ignores_padding():
    """causal=False (T5-style): the token of 'circle' in 'a red circle to the left of ...'
    depends on 'left'; a causal encoder's cannot. Neither reads the padding."""
    prompts = ["a red circle on the left", "a red circle on the right"]
    for causal in (True, False):
        torch.manual_seed(0)
        enc = TextEncoder(TextEncoder.Config(vocab=VOCAB, width=32, layers=2, causal=causal)).eval()
        _, tokens, mask = enc(enc.tokenize(prompts))
        circle_moved = (tokens[0, 3] - tokens[1, 3]).abs().max().item()
        assert (circle_moved > 1e-3) == (not causal), causal
        with torch.no_grad():  # garbage in the padding row: the real tokens must not move
            enc.transformer.token_embedding.weight[PAD] += 10 * torch.randn(32)
        pooled2, tokens2, _ = enc(enc.tokenize(prompts))
        assert torch.allclose(tokens2[mask], tokens[mask], atol=1e-5)
    with pytest.raises(ValueError, match="causal=False applies to the from-scratch encoder"):
        dataclasses.replace(pretrained_config("RN50"), causal=False)
    assert DiT.Config(text={"vocab": VOCAB}).text.causal  # configs saved before the field load causal
    from argparse import Namespace

    from trainers.text2image import text_config

    args = dict(dataset="scenes", text_width=128, text_layers=3, freeze_text_encoder=None)
    assert not text_config(Namespace(**args, text_encoder="", text_attention="bidirectional")).causal
    with pytest.raises(ValueError, match="--text-attention bidirectional applies to the from-scratch encoder"):
        text_config(Namespace(**args, text_encoder="RN50", text_attention="bidirectional"))


def test_dit_context_path_equals_text_path_and_caption_dropout_is_training_only():
    net = tiny_dit()
    x, t = torch.randn(2, 4, 8, 8), torch.rand(2)
    rows = net.text_encoder.tokenize(["a red circle", "a blue square"])
    out = net(x, t, text=rows)
    assert out.shape == x.shape and torch.allclose(out, net(x, t, context=net.encode_text(rows, 2)))
    assert not torch.allclose(out, net(x, t))  # the prompt matters
    assert torch.allclose(net(x, t), net(x, t, text=net.text_encoder.tokenize(["", ""])))  # None = ""
    net.train()
    net.config.caption_dropout = 0.999999
    assert torch.allclose(net(x, t, text=rows), net(x, t), atol=1e-6)  # every caption dropped
    fresh = DiT(net.config).eval()  # adaLN-Zero: a new DiT predicts exactly zero
    assert fresh(x, t, text=rows).abs().max() == 0


def test_cross_attention_ignores_padding_tokens():
    net = tiny_dit()
    x, t = torch.randn(2, 4, 8, 8), torch.rand(2)
    pooled, tokens, mask = net.encode_text(net.text_encoder.tokenize(["a red circle", "a blue square on the left"]), 2)
    noisy = torch.where(mask[..., None], tokens, 100 * torch.randn_like(tokens))  # garbage where mask is False
    assert (~mask).any() and torch.allclose(net(x, t, context=(pooled, tokens, mask)),
                                            net(x, t, context=(pooled, noisy, mask)), atol=1e-5)
    assert not torch.allclose(net(x, t, context=(pooled, tokens, mask)), net(x, t, context=(pooled, noisy, ~mask)))


def test_dit_config_errors():
    with pytest.raises(ValueError, match="unknown text encoder config fields"):
        DiT.Config(text={"vocab": VOCAB, "colour": 1})
    with pytest.raises(ValueError, match="multiple of heads and of 4"):
        DiT(DiT.Config(width=6, heads=2, text=TextEncoder.Config(vocab=VOCAB, width=8, layers=1)))


def test_vae_shapes_and_kl():
    vae = tiny_vae()
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    mean, logvar = vae.encode(x)
    assert mean.shape == (3, *vae.config.latent_shape) == (3, 4, 8, 8) and vae.decode(mean).shape == x.shape
    zero = torch.zeros(1, 4, 8, 8)
    assert kl_divergence(zero, zero).item() == 0
    # KL(N(1, e) || N(0, 1)) per dimension = (1 + e - 1 - 1) / 2
    assert kl_divergence(zero + 1, zero + 1).item() == pytest.approx(256 * (np.e - 1) / 2, rel=1e-5)


def test_latent_space_normalises_and_decodes():
    vae = tiny_vae()
    space = LatentSpace(vae, 2.0, 0.1)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    z = space.encode(x)
    assert torch.allclose(z, (vae.encode(x)[0] - 0.1) * 2.0)
    assert torch.allclose(space.decode(z), vae.decode(vae.encode(x)[0]), atol=1e-5)


def test_guidance_zero_is_the_conditional_model_and_cfg_doubles_the_calls(folders):
    pipe = load_pipeline(folders / "dit", device="cpu", allow_local_vae=True)
    prompts = ["a red circle", "a blue square"]
    ctx = pipe.context(prompts)
    plain = sample(pipe.denoiser, (2, 4, 8, 8), steps=5, seed=3, cond={"context": ctx})
    out = pipe(prompts, n=2, steps=5, seed=3, guidance=0.0)
    assert np.array_equal(out.images, pipe.decode(plain)) and out.nfe == out.network_calls == 5
    guided = pipe(prompts, n=2, steps=5, seed=3, guidance=3.0)
    assert (guided.nfe, guided.network_calls) == (5, 10) and not np.array_equal(guided.images, out.images)
    # the guided denoiser is D(z | c) + w (D(z | c) - D(z | "")): check it at one (z, t)
    seen = []
    pipe(prompts, n=2, steps=1, seed=3, guidance=3.0, solver="euler",
         callback=lambda step, t, x_t, x0_hat: seen.append((t, x_t, x0_hat)))
    t, x_t, x0_hat = seen[0]
    cond, null = pipe.denoiser(x_t, t, context=ctx), pipe.denoiser(x_t, t, context=pipe.context(["", ""]))
    assert torch.allclose(x0_hat, cond + 3.0 * (cond - null), atol=1e-5)
    assert out.images.shape == (2, 32, 32, 3) and out.images.dtype == np.uint8 and out.prompts == prompts


def test_a_seed_gives_the_same_image_whatever_the_batch(folders):
    pipe = load_pipeline(folders / "dit", device="cpu", allow_local_vae=True)
    batch = pipe(["a red circle", "a green triangle", "a blue square"], n=3, steps=4, seed=7, guidance=2.0)
    alone = pipe("a green triangle", n=1, steps=4, seed=8, guidance=2.0)  # sample i uses seed + i
    assert np.abs(batch.images[1].astype(int) - alone.images[0]).max() <= 1


def test_bad_requests_raise_clear_errors(folders):
    pipe = load_pipeline(folders / "dit", device="cpu", allow_local_vae=True)
    cases = [(dict(prompt=""), "prompt is empty"), (dict(prompt="x" * 400), "at most 300"),
             (dict(prompt="red " * 30), "prompt too long: 30 tokens"), (dict(prompt=3), "must be a string"),
             (dict(prompt=["a", "b"], n=3), "one per sample"), (dict(prompt="a", n=0), "batch size"),
             (dict(prompt="a", n=10_000), "batch size"), (dict(prompt="a", guidance=float("nan")), "guidance"),
             (dict(prompt="a", guidance=1e9), "guidance"), (dict(prompt="a", steps=0), "steps"),
             (dict(prompt="a", solver="magic"), "solver")]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            pipe(**{"steps": 2, **kwargs})
    assert pipe("a red dog", n=1, steps=2).unknown_words == ["dog"]


def test_loading_checks_the_latent_space(folders, tmp_path):
    with pytest.raises(ValueError, match="not a text-to-image checkpoint"):
        load_pipeline(folders / "vae")
    with pytest.raises(ValueError, match="latent.vae: expected a zoo entry name"):  # a config never names a folder
        load_pipeline(folders / "dit")
    other = tiny_vae(seed=5)  # retrained VAE in the place the DiT names: refused
    shutil.copytree(folders / "dit", tmp_path / "dit")
    config = hub.load_config(tmp_path / "dit")
    hub.save_checkpoint(tmp_path / "vae", other, "vae", other.config, {})
    config["latent"]["vae"] = str(tmp_path / "vae")
    hub.atomic_write_text(tmp_path / "dit" / "config.json", json.dumps(config))
    with pytest.raises(ValueError, match="not the one this model was trained on"):
        load_pipeline(tmp_path / "dit", allow_local_vae=True)
    wide = VAE(VAE.Config(channels=(8, 8)))  # 4x16x16 latents for a DiT on 4x8x8
    hub.save_checkpoint(tmp_path / "vae", wide, "vae", wide.config, {})
    config["latent"]["vae_sha256"] = hub.weights_sha256(tmp_path / "vae")
    hub.atomic_write_text(tmp_path / "dit" / "config.json", json.dumps(config))
    with pytest.raises(ValueError, match=r"the VAE makes \(4, 16, 16\) latents"):
        load_pipeline(tmp_path / "dit", allow_local_vae=True)


def test_registry_loads_both_entries(folders, monkeypatch, tmp_path):
    shutil.copytree(folders / "dit", tmp_path / "dit")  # a release names its VAE by its zoo entry
    config = hub.load_config(tmp_path / "dit")
    config["latent"]["vae"] = "shapes-vae"
    hub.atomic_write_text(tmp_path / "dit" / "config.json", json.dumps(config))
    where = {"shapes-vae": folders / "vae", "shapes-t2i": tmp_path / "dit"}
    entries = [dataclasses.replace(e, bundled_path=str(where[e.name])) if e.name in where else e
               for e in registry.ENTRIES]
    monkeypatch.setattr(registry, "ENTRIES", entries)
    registry.clear_cache()
    import zoo

    vae, pipe = zoo.load("shapes-vae"), zoo.load("shapes-t2i")
    assert isinstance(vae, VAE) and vae.card == {"psnr_db": 30.0}
    assert pipe("a red circle", n=1, steps=2).images.shape == (1, 32, 32, 3)
    with pytest.raises(ValueError, match="not a VAE"):
        load_vae(folders / "dit")
    registry.clear_cache()


def test_trainers_release_loadable_checkpoints(tmp_path, monkeypatch):
    from trainers import text2image, vae

    vae.main(["--num-images", "64", "--steps", "4", "--ckpt-every", "4", "--batch-size", "8", "--channels", "8,8,8",
              "--out", str(tmp_path / "vae")])
    vae_folder = tmp_path / "vae" / "release"
    assert "psnr_db" in hub.load_config(vae_folder)["eval"]
    with pytest.raises(ValueError, match="--vae-name"):  # a local VAE needs the public name the release records
        text2image.main(["--vae", str(vae_folder), "--out", str(tmp_path / "refused")])
    result = text2image.main(["--vae", str(vae_folder), "--vae-name", "shapes-vae", "--num-images", "64",
                              "--steps", "4", "--ckpt-every", "4",
                              "--batch-size", "8", "--width", "32", "--depth", "1", "--heads", "2", "--text-width",
                              "32", "--text-layers", "1", "--eval-samples", "6", "--out", str(tmp_path / "dit")])
    # the in-process EMA net (which draws the card's samples and evaluation) is finite: averaging
    # the text encoder's causal mask (-inf entries) once made it NaN and every sample black
    ema = result.ema.cpu()
    assert torch.isfinite(ema(torch.randn(2, 4, 8, 8), torch.rand(2), text=ema.text_encoder.tokenize(["a", "b"]))).all()
    folder = tmp_path / "dit" / "release"
    assert np.asarray(Image.open(folder / "samples.png")).std() > 1  # not one flat colour
    config = hub.load_config(folder)
    assert set(config["eval"]["prompt_following_by_guidance"]) == {"0.0", "1.0", "3.0"}
    assert "text-to-image" in (folder / "README.md").read_text()
    # the saved normalisation gives the training latents unit variance and zero mean
    data, _ = shapes.load_shapes(64, seed=0)
    assert config["latent"]["vae"] == "shapes-vae" and str(tmp_path) not in (folder / "config.json").read_text()
    monkeypatch.setattr(registry, "ENTRIES", [dataclasses.replace(e, bundled_path=str(vae_folder))
                                              if e.name == "shapes-vae" else e for e in registry.ENTRIES])
    pipe = load_pipeline(folder, device="cpu")
    z = pipe.latent.encode_uint8(data.images.permute(0, 2, 3, 1))
    assert abs(float(z.std()) - 1) < 1e-3 and abs(float(z.mean())) < 1e-3
    assert pipe("a red circle", n=2, steps=3).images.shape == (2, 32, 32, 3)


def test_a_negative_prompt_replaces_the_empty_prompt_as_null_condition(folders):
    """Guided by a negative prompt c_-, the denoiser is D(z | c) + w (D(z | c) - D(z | c_-)):
    checked at one (z, t); with c_- = c it is the plain conditional model whatever w."""
    pipe = load_pipeline(folders / "dit", device="cpu", allow_local_vae=True)
    seen = []
    pipe("a red circle", n=2, steps=1, seed=3, guidance=2.0, solver="euler", negative_prompt="a blue square",
         callback=lambda step, t, x_t, x0_hat: seen.append((t, x_t, x0_hat)))
    t, x_t, x0_hat = seen[0]
    cond = pipe.denoiser(x_t, t, context=pipe.context(["a red circle"] * 2))
    negative = pipe.denoiser(x_t, t, context=pipe.context(["a blue square"] * 2))
    assert torch.allclose(x0_hat, cond + 2.0 * (cond - negative), atol=1e-5)
    same = pipe("a red circle", n=2, steps=4, seed=3, guidance=3.0, negative_prompt="a red circle")
    plain = pipe("a red circle", n=2, steps=4, seed=3, guidance=0.0)
    assert np.abs(same.images.astype(int) - plain.images).max() <= 1 and same.network_calls == 2 * plain.network_calls
    assert pipe("a red circle", n=1, steps=2, negative_prompt="a zebra").unknown_words == ["zebra"]
    for bad, message in ((3, "negative_prompt must be a string"), ("x" * 400, "at most 300")):
        with pytest.raises(ValueError, match=message):
            pipe("a red circle", n=1, steps=2, negative_prompt=bad)


def test_trainers_take_the_scenes_data_set(tmp_path):
    """--dataset scenes: a 48x48 VAE, a DiT on its 12x12 latents whose evaluation is the scene judge's."""
    from trainers import text2image, vae

    vae.main(["--dataset", "scenes", "--num-images", "32", "--steps", "2", "--ckpt-every", "2", "--batch-size", "4",
              "--channels", "8,8,8", "--out", str(tmp_path / "vae")])
    vae_folder = tmp_path / "vae" / "release"
    assert hub.load_config(vae_folder)["net"]["image_size"] == 48
    with pytest.raises(ValueError, match="takes 48x48 images, the shapes data set has 32x32"):
        text2image.main(["--vae", str(vae_folder), "--vae-name", "scenes-vae", "--out", str(tmp_path / "refused")])
    text2image.main(["--dataset", "scenes", "--vae", str(vae_folder), "--vae-name", "scenes-vae", "--num-images", "32",
                     "--steps", "2", "--ckpt-every", "2", "--batch-size", "4", "--width", "32", "--depth", "1",
                     "--heads", "2", "--text-width", "32", "--text-layers", "1", "--eval-samples", "6",
                     "--out", str(tmp_path / "dit")])
    config = hub.load_config(tmp_path / "dit" / "release")
    assert config["net"]["input_size"] == 12 and config["data"]["dataset"] == "scenes"
    assert set(config["eval"]["prompt_following_by_guidance"]["3.0"]) >= {"counting", "position", "overall"}


def test_fine_tuning_starts_from_a_release_on_another_mixture(tmp_path):
    """--init-from loads a released DiT (lr 0 keeps it: the fine-tuned release holds the same
    weights); --mixture weighs the scenes categories and is recorded; mismatches are refused."""
    from safetensors.torch import load_file

    from trainers import text2image, vae

    vae.main(["--dataset", "scenes", "--num-images", "16", "--steps", "1", "--ckpt-every", "1", "--batch-size", "4",
              "--channels", "8,8,8", "--out", str(tmp_path / "vae")])
    sized = lambda width: ["--dataset", "scenes", "--vae", str(tmp_path / "vae" / "release"), "--vae-name",
                           "scenes-vae", "--num-images", "16", "--steps", "1", "--ckpt-every", "1", "--batch-size", "4",
                           "--width", width, "--depth", "1", "--heads", "2", "--text-width", "32", "--text-layers", "1",
                           "--eval-samples", "2"]
    small = sized("32")
    text2image.main([*small, "--out", str(tmp_path / "base")])
    base = tmp_path / "base" / "release"
    text2image.main([*small, "--init-from", str(base), "--mixture", "position=3,counting=1", "--lr", "0",
                     "--seed", "5", "--out", str(tmp_path / "tuned")])
    tuned = tmp_path / "tuned" / "release"
    before, after = load_file(base / "model.safetensors"), load_file(tuned / "model.safetensors")
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    training = hub.load_config(tuned)["training"]  # a fine-tuned model states all its training
    assert training["steps_before"] == 1 and training["init_from"] == "release"  # public_path: no local folders
    assert hub.training_steps(hub.load_config(tuned)) == 2  # what the model line shows
    assert [hub.training_steps({"training": t}) for t in ({"steps": 5}, {"steps": 5, "steps_before": -3},
                                                           {"steps": True}, {})] == [5, 5, None, None]
    mixture = hub.load_config(tuned)["data"]["mixture"]
    assert mixture["position"] == 0.75 and mixture["counting"] == 0.25 and mixture["single_object"] == 0.0
    with pytest.raises(ValueError, match=r"differs from this run's dit in \['width'\]"):
        text2image.main([*sized("64"), "--init-from", str(base),
                         "--out", str(tmp_path / "wider")])
    with pytest.raises(SystemExit):  # argparse: a category the scenes do not have
        text2image.main([*small, "--mixture", "positions=1", "--out", str(tmp_path / "typo")])
    with pytest.raises(ValueError, match="--mixture weighs the scenes"):
        text2image.main(["--mixture", "position=1", "--out", str(tmp_path / "shapes")])
