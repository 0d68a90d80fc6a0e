"""Untrusted checkpoints (zoo.hub.validation): every way a downloaded config.json or
model.safetensors can be wrong is refused with a CheckpointError (a ValueError, shown to
the visitor) naming the file, the tensor or field, what was expected and what was found,
before it costs memory; the zoo's own and the bundled checkpoints still load."""
import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from servers.fixtures import make_checkpoint
from zoo import hub, registry
from zoo.data import shapes
from zoo.diffusion import DiffusionConfig
from zoo.hub.validation import (CHECKSUM_KEY, CheckpointError, build_on_meta, check_finite, load_validated_weights,
                                tensor_checksum)
from zoo.nets.dit import DiT
from zoo.nets.text_encoder import TextEncoder, vocab_ids
from zoo.pipelines.text2image import load_pipeline, resolve_vae

REPO = Path(__file__).resolve().parents[1]
BUNDLED = sorted(p.parent for p in (REPO / "weights").rglob("config.json"))


def refused(call, *parts) -> CheckpointError:
    """call() raises a CheckpointError whose message holds every part (file, item, expected, found)."""
    with pytest.raises(CheckpointError) as info:
        call()
    for part in parts:
        assert part in str(info.value), (part, str(info.value))
    return info.value


def weights(folder) -> dict:
    return load_file(str(Path(folder) / hub.WEIGHTS_NAME))


def rewrite_weights(folder, tensors: dict, checksum: bool = False) -> None:
    """Replace the weights as an outside tool would (no checksum unless asked)."""
    metadata = {"format": "pt", **({CHECKSUM_KEY: tensor_checksum(tensors)} if checksum else {})}
    save_file(tensors, str(Path(folder) / hub.WEIGHTS_NAME), metadata=metadata)


def edit_config(folder, **net) -> None:
    path = Path(folder) / hub.CONFIG_NAME
    config = json.loads(path.read_text())
    config["net"].update(net)
    path.write_text(json.dumps(config))


@pytest.fixture
def tiny(tmp_path):
    """A saved tiny checkpoint (tensors body.0.weight (16, 3), body.0.bias, body.2.weight (2, 16), body.2.bias)."""
    return make_checkpoint(tmp_path / "tiny")[0]


# ----------------------------------------------------------------------------- weights file


def test_save_writes_a_checksum_of_the_tensor_data(tiny):
    with safe_open(str(tiny / hub.WEIGHTS_NAME), "pt") as f:
        stored = f.metadata()[CHECKSUM_KEY]
    assert stored == tensor_checksum(weights(tiny)) and len(stored) == 64
    net, _ = hub.load_checkpoint(tiny)
    assert tensor_checksum({k: v.clone().fill_(0) for k, v in net.state_dict().items()}) != stored


def test_bit_flipped_data_byte_fails_the_checksum(tiny):
    path = tiny / hub.WEIGHTS_NAME
    data = bytearray(path.read_bytes())
    data_start = 8 + int.from_bytes(data[:8], "little")
    data[data_start] ^= 0x01  # lowest mantissa bit of the first float: still a finite, plausible weight
    path.write_bytes(bytes(data))
    assert all(torch.isfinite(t).all() for t in weights(tiny).values())  # nothing else would notice
    err = refused(lambda: hub.load_checkpoint(tiny), str(path), "tensor data", CHECKSUM_KEY, "damaged")
    assert isinstance(err, ValueError) and err.file == str(path)


def test_malformed_checksum_metadata_is_refused(tiny):
    tensors = weights(tiny)
    save_file(tensors, str(tiny / hub.WEIGHTS_NAME), metadata={CHECKSUM_KEY: "not-a-digest"})
    refused(lambda: hub.load_checkpoint(tiny), "model.safetensors", CHECKSUM_KEY, "64 lowercase hex", "not-a-digest")


def test_checkpoint_without_checksum_still_loads(tiny):
    tensors = weights(tiny)
    rewrite_weights(tiny, tensors)  # as written before checksums existed
    with safe_open(str(tiny / hub.WEIGHTS_NAME), "pt") as f:
        assert CHECKSUM_KEY not in f.metadata()
    net, _ = hub.load_checkpoint(tiny)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in tensors.items())


@pytest.mark.parametrize("value, found", [(float("nan"), "1 of 48 values NaN or infinite"),
                                          (float("inf"), "1 of 48 values NaN or infinite")])
def test_non_finite_weights_are_refused(tmp_path, value, found):
    folder, net = make_checkpoint(tmp_path / "ckpt")
    with torch.no_grad():
        net.body[0].weight[3, 1] = value  # a diverged run: saved by the zoo, checksum and all
    hub.save_checkpoint(folder, net, "tiny", net.config, DiffusionConfig())
    refused(lambda: hub.load_checkpoint(folder), "model.safetensors", "tensor 'body.0.weight'", "finite values", found)
    tensors = weights(folder)
    tensors["body.0.weight"][3, 1] = 0.0
    tensors["body.2.bias"][:] = value  # from another tool, without a checksum
    rewrite_weights(folder, tensors)
    refused(lambda: hub.load_checkpoint(folder), "tensor 'body.2.bias'", "2 of 2 values NaN or infinite")
    check_finite({"big": torch.tensor([3e38, 3e38])}, "x")  # a sum that overflows is no bad weight


@pytest.mark.parametrize("dtype, name", [(torch.int64, "I64"), (torch.bool, "BOOL")])
def test_integer_and_bool_tensors_are_refused(tiny, dtype, name):
    tensors = weights(tiny)
    tensors["body.0.bias"] = tensors["body.0.bias"].to(dtype)
    rewrite_weights(tiny, tensors, checksum=True)
    refused(lambda: hub.load_checkpoint(tiny), "model.safetensors", "tensor 'body.0.bias'", "a floating dtype", name)


def test_integer_buffers_of_the_module_keep_their_dtype(tmp_path):
    """The reusable loader: a module's own integer buffer (BatchNorm's counter) is allowed, as that dtype only."""
    path = tmp_path / "bn.safetensors"
    real = torch.nn.BatchNorm1d(4)
    real.num_batches_tracked += 7
    save_file(real.state_dict(), str(path))
    expected = build_on_meta(lambda: torch.nn.BatchNorm1d(4), "test")
    tensors = load_validated_weights(path, expected)
    assert tensors["num_batches_tracked"].dtype == torch.int64 and int(tensors["num_batches_tracked"]) == 7
    save_file({**real.state_dict(), "num_batches_tracked": torch.tensor(7.0)}, str(path))
    refused(lambda: load_validated_weights(path, expected), "bn.safetensors", "'num_batches_tracked'", "dtype I64",
            "F32")
    ints = tmp_path / "int.safetensors"  # without a module to compare with: floats only
    save_file({"n": torch.tensor(1)}, str(ints))
    refused(lambda: load_validated_weights(ints), "int.safetensors", "tensor 'n'", "a floating dtype", "I64")


def test_missing_extra_and_wrong_shape_tensors_are_named(tiny):
    original = weights(tiny)
    cases = [({k: v for k, v in original.items() if k != "body.2.bias"}, ("tensor 'body.2.bias'", "missing")),
             ({**original, "body.9.weight": torch.zeros(2)}, ("tensor 'body.9.weight'", "an unexpected tensor")),
             ({**original, "body.2.weight": torch.zeros(3, 16)},
              ("tensor 'body.2.weight'", "expected shape [2, 16]", "found shape [3, 16]"))]
    for tensors, parts in cases:
        rewrite_weights(tiny, tensors, checksum=True)
        refused(lambda: hub.load_checkpoint(tiny), str(tiny / hub.WEIGHTS_NAME), *parts)


def test_corrupt_header_is_refused_before_parsing(tiny):
    path = tiny / hub.WEIGHTS_NAME
    path.write_bytes((1 << 40).to_bytes(8, "little") + b"{}")
    refused(lambda: hub.load_checkpoint(tiny), str(path), "header length", "1,099,511,627,776")
    path.write_bytes(b"\x05")
    refused(lambda: hub.load_checkpoint(tiny), str(path), "header length", "a 1-byte file")


# ----------------------------------------------------------------------------- config against weights


def test_config_sizes_that_do_not_match_the_weights(tiny, tmp_path):
    edit_config(tiny, hidden=8)  # within range, but not these weights: the meta build tells
    refused(lambda: hub.load_checkpoint(tiny), "model.safetensors", "tensor 'body.0.weight'",
            "expected shape [8, 3] (from the config)", "found shape [16, 3]")
    edit_config(tiny, hidden=32)  # wider than any tensor in the file
    refused(lambda: hub.load_checkpoint(tiny), str(tiny / "config.json"), "net.hidden",
            "an integer from 0 to 16 (the largest tensor dimension in model.safetensors)", "found 32")
    unet = tmp_path / "mnist"
    shutil.copytree(REPO / "weights" / "mnist", unet)
    edit_config(unet, num_res_blocks=2)  # a real UNet with one more block per level than its weights
    refused(lambda: hub.load_checkpoint(unet), "model.safetensors", "missing")
    edit_config(unet, num_res_blocks=1, image_size=100_000)  # not fixed by the weights: an absolute cap
    refused(lambda: hub.load_checkpoint(unet), "config.json", "net.image_size", "0 to 256", "found 100000")
    edit_config(unet, image_size=28, dropout=float("nan"))
    refused(lambda: hub.load_checkpoint(unet), "config.json", "net.dropout", "a finite number", "nan")


def test_config_fields_of_the_wrong_kind(tiny):
    cases = [(dict(hidden="16"), ("net.hidden", "an integer", "'16'")),
             (dict(hidden=True), ("net.hidden", "an integer", "True")),
             (dict(hidden=-1), ("net.hidden", "from 0 to 16", "-1")),
             (dict(colour=1), ("net.colour", "one of the TinyNet.Config fields ['dim', 'hidden']", "unknown field"))]
    for net, parts in cases:
        make_checkpoint(tiny)
        edit_config(tiny, **net)
        refused(lambda: hub.load_checkpoint(tiny), str(tiny / "config.json"), *parts)


def test_counts_are_bounded_by_the_number_of_tensors(tmp_path):
    mlp = tmp_path / "moons"
    shutil.copytree(REPO / "weights" / "toy2d" / "moons", mlp)
    n = len(weights(mlp))
    edit_config(mlp, depth=n + 1)  # more residual blocks than tensors: no net can match (10**9 below)
    refused(lambda: hub.load_checkpoint(mlp), "config.json", "net.depth",
            f"an integer from 0 to {n} (the number of tensors in model.safetensors)", f"found {n + 1}")


# Runs in a fresh process whose address space is capped, so that a regression fails there
# with a MemoryError instead of taking the machine's memory.
MEASURE = textwrap.dedent("""
    import json, resource, sys, time
    from zoo import hub
    hub.load_checkpoint("weights/toy2d/moons")  # first-use costs are not the check's
    vm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize"))
    resource.setrlimit(resource.RLIMIT_AS, ((vm << 10) + (1 << 30),) * 2)
    out = []
    for folder in sys.argv[1:]:
        before, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
        try:
            hub.load_checkpoint(folder)
            message = None
        except hub.CheckpointError as err:
            message = str(err)
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        out.append([message, time.perf_counter() - t0, grown / 1024])
    print(json.dumps(out))
""")


def test_huge_sizes_are_refused_before_any_allocation(tmp_path):
    """hidden=4096 over 128-wide MLP weights once built a 460 MB net before the shape check
    (and a billion blocks never finish). In a fresh process: peak RSS must not grow, each
    refusal must be quick."""
    cases = [(dict(hidden=4096), ("net.hidden", "an integer from 0 to 128", "found 4096")),
             (dict(hidden=10**9), ("net.hidden", "found 1000000000")),
             (dict(hidden=1e9), ("net.hidden", "expected an integer", "found 1000000000.0")),
             (dict(depth=10**9), ("net.depth", "the number of tensors", "found 1000000000"))]
    folders = []
    for i, (net, _) in enumerate(cases):
        folders.append(tmp_path / f"case{i}")
        shutil.copytree(REPO / "weights" / "toy2d" / "moons", folders[-1])
        edit_config(folders[-1], **net)
    proc = subprocess.run([sys.executable, "-c", MEASURE, *map(str, folders)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for (message, seconds, grown_mb), folder, (_, parts) in zip(results, folders, cases):
        assert message and all(p in message for p in (str(folder / "config.json"), *parts)), message
        assert seconds < 1.0 and grown_mb < 20, (message, seconds, grown_mb)


# ----------------------------------------------------------------------------- config.json itself


def test_config_json_that_is_not_utf8_json_or_an_object(tiny):
    path = tiny / "config.json"
    good = path.read_bytes()
    cases = [(good[:-3] + b' "\xff"}', ("UTF-8 text", "byte 0xff")),
             (b'{"arch": "tiny", ', ("line 1 column", "expected JSON")),
             (b"[1, 2]", ("top level", "a JSON object", "found list")),
             (b"[" * 200_000, ("nesting",)),
             (b'{"arch": "tiny", "diffusion": {}}', ("section 'net'", "missing")),
             (b'{"arch": 3, "net": {}, "diffusion": {}}', ("section 'arch'", "a JSON string", "int"))]
    for raw, parts in cases:
        path.write_bytes(raw)
        refused(lambda: hub.load_checkpoint(tiny), str(path), *parts)
        refused(lambda: hub.load_config(tiny), str(path), *parts)


def test_huge_config_json_is_refused_before_it_is_read(tiny, monkeypatch):
    path = tiny / "config.json"
    path.write_text(" " * (5 << 20) + "{}")

    def never(*args, **kwargs):
        raise AssertionError("a 5 MB config.json must be refused before it is read")

    monkeypatch.setattr(Path, "read_bytes", never)
    refused(lambda: hub.load_checkpoint(tiny), str(path), "file size", "at most 1,048,576 bytes", "5,242,882 bytes")


# ----------------------------------------------------------------------------- text to image


@pytest.fixture(scope="module")
def t2i(tmp_path_factory):
    """A small real DiT whose config names the bundled shapes-vae (through the registry)."""
    torch.manual_seed(0)
    dit = DiT(DiT.Config(width=32, depth=1, heads=2,
                         text=TextEncoder.Config(vocab=vocab_ids(shapes.vocabulary()), width=32, layers=1)))
    latent = {"vae": "shapes-vae", "vae_sha256": hub.weights_sha256(registry.resolve("shapes-vae")), "scale": 1.2,
              "shift": 0.1}
    folder = tmp_path_factory.mktemp("t2i") / "dit"
    hub.save_checkpoint(folder, dit, "dit", dit.config, DiffusionConfig(parameterisation="v"), extra={"latent": latent})
    return folder


def with_latent(t2i, tmp_path, **changes) -> Path:
    folder = tmp_path / "dit"
    shutil.copytree(t2i, folder)
    config = json.loads((folder / "config.json").read_text())
    config["latent"].update(changes)
    (folder / "config.json").write_text(json.dumps(config))  # NaN is written as NaN, as json.dumps does
    return folder


def test_dit_naming_a_registry_vae_loads(t2i):
    pipe = load_pipeline(t2i, device="cpu")
    assert pipe.latent.scale == 1.2 and pipe("a red circle", n=1, steps=2).images.shape == (1, 32, 32, 3)


@pytest.mark.parametrize("field, value, parts", [
    ("scale", float("nan"), ("latent.scale", "a finite number > 0", "nan")),
    ("scale", 0, ("latent.scale", "a finite number > 0", "found 0")),
    ("scale", -1.5, ("latent.scale", "a finite number > 0", "-1.5")),
    ("scale", "2", ("latent.scale", "a finite number > 0", "'2'")),
    ("shift", float("inf"), ("latent.shift", "a finite number", "inf")),
    ("vae_sha256", "abc", ("latent.vae_sha256", "64 lowercase hex digits", "'abc'")),
])
def test_latent_section_is_validated(t2i, tmp_path, field, value, parts):
    folder = with_latent(t2i, tmp_path, **{field: value})
    refused(lambda: load_pipeline(folder, device="cpu"), str(folder / "config.json"), *parts)


@pytest.mark.parametrize("reference", ["../../../etc", "/etc", "C:\\x", "~/vae", "a/b/c", None])
def test_latent_vae_cannot_name_a_local_path(t2i, tmp_path, reference):
    folder = with_latent(t2i, tmp_path, vae=reference)
    refused(lambda: load_pipeline(folder, device="cpu"), str(folder / "config.json"), "latent.vae",
            "a zoo entry name (such as 'shapes-vae') or a Hub repo id 'owner/name'", repr(reference))
    refused(lambda: resolve_vae(reference), "the VAE reference", repr(reference))


def test_a_local_vae_folder_only_from_the_command_line(t2i, tmp_path):
    local = str(registry.resolve("shapes-vae"))  # a real VAE checkpoint folder on this machine
    folder = with_latent(t2i, tmp_path, vae=local)
    refused(lambda: load_pipeline(folder, device="cpu"), "config.json", "latent.vae", repr(local))
    refused(lambda: resolve_vae(local), "the VAE reference", repr(local))
    assert resolve_vae(local, allow_local=True) == Path(local)  # trainers.text2image --vae
    assert load_pipeline(folder, device="cpu", allow_local_vae=True).latent.scale == 1.2
    with pytest.raises(hub.WeightsNotFound):  # a well-formed repo id goes to the (offline) Hub, never the disk
        resolve_vae("someone/vae")


# ----------------------------------------------------------------------------- bundled


def test_every_bundled_checkpoint_still_loads():
    """The released weights predate checksums and limits: each loads, with its own values."""
    names = {str(folder.relative_to(REPO / "weights")) for folder in BUNDLED}
    assert {"mnist", "mnist-cond", "mnist-classifier", "shapes-vae", "shapes-t2i", "toy2d/moons"} <= names
    for folder in BUNDLED:
        net, _ = hub.load_checkpoint(folder)
        raw = weights(folder)
        assert not net.training and all(torch.equal(v, raw[k].float()) for k, v in net.state_dict().items()), folder
    t0 = time.perf_counter()
    pipe = load_pipeline(REPO / "weights" / "shapes-t2i", device="cpu")  # its VAE by registry name
    assert time.perf_counter() - t0 < 10 and pipe("a red circle", n=1, steps=2).images.shape == (1, 32, 32, 3)


@pytest.mark.parametrize("diffusion, item", [({"schedule": "warp"}, "diffusion.schedule"),
                                             ({"parameterisation": "magic"}, "diffusion.parameterisation"),
                                             ({"sigma_data": float("nan")}, "diffusion.sigma_data"),
                                             ({"sigma_data": 0}, "diffusion.sigma_data"),
                                             ({"temperature": 2}, "diffusion.temperature")])
def test_the_diffusion_section_is_checked(tmp_path, diffusion, item):
    folder, _ = make_checkpoint(tmp_path / "ckpt")
    config = json.loads((folder / "config.json").read_text())
    config["diffusion"].update(diffusion)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=item):
        hub.load_checkpoint(folder)
