"""trainers/common.py: exact resume after SIGKILL, a real 2-process accelerate run, and
--push-to-hub against a local Hub server (then downloaded back and compared), gradient
accumulation + bf16 autocast + warm-up, and repeated in-process runs."""
import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard, snapshot_download
from safetensors.torch import load_file

from servers.fixtures import online, tiny_arch  # noqa: F401
from servers.hub_server import start_fake_hub
from servers.olah_mirror import free_port
from zoo import hub

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "servers" / "tiny_train.py"
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}", "OMP_NUM_THREADS": "1"}


def run(out, *args, delay=0.0):
    cmd = [sys.executable, str(SCRIPT), "--out", str(out), "--steps", "24", "--ckpt-every", "8", *args]
    if delay:
        cmd += ["--step-delay", str(delay)]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def same_files(a: Path, b: Path, name: str):
    ta, tb = load_file(str(a / name)), load_file(str(b / name))
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), f"{name}:{k} differs"


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    plain = run(tmp_path / "plain")
    killed = run(tmp_path / "killed", delay=0.08)
    state = tmp_path / "killed" / "checkpoint" / "state.json"
    deadline = time.monotonic() + 40
    while not state.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait(10)
    assert killed.returncode == -signal.SIGKILL, "the run must be killed mid-way"
    out, _ = plain.communicate(timeout=60)
    assert plain.returncode == 0, out
    resumed = run(tmp_path / "killed", "--resume", delay=0.08)  # --step-delay defines the run: keep it
    log, _ = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, log
    resumed_at = int(re.search(r"resumed from .* at step (\d+)", log)[1])
    assert resumed_at in (8, 16) and "done step=24" in log  # the step count continues
    for name in ("model.safetensors", "ema.safetensors", "optimizer.safetensors"):
        same_files(tmp_path / "plain" / "checkpoint", tmp_path / "killed" / "checkpoint", name)
    same_files(tmp_path / "plain" / "release", tmp_path / "killed" / "release", "model.safetensors")
    with (tmp_path / "killed" / "log.csv").open() as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == sorted(set(steps)) and steps[-1] == 24


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes(tmp_path, tiny_arch):
    # accelerate 1.15's `launch --cpu --num_processes 2` starts ONE process (multi-CPU needs
    # mpirun there); `--multi_gpu` goes through torchrun, and on a machine without a GPU the
    # loop's Accelerator(cpu=True) turns that into real 2-process gloo training.
    cmd = [str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
           str(free_port()), str(SCRIPT), "--out", str(tmp_path), "--steps", "4", "--ckpt-every", "2"]
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ckpt = tmp_path / "checkpoint"
    assert (ckpt / "rng_0.safetensors").is_file() and (ckpt / "rng_1.safetensors").is_file()
    net, config = hub.load_checkpoint(tmp_path / "release")
    assert config["training"]["num_processes"] == 2 and config["training"]["steps"] == 4
    assert proc.stdout.count("done step=4") == 2


def test_push_to_hub_round_trip(tmp_path, online, monkeypatch, capsys):
    from servers import tiny_train

    fake, server, url = start_fake_hub()
    online(url)
    monkeypatch.setenv("HF_TOKEN", "hf_test_secret_token_123")
    try:
        tiny_train.main(["--out", str(tmp_path / "run"), "--steps", "4", "--ckpt-every", "2",
                               "--push-to-hub", "zoo-test/pushed"])
        pushed = Path(snapshot_download("zoo-test/pushed", endpoint=url, cache_dir=tmp_path / "cache"))
    finally:
        server.shutdown()
    release = tmp_path / "run" / "release"
    assert sorted(p.name for p in pushed.iterdir()) == sorted(p.name for p in release.iterdir())
    for f in release.iterdir():
        assert (pushed / f.name).read_bytes() == f.read_bytes(), f.name
    card = ModelCard.load(pushed / "README.md")
    assert card.data.library_name == "diffusion-zoo" and card.data.license == "mit"
    assert "toy2d" in card.data.tags and card.data.datasets == ["ring"]
    assert "--push-to-hub zoo-test/pushed" in card.text and "**steps**: 4" in card.text
    assert all(auth == "Bearer hf_test_secret_token_123" for _, path, auth in fake.requests if "/api/" in path)
    assert fake.validated and fake.created[0]["name"] == "pushed"  # card YAML checked, repo created
    captured = capsys.readouterr()
    assert "hf_test_secret_token_123" not in captured.out + captured.err
    assert "hf_test_secret_token_123" not in (tmp_path / "run" / "log.csv").read_text()



def test_grad_accum_bf16_warmup_then_rerun_in_process(tmp_path, tiny_arch):
    from servers import tiny_train

    first = tiny_train.main(["--out", str(tmp_path / "a"), "--steps", "4", "--ckpt-every", "4", "--grad-accum", "2",
                             "--mixed-precision", "bf16", "--warmup", "3"])
    with (tmp_path / "a" / "log.csv").open() as f:
        lrs = [float(r["lr"]) for r in csv.DictReader(f)]
    assert first.step == 4 and lrs == [pytest.approx(0.01 * 2 / 3), 0.01]  # log at steps 2 and 4
    _, config = hub.load_checkpoint(first.release_dir)
    assert config["training"]["grad_accum"] == 2 and config["training"]["mixed_precision"] == "bf16"
    second = tiny_train.main(["--out", str(tmp_path / "b"), "--steps", "2", "--ckpt-every", "2"])
    assert second.step == 2 and second.final_loss == second.final_loss  # a second in-process run works (not NaN)
