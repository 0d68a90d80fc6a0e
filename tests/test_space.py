"""Space deployment (spaces.yaml -> README front matter, file selection, upload to a local
Hub server) and the ZeroGPU decorator."""
import re
import sys
import types

import pytest
import yaml
from huggingface_hub import SpaceHardware

from servers.fixtures import online  # noqa: F401
from servers.hub_server import start_fake_hub
from trainers import deploy_space
from zoo import gpu

HUB_FIELDS = {"title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "app_file", "python_version",
              "license", "short_description", "suggested_hardware"}


def parse_front_matter(text: str) -> dict:
    match = re.match(r"^---\n(.*?)\n---\n", text, flags=re.S)
    assert match, "README.md must start with a YAML block"
    return yaml.safe_load(match[1])


def test_front_matter_is_valid_hub_yaml():
    meta = parse_front_matter(deploy_space.render_readme(deploy_space.load_space_config()))
    assert HUB_FIELDS <= set(meta)
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == "6.31.0" and meta["python_version"] == "3.11"
    assert meta["app_file"] == "app.py" and meta["license"] == "mit" and len(meta["short_description"]) <= 60
    assert meta["suggested_hardware"] in {h.value for h in SpaceHardware}
    assert meta["preload_from_hub"] == meta["models"] == ["google/ddpm-cifar10-32"]
    assert "preload_models" not in meta and all(isinstance(v, (str, list, bool)) for v in meta.values())


def test_bad_config_rejected(tmp_path):
    config = yaml.safe_load((deploy_space.ROOT / "spaces.yaml").read_text())
    for key, value, msg in [("colorFrom", "teal", "colorFrom"), ("preload_models", ["nope"], "unknown zoo model"),
                            ("suggested_hardware", "h100x99", "hardware"), ("short_description", "x" * 61, "60")]:
        path = tmp_path / "spaces.yaml"
        path.write_text(yaml.safe_dump({**config, key: value}))
        with pytest.raises(ValueError, match=msg):
            deploy_space.load_space_config(path)


@pytest.fixture
def fake_root(tmp_path):
    """A repository-shaped folder with files that must and must not be deployed."""
    root = tmp_path / "repo"
    for rel in ["app.py", "requirements.txt", "zoo/a.py", "ui/b.py", "trainers/c.py", "weights/mnist/model.safetensors",
                "tests/test_x.py", ".venv/lib/x.py", "zoo/__pycache__/a.cpython-311.pyc", ".git/HEAD", "runs/r/log.csv",
                "notes.txt"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    return root


EXPECTED = {"README.md", "app.py", "requirements.txt", "zoo/a.py", "ui/b.py", "trainers/c.py",
            "weights/mnist/model.safetensors"}


def test_dry_run_renders_only_app_files(tmp_path, fake_root):
    out = deploy_space.render_space(tmp_path / "space", deploy_space.load_space_config(), root=fake_root)
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert files == EXPECTED
    assert parse_front_matter((out / "README.md").read_text())["title"] == "Diffusion Model Zoo"


def test_cli_dry_run_on_this_repo(tmp_path):
    deploy_space.main(["--dry-run", str(tmp_path / "space")])
    files = {p.relative_to(tmp_path / "space").as_posix() for p in (tmp_path / "space").rglob("*") if p.is_file()}
    assert "zoo/hub/checkpoint.py" in files and "README.md" in files and "requirements.txt" in files
    assert not any(f.startswith(("tests/", ".venv/")) or "__pycache__" in f for f in files)


def test_deploy_to_local_hub(fake_root, online):
    fake, server, url = start_fake_hub()
    online(url)
    try:
        deploy_space.deploy("zoo-test/space", deploy_space.load_space_config(), root=fake_root)
    finally:
        server.shutdown()
    assert fake.created[0]["type"] == "space" and fake.created[0]["sdk"] == "gradio"
    files = fake.repos[("space", "zoo-test/space")]["files"]
    assert set(files) == EXPECTED
    assert parse_front_matter(files["README.md"].decode())["sdk"] == "gradio"


def test_gpu_decorator_plain_off_space(monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)

    def f(x):
        return x + 1

    assert gpu.gpu(f) is f and gpu.gpu(duration=5)(f) is f and gpu.device().type in ("cpu", "cuda")


def test_gpu_decorator_uses_spaces_on_a_space(monkeypatch):
    calls = []
    fake = types.ModuleType("spaces")

    def GPU(duration=60):  # mirrors spaces.GPU
        def wrap(fn):
            calls.append(duration)
            return lambda *a: ("on-gpu", fn(*a))
        return wrap

    fake.GPU = GPU
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setenv("SPACE_ID", "user/zoo")
    assert gpu.gpu(lambda x: x * 2)(3) == ("on-gpu", 6)
    assert gpu.gpu(duration=120)(lambda: 1)() == ("on-gpu", 1) and calls == [60, 120]
