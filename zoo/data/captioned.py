"""The captioned data sets the text-to-image trainers know, each with what a trainer or a
benchmark needs of it: images with captions, its words, fresh evaluation captions and
a judge that scores images against prompts from their pixels.

    data = CAPTIONED["scenes"]
    images, captions = data.load(20_000, seed=0)
    data.score(images_uint8, prompts)        # -> {name: share}, "overall" among them
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from zoo.data import scene_judge, scenes, shapes


# words whose mirror image makes a caption false for its image: a relation inverted ("to the
# left of" -> "to the right of"), a place mirrored ("in the top left" -> "in the top right")
MIRROR = {"left": "right", "right": "left", "above": "below", "below": "above"}


def mirrored(caption: str) -> str | None:
    """The caption with its direction words mirrored, a hard negative for the caption-
    contrast loss (zoo.diffusion.caption_contrast); None when it has none. False for the
    caption's image in both data sets' grammars: a relation holds by more than a margin, so
    its inverse cannot, and a named place is exact."""
    words = caption.split(" ")
    flipped = [MIRROR.get(word, word) for word in words]
    return " ".join(flipped) if flipped != words else None


@dataclass(frozen=True)
class Captioned:
    name: str
    image_size: int
    load: Callable          # (n, seed) -> (ImageData, captions)
    vocabulary: Callable    # () -> words of the captions
    captions: Callable      # (n, seed) -> n fresh captions drawn as in training
    score: Callable         # (uint8 images, prompts) -> {name: share}, with "overall"
    description: str
    negative: Callable = mirrored  # caption -> a hard negative or None (zoo.diffusion.caption_contrast)


def _shapes_score(images, prompts) -> dict:
    scores = shapes.judge(images, prompts)
    return {**scores, "overall": scores["all"]}


def _scenes_score(images, prompts) -> dict:
    result = scene_judge.judge(images, prompts)
    return {**result["by_category"], "overall": result["overall"]}


def _scenes_negative(caption: str) -> str | None:
    """mirrored, except where the mirror is as true ("a triangle above a triangle": the two
    objects are described alike) or a held-out relation phrasing ("a circle below a square" ->
    "a circle above a square": held-out text never enters training, even as a negative)."""
    negative = mirrored(caption)
    spec = scene_judge.parse_prompt(caption)
    alike = spec is not None and spec.relation is not None and spec.objects[0] == spec.objects[1]
    return None if negative is None or alike or scene_judge.held_out(negative) else negative


CAPTIONED = {
    "shapes": Captioned("shapes", shapes.IMAGE_SIZE, shapes.load_shapes, shapes.vocabulary,
                        lambda n, seed: [c for _, c in shapes.sample_shapes(n, seed)], _shapes_score,
                        "one coloured shape on a 32x32 canvas (zoo.data.shapes)"),
    "scenes": Captioned("scenes", scenes.IMAGE_SIZE, scenes.load_scenes, scenes.vocabulary,
                        lambda n, seed: [c for _, _, c in scenes.sample_scenes(n, seed)], _scenes_score,
                        "1 to 4 coloured shapes on a 48x48 canvas, GenEval's six categories (zoo.data.scenes)",
                        _scenes_negative),
}


def captioned(name: str) -> Captioned:
    if name not in CAPTIONED:
        raise ValueError(f"unknown captioned data set {name!r}; one of {', '.join(CAPTIONED)}")
    return CAPTIONED[name]
