"""The "Model zoo" view: every registry entry, where its weights are, its model card.

Layout and wiring only; the facts come from zoo.registry (entries, sources) and zoo.hub
(model cards). Call `build_zoo_tab()` inside an open gr.Blocks / gr.Tab context.
"""
from __future__ import annotations

import re

import gradio as gr

from zoo import hub, registry

COLUMNS = ["name", "task", "source", "Hub repo", "train command"]
_SOURCE_NOTE = {
    "bundled": "weights bundled in this repository",
    "cached": "weights in the local Hugging Face cache",
    "hub": "weights on the Hugging Face Hub (downloaded on first use)",
    "missing": "weights missing",
}


def table_rows() -> list[list[str]]:
    """One row per entry; source() never downloads and probes the Hub at most briefly."""
    return [[e.name, e.task, registry.source(e.name), e.repo_id or "", e.train_command] for e in registry.list_models()]


def _metadata_line(card) -> str:
    data = card.data.to_dict()
    facts = [f"**{k}**: {', '.join(v) if isinstance(v, list) else v}"
             for k, v in data.items() if k in ("pipeline_tag", "datasets", "license", "library_name", "tags") and v]
    return " · ".join(facts)


def card_view(name: str):
    """(markdown, PIL sample grid or None) for entry `name`."""
    if not name:
        return "Pick a model.", None
    entry = registry.get_entry(name)
    folder, source = hub.locate(entry.repo_id, entry.bundled_folder)
    header = f"### {entry.name}\n\n{entry.description}\n\n*{_SOURCE_NOTE[source]}*"
    if folder is None:
        how = f"Train with `{entry.train_command}`"
        if source == "missing" and entry.repo_id:
            how += f", or go online to download [{entry.repo_id}](https://huggingface.co/{entry.repo_id})"
        return f"{header}\n\n**Weights missing.** {how}.", None
    card = hub.read_card(folder)
    if card is None:
        return f"{header}\n\n(no model card in `{folder}`)", None
    body = re.sub(r"!\[[^\]]*\]\([^)]*\)\n?", "", card.text)  # the grid is shown beside, not as a broken link
    return f"{header}\n\n{_metadata_line(card)}\n\n{body}", _samples(folder)


def _samples(folder):
    path = folder / hub.SAMPLES_NAME
    if not path.is_file():
        return None
    from PIL import Image

    with Image.open(path) as image:
        return image.copy()  # a PIL image: no file-path allow-listing needed for the HF cache


def build_zoo_tab() -> dict:
    """Create the zoo view in the current Blocks context; returns its components by name."""
    names = [e.name for e in registry.list_models()]
    gr.Markdown("## Model zoo\nEvery model, where its weights come from (bundled / cached / Hub / missing), "
                "its model card and the command that trains it.", elem_id="zoo-intro")
    table = gr.Dataframe(value=table_rows(), headers=COLUMNS, interactive=False, wrap=True, elem_id="zoo-table")
    refresh = gr.Button("Refresh sources", elem_id="zoo-refresh", size="sm")
    first = names[0] if names else None
    text, image = card_view(first)
    with gr.Row():
        with gr.Column(scale=3):
            choice = gr.Dropdown(names, value=first, label="Model", elem_id="zoo-model")
            card = gr.Markdown(text, elem_id="zoo-card")
        with gr.Column(scale=2):
            samples = gr.Image(value=image, label="Samples", type="pil", interactive=False, elem_id="zoo-samples")
    choice.change(card_view, inputs=choice, outputs=[card, samples], api_name="zoo_card")
    refresh.click(table_rows, outputs=table, api_name="zoo_table")
    return {"table": table, "refresh": refresh, "choice": choice, "card": card, "samples": samples}
