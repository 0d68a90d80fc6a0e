"""zoo.registry: entries, allow-listed pipelines, sources, and zoo.load through a real
local Hub mirror (olah)."""
import dataclasses
import time

import pytest
import torch

import zoo
from servers.fixtures import make_checkpoint, online, tiny_arch  # noqa: F401
from servers.olah_mirror import git_repo_from_folder, start_olah
from zoo import hub, registry


def test_entries_cover_the_zoo():
    names = [e.name for e in zoo.list_models()]
    assert {"toy-moons", "toy-swissroll", "toy-8gaussians", "toy-checkerboard", "toy-pinwheel",
            "toy-circles", "toy-gmm", "mnist", "cifar10"} <= set(names)
    assert len(names) == len(set(names))
    for entry in zoo.list_models():
        assert entry.pipeline in registry.PIPELINES and entry.train_command.startswith("python -m trainers.")
    assert registry.get_entry("mnist").bundled_path == "weights/mnist"
    assert registry.get_entry("cifar10").bundled_path is None


def test_every_bundled_entry_ships_its_weights_and_loads():
    """A bundled_path must be a committed, loadable checkpoint (weights are never trained in CI)."""
    for entry in zoo.list_models():
        if entry.bundled_path:
            assert hub.is_checkpoint(entry.bundled_folder), f"{entry.name}: no checkpoint in {entry.bundled_path}"
            assert hub.load_config(entry.bundled_folder)["arch"]
    registry.clear_cache()
    for name in ("toy-moons", "mnist-cond", "shapes-t2i"):  # one of each pipeline family, for real
        assert zoo.load(name, device="cpu") is not None
    registry.clear_cache()


def test_unknown_name_and_pipeline_rejected():
    with pytest.raises(ValueError, match="mnist"):
        registry.get_entry("nope")
    entry = registry.get_entry("mnist")
    with pytest.raises(ValueError, match="pipeline must be one of"):
        dataclasses.replace(entry, pipeline="os:system")
    with pytest.raises(ValueError, match="task"):
        dataclasses.replace(entry, task="video")


def test_sources_offline_are_fast():
    t0 = time.monotonic()
    sources = {e.name: registry.source(e.name) for e in zoo.list_models()}
    assert time.monotonic() - t0 < 2.0
    assert set(sources.values()) <= {"bundled", "cached", "missing"}
    assert sources["cifar10"] == "missing" and registry.get_entry("cifar10").repo_id == "google/ddpm-cifar10-32"


def test_load_missing_says_how_to_train():
    t0 = time.monotonic()
    with pytest.raises(hub.WeightsNotFound, match="trainers.pixels --dataset cifar10"):
        zoo.load("cifar10")
    assert time.monotonic() - t0 < 2.0


@pytest.fixture
def test_entry(monkeypatch, tiny_arch):
    monkeypatch.setitem(registry.PIPELINES, "servers.tiny:load_pipeline", ("servers.tiny", "load_pipeline"))
    entry = registry.ZooEntry(name="tiny-test", task="toy2d", description="test", repo_id="zoo-test/tiny-entry",
                              bundled_path="weights/__no_such_test_folder__",
                              pipeline="servers.tiny:load_pipeline", train_command="python -m trainers.tiny")
    monkeypatch.setattr(registry, "ENTRIES", [*registry.ENTRIES, entry])
    return entry


def test_zoo_load_through_olah_hub(tmp_path, online, test_entry):
    folder, net = make_checkpoint(tmp_path / "src")
    git_repo_from_folder(folder, tmp_path, test_entry.repo_id)
    proc, url = start_olah(tmp_path)
    try:
        online(url)
        assert registry.source("tiny-test") == "hub"
        pipe = zoo.load("tiny-test", device="cpu")
        assert registry.source("tiny-test") == "cached"
    finally:
        proc.terminate()
        proc.wait(10)
    assert pipe["kwargs"] == {"device": "cpu"} and "models--zoo-test--tiny-entry" in str(pipe["folder"])
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), pipe["net"].state_dict().values()))


def test_load_is_cached(tmp_path, monkeypatch, test_entry):
    folder, _ = make_checkpoint(tmp_path / "bundled")
    monkeypatch.setattr(registry, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(registry, "ENTRIES", [dataclasses.replace(test_entry, bundled_path="bundled")])
    registry.clear_cache()
    assert registry.source("tiny-test") == "bundled"
    assert zoo.load("tiny-test") is zoo.load("tiny-test")
    assert zoo.load("tiny-test")["folder"] == folder
    assert zoo.load("tiny-test", extra=[1]) is not zoo.load("tiny-test", extra=[1])


def test_zoo_tab_lists_entries_and_cards(tmp_path, monkeypatch, test_entry):
    import gradio as gr
    from gradio_client import Client
    from PIL import Image

    from servers.olah_mirror import free_port
    from ui import zoo_tab

    make_checkpoint(tmp_path / "bundled", sample_image=Image.new("RGB", (6, 6), "red"))
    monkeypatch.setattr(registry, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(registry, "ENTRIES",
                        [*registry.ENTRIES[:-1], dataclasses.replace(test_entry, bundled_path="bundled")])
    rows = {r[0]: r for r in zoo_tab.table_rows()}
    assert rows["tiny-test"][2] == "bundled" and rows["mnist"][4].startswith("python -m trainers.pixels")
    text, image = zoo_tab.card_view("tiny-test")
    assert "python train.py" in text and "diffusion-zoo" in text and Image.open(image).size == (6, 6)
    missing, none = zoo_tab.card_view("toy-moons")
    assert none is None and ("Weights missing" in missing or registry.source("toy-moons") == "bundled")
    with gr.Blocks() as demo:
        with gr.Tab("Model zoo"):
            parts = zoo_tab.build_zoo_tab()
    assert {c.elem_id for c in parts.components.values()} == {
        "zoo-table", "zoo-refresh", "zoo-model", "zoo-card", "zoo-samples", "zoo-repo", "zoo-open", "zoo-open-status"}
    demo.queue().launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        card_md, _ = client.predict("tiny-test", api_name="/zoo_card")
        assert "python train.py" in card_md
    finally:
        demo.close()
