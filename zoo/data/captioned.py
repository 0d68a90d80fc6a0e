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


@dataclass(frozen=True)
class Captioned:
    name: str
    image_size: int
    load: Callable          # (n, seed) -> (ImageData, captions)
    vocabulary: Callable    # () -> words of the captions
    captions: Callable      # (n, seed) -> n fresh captions drawn as in training
    score: Callable         # (uint8 images, prompts) -> {name: share}, with "overall"
    description: str


def _shapes_score(images, prompts) -> dict:
    scores = shapes.judge(images, prompts)
    return {**scores, "overall": scores["all"]}


def _scenes_score(images, prompts) -> dict:
    result = scene_judge.judge(images, prompts)
    return {**result["by_category"], "overall": result["overall"]}


CAPTIONED = {
    "shapes": Captioned("shapes", shapes.IMAGE_SIZE, shapes.load_shapes, shapes.vocabulary,
                        lambda n, seed: [c for _, c in shapes.sample_shapes(n, seed)], _shapes_score,
                        "one coloured shape on a 32x32 canvas (zoo.data.shapes)"),
    "scenes": Captioned("scenes", scenes.IMAGE_SIZE, scenes.load_scenes, scenes.vocabulary,
                        lambda n, seed: [c for _, _, c in scenes.sample_scenes(n, seed)], _scenes_score,
                        "1 to 4 coloured shapes on a 48x48 canvas, GenEval's six categories (zoo.data.scenes)"),
}


def captioned(name: str) -> Captioned:
    if name not in CAPTIONED:
        raise ValueError(f"unknown captioned data set {name!r}; one of {', '.join(CAPTIONED)}")
    return CAPTIONED[name]
