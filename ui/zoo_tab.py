"""The "Model zoo" view: every registry entry, where its weights are, its model card; and
"Open a Hub repo": any repo id of a supported kind becomes a model of the matching tab
for this browser session.

Layout and wiring only; the facts come from zoo.registry (entries, sources, repo kinds)
and zoo.hub (model cards). Call `build_zoo_tab(targets)` inside an open gr.Blocks / gr.Tab.
"""
from __future__ import annotations

import functools
import re

import gradio as gr

import zoo
from ui import inputs
from ui.errors import USER_ERRORS, friendly
from ui.image_widgets import on_screen, upscaled
from ui.tab_parts import TabParts
from zoo import hub, registry
from zoo.gpu import gpu
from zoo.pipelines.pixels import grid_image

COLUMNS = ["name", "task", "source", "Hub repo", "train command"]
_SOURCE_NOTE = {
    "bundled": "weights bundled in this repository",
    "cached": "weights in the local Hugging Face cache",
    "hub": "weights on the Hugging Face Hub (downloaded on first use)",
    "missing": "weights missing",
}
PREVIEW = dict(n=8, steps=10, solver="dpmpp_2m")  # a quick grid for a repo that ships no samples.png
PREVIEW_MAX_PIXELS = 64 * 64  # larger images take minutes on a CPU: sample those in their tab
EXAMPLE_REPO = "google/ddpm-cifar10-32"


def table_rows() -> list[list[str]]:
    """One row per entry; source() never downloads and probes the Hub at most briefly."""
    return [[e.name, e.task, registry.source(e.name), e.repo_id or "", e.train_command] for e in registry.list_models()]


def _metadata_line(card) -> str:
    data = card.data.to_dict()
    facts = [f"**{k}**: {', '.join(v) if isinstance(v, list) else v}"
             for k, v in data.items() if k in ("pipeline_tag", "datasets", "license", "library_name", "tags") and v]
    return " · ".join(facts)


def _card_text(folder) -> str:
    card = hub.read_card(folder)
    if card is None:
        return f"(no model card in `{folder.name}`)"
    body = re.sub(r"!\[[^\]]*\]\([^)]*\)\n?", "", card.text)  # images are shown beside, not as broken links
    return f"{_metadata_line(card)}\n\n{body}"


def card_view(name: str):
    """(markdown, PIL sample grid or None) for a registry entry or an opened repo."""
    if not name:
        return "Pick a model.", None
    entry = registry.lookup(name)
    source = registry.source(name)
    header = f"### {entry.name}\n\n{entry.description} Task: **{entry.task}**.\n\n*{_SOURCE_NOTE[source]}*"
    if source in ("hub", "missing"):
        how = f"Train with `{entry.train_command}`" if entry.train_command else "Open it while online"
        if source == "missing" and entry.repo_id:
            how += f", or go online to download [{entry.repo_id}](https://huggingface.co/{entry.repo_id})"
        state = "Weights missing" if source == "missing" else "Weights not downloaded yet (they are on the Hub)"
        return f"{header}\n\n**{state}.** {how}.", None
    folder = registry.resolve(name)
    image = _samples(folder)
    if image is None and entry.task == "unconditional":
        image = preview_grid(name, registry.stamp(folder))
    return f"{header}\n\n{_card_text(folder)}", on_screen(image) if image is not None else None


def _samples(folder):
    path = folder / hub.SAMPLES_NAME
    if not path.is_file():
        return None
    from PIL import Image

    with Image.open(path) as image:
        return image.copy()  # a PIL image: no file-path allow-listing needed for the HF cache


@functools.lru_cache(maxsize=16)
@gpu(duration=60)
def preview_grid(name: str, stamp: int = 0):
    """A quick sample grid of an unconditional image model that ships none (cached per model
    and weights `stamp`), or None when it would take too long here (large images)."""
    pipe = zoo.load(name)
    channels, height, width = pipe.image_shape
    if height * width > PREVIEW_MAX_PIXELS:
        return None
    return upscaled(grid_image(pipe(**PREVIEW).images, nrow=4), 360)


def open_repo(text: str, opened: list, targets: list):
    """(status markdown, card markdown, samples, zoo dropdown, opened, *target updates). User
    errors (bad id, missing or private repo, pickles, too big, the Hub down) come back as a
    message in the tab: they are answers, not crashes, so the page keeps what it shows."""
    keep = [gr.skip()] * (4 + len(targets))  # card, samples, choice, opened and the targets stay
    ref = (text or "").strip()
    try:
        registry.parse_ref(ref)
        entry = registry.lookup(ref)
        text, image = card_view(ref)
    except USER_ERRORS as err:
        return (f"**Could not open `{ref[:200]}`**: {err}", *keep)
    opened = opened + [(ref, entry.task)] if (ref, entry.task) not in opened else opened
    names = [e.name for e in registry.list_models()] + [r for r, _ in opened]
    status = (f"Opened **{ref}** ({entry.task}). It is now a model of the "
              f"{_tab_of(entry.task)} for this browser session." if _tab_of(entry.task) else
              f"Opened **{ref}** ({entry.task}); no tab samples this kind of model, its card is below.")
    return (status, text, image, gr.update(choices=names, value=ref), opened, *[t.update(opened) for t in targets])


def _tab_of(task: str) -> str:
    return {"toy2d": "Toy 2D tab", "unconditional": "Unconditional and Guidance tabs",
            "class-conditional": "Guidance tab", "classifier": "Guidance tab (classifier)",
            "text-to-image": "Text to image tab"}.get(task, "")


def build_zoo_tab(targets: list | None = None) -> TabParts:
    """Create the zoo view in the current Blocks context; `targets` (ui.opened.Target) are
    the model choosers of other tabs that opened repos join. Its parts hold its components by name."""
    targets = targets or []
    names = [e.name for e in registry.list_models()]
    gr.Markdown("## Model zoo\nEvery model, where its weights come from (bundled / cached / Hub / missing), "
                "its model card and the command that trains it.", elem_id="zoo-intro")
    table = gr.Dataframe(value=table_rows(), headers=COLUMNS, interactive=False, wrap=True, elem_id="zoo-table")
    refresh = gr.Button("Refresh sources", elem_id="zoo-refresh", size="sm")
    with gr.Row():
        repo = gr.Textbox(label="Open a Hub repo", max_lines=1, max_length=200, elem_id="zoo-repo", scale=4,
                          placeholder=f"owner/name or owner/name@revision, e.g. {EXAMPLE_REPO}")
        open_btn = gr.Button("Open", variant="primary", elem_id="zoo-open", scale=1)
    status = gr.Markdown("Diffusion-zoo checkpoints (config.json + model.safetensors) and diffusers' DDPM UNets "
                         "(UNet2DModel, safetensors weights) open here.", elem_id="zoo-open-status")
    opened = gr.State([])
    first = names[0] if names else None
    text, image = card_view(first)
    with gr.Row():
        with gr.Column(scale=3):
            choice = inputs.Dropdown(names, value=first, label="Model", elem_id="zoo-model")
            card = gr.Markdown(text, elem_id="zoo-card")
        with gr.Column(scale=2):
            samples = gr.Image(value=image, label="Samples", type="pil", interactive=False, elem_id="zoo-samples")
    choice.change(friendly(card_view, status=0, outputs=2), inputs=choice, outputs=[card, samples], api_name="zoo_card")
    refresh.click(table_rows, outputs=table, api_name="zoo_table")
    outputs = [status, card, samples, choice, opened, *[t.component for t in targets]]
    opener = friendly(lambda text, state: open_repo(text, state, targets), status=0, outputs=len(outputs))
    open_btn.click(opener, [repo, opened], outputs, api_name="zoo_open", concurrency_id="zoo-open",
                   concurrency_limit=2)
    repo.submit(opener, [repo, opened], outputs, api_name=False, concurrency_id="zoo-open")  # Enter = Open
    return TabParts(components={"table": table, "refresh": refresh, "choice": choice, "card": card,
                                "samples": samples, "repo": repo, "open": open_btn, "status": status})
