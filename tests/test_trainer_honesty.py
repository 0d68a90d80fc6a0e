"""Untrusted checkpoints leak nothing, training state is honest (trainers/common.py):
published files, run folders and output hold no local path above the run or working
directory and never the HF token; --resume refuses flags that change the run, with one
message, and accepts those that may change; temp folders of killed writes go at the next start."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from servers.fixtures import online  # noqa: F401
from servers.hub_server import start_fake_hub
from trainers.common import public_command, public_path
from trainers.resume import RunChanged

ROOT = Path(__file__).resolve().parent.parent
CANARY = "hf_canary_Zq81vNl0teMustNeverLeak"
TOY = ["--steps", "4", "--hidden", "16", "--depth", "1", "--batch-size", "32", "--ckpt-every", "4",
       "--lr-decay", "none"]  # no decay: where the lr schedule ends does not change the first steps


def files_under(*folders: Path) -> dict:
    return {p: p.read_bytes() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_private(secrets: list, named_bytes: dict) -> None:
    for name, data in named_bytes.items():
        for secret in secrets:
            assert secret.encode() not in data, f"{secret!r} leaked into {name}"


def write_parquet(path: Path, n=8, size=28):
    """n labelled grayscale images of size x size as a parquet data set (zoo.data.images reads it)."""
    import datasets

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)) for _ in range(n)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=2)})
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict({"image": images, "label": [i % 2 for i in range(n)]}, features=features).to_parquet(
        str(path))


def test_public_path_keeps_only_what_is_inside_the_run_or_working_directory(tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    run = tmp_path / "runs" / "run"
    assert public_path(cwd / "data" / "x.parquet", run) == "data/x.parquet"  # inside cwd: runs from there
    assert public_path(run / "release", run) == "run/release"
    assert public_path(tmp_path / "elsewhere" / "x.parquet", run) == "x.parquet"
    assert public_path("~/secret/images", run) == "images" and public_path("../up/y.parquet") == "y.parquet"
    for name in ("mnist-offline", "USER/toy2d-moons", "https://host/a/b", "7"):
        assert public_path(name, run) == name
    monkeypatch.setenv("HF_TOKEN", CANARY)
    command = public_command(f"python /opt/x/train.py --out={run} --release {tmp_path}/r --note {CANARY}", run)
    assert command == "python train.py --out=run --release r --note '<hf-token>'"


def test_nothing_private_leaks_on_push(tmp_path, online, monkeypatch, capfd):  # noqa: F811
    from trainers.pixels import main

    cwd, run, release = tmp_path / "cwd", tmp_path / "runs" / "run", tmp_path / "releases" / "pixels-tiny"
    write_parquet(cwd / "data" / "train.parquet")
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HF_TOKEN", CANARY)
    fake, server, url = start_fake_hub()
    online(url)
    argv = ["--dataset", str(cwd / "data" / "train.parquet"), "--base-channels", "8", "--num-res-blocks", "1",
            "--attn-resolutions", "", "--steps", "2", "--batch-size", "4", "--warmup", "0", "--ckpt-every", "2",
            "--out", str(run), "--release", str(release), "--push-to-hub", "zoo-test/leak"]
    try:
        main(argv)
    finally:
        server.shutdown()
        server.server_close()  # a later push fails at once instead of waiting on a dead server
    pushed = fake.repos[("model", "zoo-test/leak")]["files"]
    output = capfd.readouterr()
    secrets = [CANARY, str(tmp_path), str(Path.home()), str(cwd), str(ROOT)]
    assert_private(secrets, {**pushed, **files_under(run, release), "stdout": output.out.encode(),
                             "stderr": output.err.encode()})
    card, config = pushed["README.md"].decode(), json.loads(pushed["config.json"])
    assert "--dataset data/train.parquet" in card and "--out run --release pixels-tiny" in card
    assert "DDPM UNet on data/train.parquet" in card and config["data"]["dataset"] == "data/train.parquet"
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    assert state["run"]["dataset"]["path"] == "data/train.parquet" and "released pixels-tiny" in output.out
    api = [auth for _, path, auth in fake.requests if "/api/" in path]
    assert api and all(auth == f"Bearer {CANARY}" for auth in api)  # the push still authenticated
    # the same name from another working directory is another file: refused, and still private
    write_parquet(tmp_path / "cwd2" / "data" / "train.parquet", n=4)
    monkeypatch.chdir(tmp_path / "cwd2")
    with pytest.raises(RunChanged) as refused:
        main([*argv[:1], "data/train.parquet", *argv[2:-2], "--resume"])
    message = str(refused.value)
    assert "--dataset: data/train.parquet -> data/train.parquet (another file)" in message
    assert str(tmp_path) not in message


def test_a_push_error_never_shows_the_token(tmp_path, monkeypatch, capfd):
    from servers import tiny_train
    from zoo import hub

    def rejecting_push(folder, repo_id, token=None):
        raise OSError(f"401 Unauthorized: Authorization: Bearer {CANARY}")

    monkeypatch.setenv("HF_TOKEN", CANARY)
    monkeypatch.setattr(hub, "push_folder", rejecting_push)
    with pytest.raises(RuntimeError) as failed:
        tiny_train.main(["--out", str(tmp_path / "run"), "--steps", "2", "--ckpt-every", "2", "--push-to-hub",
                         "zoo-test/x"])
    assert CANARY not in str(failed.value) and "<hf-token>" in str(failed.value)
    assert failed.value.__cause__ is None and failed.value.__suppress_context__  # no chained original
    assert CANARY not in "".join(capfd.readouterr())


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A finished 4-step toy2d run (moons, eps objective, seed 0, --hidden 16) to resume."""
    from trainers.toy2d import main

    out = tmp_path_factory.mktemp("toy") / "run"
    main([*TOY, "--out", str(out)])
    return out


@pytest.mark.parametrize("change, lines", [
    (["--seed", "1"], ["--seed: 0 -> 1"]),
    (["--dataset", "gmm"], ["--dataset: moons -> gmm"]),
    (["--hidden", "32"], ["--hidden: 16 -> 32"]),
    (["--objective", "v"], ["--objective: eps -> v"]),
    (["--seed", "2", "--depth", "2", "--lr", "0.01", "--steps", "8"], ["--depth: 1 -> 2", "--lr: 0.003 -> 0.01",
                                                                       "--seed: 0 -> 2"]),
])
def test_resume_refuses_flags_that_change_the_run(toy_run, change, lines):
    from trainers.toy2d import main

    before = files_under(toy_run)
    with pytest.raises(RunChanged) as refused:
        main([*TOY, "--out", str(toy_run), *change, "--resume"])
    message = str(refused.value)
    assert message.startswith("--resume refused: the checkpoint in ") and "another --out" in message
    assert [line.strip() for line in message.splitlines() if " -> " in line] == lines  # each change, nothing else
    assert files_under(toy_run) == before  # refused before anything was loaded or written


def test_changed_net_size_exits_with_the_message_not_a_traceback(toy_run):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "trainers.toy2d", *TOY, "--out", str(toy_run), "--hidden", "32",
                           "--resume"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "--hidden: 16 -> 32" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_resume_at_the_checkpoints_step_finalises_the_release_and_past_it_is_refused(toy_run, tmp_path):
    """Stopping a run early: --resume with --steps equal to the checkpoint's step writes the
    final release (the card lists both commands); --steps below it is refused, nothing written."""
    import shutil

    from trainers.toy2d import main

    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    before = files_under(run)
    with pytest.raises(RunChanged, match="is at step 4, past --steps 2"):
        main([*TOY[:1], "2", *TOY[2:], "--out", str(run), "--resume"])
    assert files_under(run) == before
    main([*TOY, "--out", str(run), "--resume"])
    card = (run / "release" / "README.md").read_text()
    assert card.count("python -m trainers.toy2d") == 2 and "**steps**: 4" in card


def test_resume_with_more_steps_and_a_push_equals_an_uninterrupted_run(tmp_path, online, capfd):  # noqa: F811
    from safetensors.torch import load, load_file

    from trainers.toy2d import main

    plain = [*TOY[:1], "8", *TOY[2:]]
    main([*plain, "--out", str(tmp_path / "plain")])
    main([*TOY, "--out", str(tmp_path / "split")])
    fake, server, url = start_fake_hub()
    online(url)
    try:
        main([*plain, "--out", str(tmp_path / "split"), "--log-every", "2", "--push-to-hub", "zoo-test/resumed",
              "--resume"])
    finally:
        server.shutdown()
        server.server_close()  # a later push fails at once instead of waiting on a dead server
    assert "resumed from split/checkpoint at step 4" in capfd.readouterr().out
    for name in ("checkpoint/model.safetensors", "checkpoint/ema.safetensors", "checkpoint/optimizer.safetensors",
                 "release/model.safetensors"):
        a, b = load_file(str(tmp_path / "plain" / name)), load_file(str(tmp_path / "split" / name))
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a), name
    pushed = fake.repos[("model", "zoo-test/resumed")]["files"]
    released = load_file(str(tmp_path / "plain" / "release" / "model.safetensors"))
    assert all((load(pushed["model.safetensors"])[k] == v).all() for k, v in released.items())
    card = pushed["README.md"].decode()
    assert "--steps 4" in card and "&& python -m trainers.toy2d --steps 8" in card and "**steps**: 8" in card


def test_a_checkpoint_without_recorded_flags_resumes_with_a_note(tmp_path, capfd):
    from servers import tiny_train

    tiny_train.main(["--out", str(tmp_path), "--steps", "2", "--ckpt-every", "2"])
    state_file = tmp_path / "checkpoint" / "state.json"
    state = json.loads(state_file.read_text())
    del state["run"]  # as written before run flags were recorded
    state_file.write_text(json.dumps(state))
    capfd.readouterr()
    result = tiny_train.main(["--out", str(tmp_path), "--steps", "4", "--ckpt-every", "2", "--seed", "5", "--resume"])
    notes = [line for line in capfd.readouterr().out.splitlines() if line.startswith("note:")]
    assert result.step == 4 and len(notes) == 1 and "predates recorded run flags" in notes[0]
    assert json.loads(state_file.read_text())["run"]["seed"] == 5  # recorded from now on


def test_temp_folders_of_killed_writes_go_at_the_next_start(tmp_path, capfd):
    from servers import tiny_train

    dead = subprocess.Popen(["true"])
    dead.wait()
    live = subprocess.Popen(["sleep", "60"])
    try:
        run, release = tmp_path / "run", tmp_path / "rel"
        orphans = [run / f".checkpoint.tmp-{dead.pid}-0a1b2c3d", tmp_path / f".rel.tmp-{dead.pid}-4e5f6a7b",
                   run / ".checkpoint.tmp"]
        writing = [run / f".checkpoint.tmp-{live.pid}-8c9d0e1f", tmp_path / f".rel.tmp-{live.pid}-2a3b4c5d"]
        for folder in orphans + writing:
            folder.mkdir(parents=True)
            (folder / "model.safetensors").write_bytes(b"half written")
        release.mkdir()
        (release / f".config.json.tmp-{dead.pid}-6e7f8a9b").write_text("{")  # inside: a push would upload it
        tiny_train.main(["--out", str(run), "--release", str(release), "--steps", "2", "--ckpt-every", "2"])
    finally:
        live.kill()
        live.wait()
    assert not any(p.exists() for p in orphans) and all(p.is_dir() for p in writing)
    assert f".config.json.tmp-{dead.pid}-6e7f8a9b" in capfd.readouterr().out  # removed at start, not just replaced
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == [w.name for w in writing[:1]]
