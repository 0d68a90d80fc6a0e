"""Model cards: Hub model-card metadata (ModelCardData) plus how a checkpoint was trained."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

CARD_NAME = "README.md"
LIBRARY_NAME = "diffusion-zoo"

_CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

{{ description }}

{% if sample_image %}![samples]({{ sample_image }})

{% endif %}## Training

- **command**: `{{ train_command }}`
- **steps**: {{ steps }}
- **data**: {{ data }}
- **final loss**: {{ final_loss }}
- **wall time**: {{ wall_time }}

Weights are the EMA of the training weights, stored as `model.safetensors`; the
architecture and diffusion settings are in `config.json`. Load with
`zoo.hub.load_checkpoint(folder)` from the diffusion model zoo.
"""


@dataclass
class CardInfo:
    """What the model card says beyond config.json (Hub model card metadata + training facts)."""

    title: str = "Diffusion zoo model"
    description: str = ""
    pipeline_tag: str | None = None  # unconditional-image-generation | text-to-image | None for 2D toys
    tags: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    license: str = "mit"
    train_command: str = ""
    steps: int | None = None
    data: str = ""
    final_loss: float | None = None
    wall_time_s: float | None = None


def make_card(card: CardInfo, sample_image: str | None = None) -> ModelCard:
    """Render a Hub model card (YAML front matter via ModelCardData) for `card`."""
    data = ModelCardData(
        library_name=LIBRARY_NAME,
        license=card.license,
        pipeline_tag=card.pipeline_tag,
        tags=sorted({"diffusion", LIBRARY_NAME, *card.tags}),
        datasets=list(card.datasets) or None,
    )
    return ModelCard.from_template(
        data,
        template_str=_CARD_TEMPLATE,
        title=card.title,
        description=card.description,
        sample_image=sample_image,
        train_command=card.train_command or "n/a",
        steps=card.steps if card.steps is not None else "n/a",
        data=card.data or "n/a",
        final_loss=f"{card.final_loss:.5g}" if card.final_loss is not None else "n/a",
        wall_time=f"{card.wall_time_s:.1f} s" if card.wall_time_s is not None else "n/a",
    )


def read_card(folder) -> ModelCard | None:
    """The model card of a checkpoint folder, or None when it has none."""
    path = Path(folder) / CARD_NAME
    return ModelCard.load(path) if path.is_file() else None
