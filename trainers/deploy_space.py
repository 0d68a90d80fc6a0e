"""Deploy the app to a Hugging Face Space.

    python -m trainers.deploy_space --dry-run build/space         # render locally, no network
    python -m trainers.deploy_space --repo-id USER/diffusion-zoo  # create (if needed) and upload

The Space's README.md front matter is rendered from spaces.yaml with huggingface_hub's
SpaceCard / SpaceCardData (https://huggingface.co/docs/hub/spaces-config-reference);
`preload_models` (zoo entry names) becomes `models` + `preload_from_hub` (their Hub repos,
downloaded into the Space's cache at build time, where zoo.hub.resolve finds them).
The app files are selected with allow/ignore patterns (huggingface_hub.utils.
filter_repo_objects): code, bundled weights and requirements; never tests, caches or venvs.
The token comes from HF_TOKEN or the saved login and is never printed.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import yaml
from huggingface_hub import HfApi, SpaceCard, SpaceCardData, SpaceHardware
from huggingface_hub.utils import filter_repo_objects

from zoo import hub, registry

ROOT = Path(__file__).resolve().parent.parent
ALLOW_PATTERNS = ["app.py", "requirements.txt", "zoo/**", "ui/**", "trainers/**", "weights/**"]
IGNORE_PATTERNS = ["**/__pycache__/**", "*.pyc", "**/*.pyc", ".venv/**", "tests/**", "**/.cache/**", ".git/**",
                   "runs/**", "**/.ipynb_checkpoints/**", "**/*.tmp-*/**", "**/.*.tmp-*/**", "**/*.old/**"]
REQUIRED = ("title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "app_file", "python_version",
            "license", "short_description")
COLORS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
CARD_FIELDS = ("title", "sdk", "sdk_version", "python_version", "app_file", "license", "tags")  # SpaceCardData args


def load_space_config(path=ROOT / "spaces.yaml") -> dict:
    """spaces.yaml, checked against the values the Hub accepts."""
    config = yaml.safe_load(Path(path).read_text())
    missing = [k for k in REQUIRED if not config.get(k)]
    if missing:
        raise ValueError(f"{path}: missing {missing}")
    if config["sdk"] != "gradio":
        raise ValueError(f"{path}: sdk must be gradio for this app")
    if {config["colorFrom"], config["colorTo"]} - COLORS:
        raise ValueError(f"{path}: colorFrom/colorTo must be among {sorted(COLORS)}")
    if len(config["short_description"]) > 60:
        raise ValueError(f"{path}: short_description is limited to 60 characters by the Hub")
    hardware = config.get("suggested_hardware")
    if hardware and hardware not in {h.value for h in SpaceHardware}:
        raise ValueError(f"{path}: suggested_hardware {hardware!r} is not a Hub hardware flavour")
    for name in config.get("preload_models") or []:
        registry.get_entry(name)  # ValueError naming the allowed names
    return config


def front_matter(config: dict) -> SpaceCardData:
    """The README YAML: Hub Space fields, with preload_models mapped to Hub repo ids."""
    repos = [registry.get_entry(n).repo_id for n in config.get("preload_models") or []]
    repos = [r for r in repos if r]
    extra = {k: v for k, v in config.items() if k not in CARD_FIELDS and k != "preload_models"}
    if repos:
        extra["preload_from_hub"] = list(repos)  # a copy: a shared list would become a YAML anchor
    return SpaceCardData(**{k: config.get(k) for k in CARD_FIELDS}, models=list(repos) or None, **extra)


def render_readme(config: dict) -> str:
    """README.md of the Space: front matter + a short description of the zoo."""
    lines = [f"# {config['title']}", "", config["short_description"], "", "| model | task | weights |",
             "|---|---|---|"]
    for entry in registry.list_models():
        where = "bundled" if entry.bundled_path else f"[{entry.repo_id}](https://huggingface.co/{entry.repo_id})"
        lines.append(f"| {entry.name} | {entry.task} | {where} |")
    body = "\n".join(lines) + "\n"
    return str(SpaceCard(f"---\n{front_matter(config).to_yaml()}\n---\n\n{body}"))


def app_files(root=ROOT) -> list[str]:
    """Relative paths (posix) of the files that go into the Space."""
    paths = sorted(p.relative_to(root).as_posix() for p in Path(root).rglob("*") if p.is_file())
    return list(filter_repo_objects(paths, allow_patterns=ALLOW_PATTERNS, ignore_patterns=IGNORE_PATTERNS))


def render_space(out, config: dict, root=ROOT) -> Path:
    """Write the Space folder (app files + rendered README.md) to `out`, replacing it."""
    out = Path(out)
    tmp = hub.temp_sibling(out)
    for rel in app_files(root):
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(root) / rel, tmp / rel)
    (tmp / "README.md").write_text(render_readme(config))
    hub.replace_dir(tmp, out)
    return out


def deploy(repo_id: str, config: dict, token: str | None = None, private: bool | None = None, root=ROOT) -> str:
    """Create the Space (gradio SDK) if needed and upload the rendered folder; returns the commit URL."""
    api = HfApi(endpoint=hub.hub_endpoint(), token=token)
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", exist_ok=True, private=private)
    with tempfile.TemporaryDirectory() as tmp:
        folder = render_space(Path(tmp) / "space", config, root=root)
        info = api.upload_folder(repo_id=repo_id, repo_type="space", folder_path=str(folder),
                                 ignore_patterns=IGNORE_PATTERNS, commit_message="Deploy diffusion zoo app")
    return info.commit_url


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "spaces.yaml"))
    parser.add_argument("--repo-id", help="USER/SPACE to create / update")
    parser.add_argument("--private", action="store_true", default=None)
    parser.add_argument("--dry-run", metavar="OUT", help="only render the Space folder into OUT")
    args = parser.parse_args(argv)
    config = load_space_config(args.config)
    if args.dry_run:
        print(f"rendered {render_space(args.dry_run, config)}")
    elif args.repo_id:
        print(f"deployed: {deploy(args.repo_id, config, private=args.private)}")
    else:
        parser.error("give --repo-id or --dry-run OUT")


if __name__ == "__main__":
    main()
