"""A pretrained open_clip text tower as the DiT's text encoder (trainers.text2image
--text-encoder ARCH/TAG). The Hub is unreachable here, so the towers are ViT-B-32's
architecture randomly initialised (--text-encoder ViT-B-32), and "downloaded" weights are a
local file standing in for open_clip's download."""
import dataclasses
import json
import shutil

import pytest
import torch
from safetensors.torch import save_file

from zoo import hub
from zoo.diffusion import DiffusionConfig
from zoo.nets import text_encoder
from zoo.nets.dit import DiT
from zoo.nets.text_encoder import PretrainedUnavailable, TextEncoder, bpe_tokenizer, pretrained_config, start_weights

ARCH = "ViT-B-32"  # CLIP's text tower: 12 layers, 512 wide, 77 tokens, ~63M parameters
CLIP_CONTEXT, CLIP_WIDTH = 77, 512
PROMPTS = ["a red circle!??", "a zebra riding a bicycle"]  # "!??" holds BPE id 0, CLIP's padding id


def small_dit(text: TextEncoder.Config, seed: int = 0) -> DiT:
    """A tiny DiT on a CLIP tower; its own layers moved off the zero start so prompts matter."""
    torch.manual_seed(seed)
    net = DiT(DiT.Config(width=32, depth=1, heads=2, text=text))
    for name, p in net.named_parameters():
        if not name.startswith("text_encoder."):
            p.data.add_(0.05 * torch.randn_like(p))
    return net.eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(net, checkpoint folder) of a small DiT on a randomly initialised ViT-B-32 tower."""
    net = small_dit(pretrained_config(ARCH))
    folder = tmp_path_factory.mktemp("clip-dit") / "dit"
    hub.save_checkpoint(folder, net, "dit", net.config, DiffusionConfig(parameterisation="v"))
    return net, folder


def no_downloads(monkeypatch):
    """Every way open_clip could fetch weights fails the test."""
    import open_clip

    def refuse(*args, **kwargs):
        raise AssertionError("loading a checkpoint must not download")
    for target, name in ((open_clip, "create_model"), (open_clip, "download_pretrained"), (text_encoder, "_download")):
        monkeypatch.setattr(target, name, refuse)


def test_a_clip_tower_encodes_prompts_with_the_full_vocabulary(saved):
    net, _ = saved
    enc, tok = net.text_encoder, bpe_tokenizer()
    assert net.config.text == pretrained_config(ARCH) and not net.config.text.vocab
    rows = enc.tokenize(PROMPTS)
    assert rows.shape == (2, CLIP_CONTEXT)
    assert rows[0, :7].tolist() == [tok.sot_token_id, *tok.encode(PROMPTS[0]), tok.eot_token_id]
    assert enc.unknown_pieces(PROMPTS) == []  # every BPE token has its own embedding
    with torch.no_grad():
        pooled, tokens, mask = net.encode_text(rows, 2)
        assert pooled.shape == (2, CLIP_WIDTH) and tokens.shape == (2, CLIP_CONTEXT, CLIP_WIDTH)
        # the BPE id 0 inside the prompt is a real token; the padding after end-of-text is not
        assert mask.sum(1).tolist() == [len(tok.encode(p)) + 2 for p in PROMPTS] and 0 in rows[0, 1:6].tolist()
        end = mask.sum(1) - 1
        assert torch.allclose(pooled, tokens[torch.arange(2), end] @ enc.transformer.text_projection, atol=1e-5)
        x, t = torch.randn(2, 4, 8, 8), torch.rand(2)
        assert net(x, t, text=rows).shape == x.shape and not torch.allclose(net(x, t, text=rows), net(x, t))
    with pytest.raises(ValueError, match="prompt too long: 80 tokens, at most 75"):
        enc.tokenize(["red " * 80])


def test_freezing_follows_the_weights_unless_asked():
    assert not pretrained_config(ARCH).frozen  # randomly initialised: it must learn
    assert pretrained_config(f"{ARCH}/openai").frozen  # pretrained: frozen, as Imagen's T5
    assert not pretrained_config(f"{ARCH}/openai", frozen=False).frozen
    enc = TextEncoder(pretrained_config(ARCH, frozen=True))
    assert not any(p.requires_grad for p in enc.parameters())
    with pytest.raises(ValueError, match="frozen applies to an open_clip tower"):
        TextEncoder.Config(vocab=(1, 2), frozen=True)


def test_the_checkpoint_rebuilds_the_tower_without_downloading(saved, monkeypatch):
    net, folder = saved
    no_downloads(monkeypatch)
    loaded, config = hub.load_checkpoint(folder)
    assert config["net"]["text"]["pretrained"] == ARCH and config["net"]["text"]["width"] == CLIP_WIDTH
    assert loaded.config == net.config
    rows = net.text_encoder.tokenize(PROMPTS)
    x, t = torch.randn(2, 4, 8, 8), torch.rand(2)
    with torch.no_grad():
        assert torch.equal(loaded(x, t, text=rows), net(x, t, text=rows))


def edited_copy(folder, tmp_path, **text_fields):
    """A copy of the checkpoint whose config.json's text section has `text_fields` (the
    weights file linked, not copied)."""
    copy = tmp_path / "edited"
    copy.mkdir()
    shutil.copy(folder / hub.CONFIG_NAME, copy / hub.CONFIG_NAME)
    (copy / hub.WEIGHTS_NAME).symlink_to(folder / hub.WEIGHTS_NAME)
    config = json.loads((copy / hub.CONFIG_NAME).read_text())
    config["net"]["text"].update(text_fields)
    (copy / hub.CONFIG_NAME).write_text(json.dumps(config))
    return copy


@pytest.mark.parametrize("fields, message", [
    ({"pretrained": "ViT-Q-99"}, "'ViT-Q-99' is not an open_clip architecture"),
    ({"pretrained": "ViT-B-16-SigLIP"}, "reads another tokenizer's ids than CLIP's BPE"),
    ({"pretrained": f"{ARCH}/no-such-tag"}, "open_clip has no pretrained weights 'no-such-tag'"),
    ({"width": 256}, "width 256 differs from open_clip ViT-B-32's 512"),
    ({"vocab": [49406, 49407]}, "vocab applies to the from-scratch encoder"),
    ({"pretrained": "x" * 101}, "at most 100 printable characters"),
])
def test_a_config_naming_another_tower_is_refused(saved, tmp_path, fields, message):
    with pytest.raises(hub.CheckpointError, match=message):
        hub.load_checkpoint(edited_copy(saved[1], tmp_path, **fields))


def open_clip_file(tmp_path, spec: str):
    """A weights file shaped as open_clip's download for `spec` (a random CLIP, fp16 to
    halve the writing): what the Hub would give."""
    import open_clip

    torch.manual_seed(1)
    clip = open_clip.create_model(text_encoder.split_spec(spec)[0], force_quick_gelu=text_encoder._quick_gelu(spec))
    path = tmp_path / "open_clip_model.safetensors"
    save_file({k: v.half().contiguous() for k, v in clip.state_dict().items()}, str(path))
    return path, {k: v.half().float() for k, v in clip.state_dict().items()}


def test_pretrained_weights_start_the_tower_and_stay_out_of_the_config(tmp_path, monkeypatch):
    spec = f"{ARCH}/openai"
    path, expected = open_clip_file(tmp_path, spec)
    monkeypatch.setattr(text_encoder, "_download", lambda arch, tag: str(path))
    config = pretrained_config(spec)
    enc = TextEncoder(config)
    enc.load_start_weights(start_weights(config))
    for name, value in enc.transformer.state_dict().items():
        assert torch.equal(value, expected[name]), name
    assert not any(p.requires_grad for p in enc.parameters())  # pretrained: frozen
    assert start_weights(pretrained_config(ARCH)) is None  # no tag: randomly initialised, nothing fetched
    assert json.dumps(dataclasses.asdict(config)) == json.dumps(dataclasses.asdict(pretrained_config(spec)))


def test_weights_the_hub_cannot_give_are_a_clear_error():
    with pytest.raises(PretrainedUnavailable, match=r"Hub is unreachable \(HF_HUB_OFFLINE is set\)"):
        start_weights(pretrained_config(f"{ARCH}/openai"))


def test_the_trainer_takes_a_clip_tower(tmp_path):
    from trainers import text2image

    args = text2image.parse_args(["--text-encoder", ARCH])
    assert text2image.net_config(args).text == pretrained_config(ARCH)
    frozen = text2image.net_config(text2image.parse_args(["--text-encoder", ARCH, "--freeze-text-encoder"]))
    assert frozen.text.frozen
    with pytest.raises(ValueError, match="--text-width / --text-layers size the from-scratch encoder"):
        text2image.net_config(text2image.parse_args(["--text-encoder", ARCH, "--text-width", "64"]))
    with pytest.raises(ValueError, match="--freeze-text-encoder needs --text-encoder"):
        text2image.net_config(text2image.parse_args(["--freeze-text-encoder"]))
    with pytest.raises(ValueError, match="not an open_clip architecture"):
        text2image.net_config(text2image.parse_args(["--text-encoder", "ViT-Q-99"]))
    # no traceback for weights the Hub cannot give: the trainer exits saying so
    args = text2image.parse_args(["--text-encoder", f"{ARCH}/openai"])
    with pytest.raises(SystemExit, match=r"--text-encoder ViT-B-32/openai: .*Hub is unreachable"):
        text2image.tower_start(args, text2image.net_config(args).text)
    with pytest.raises(SystemExit, match=r"Hub is unreachable"):  # before the data set is made
        text2image.main(["--text-encoder", f"{ARCH}/openai", "--out", str(tmp_path / "never")])


@pytest.mark.slow
def test_a_trainer_run_on_a_frozen_clip_tower(tmp_path, monkeypatch):
    from trainers import text2image

    seed = 3
    result = text2image.main(["--text-encoder", ARCH, "--freeze-text-encoder", "--num-images", "32", "--steps", "2",
                              "--ckpt-every", "2", "--batch-size", "4", "--width", "32", "--depth", "1", "--heads",
                              "2", "--eval-samples", "2", "--fp16-weights", "--seed", str(seed),
                              "--out", str(tmp_path / "dit")])
    torch.manual_seed(seed)  # the trainer seeds, then builds the DiT, whose first module is the tower
    start = TextEncoder(pretrained_config(ARCH, frozen=True)).state_dict()
    trained = result.ema.text_encoder.state_dict()
    assert all(torch.equal(start[k], trained[k].cpu()) for k in start)  # frozen: the tower never moved
    no_downloads(monkeypatch)
    net, config = hub.load_checkpoint(tmp_path / "dit" / "release")
    assert config["net"]["text"]["pretrained"] == ARCH and config["net"]["text"]["frozen"]
    assert net.text_encoder.tokenize(["a red circle"]).shape == (1, CLIP_CONTEXT)
