"""The judge of the scenes world: reads the objects back from pixels and says whether an
image shows what a prompt asks for, GenEval-style (Ghosh et al. 2023: per category, then
the mean of the categories as 'overall').

    parse_prompt("three yellow circles")      # -> PromptSpec(category="counting", ...); None: not understood
    read_objects(image_uint8)                 # -> [{"shape", "color", "size", "position", "box"}, ...]
    judge(images, prompts)                    # -> {"by_category": {...}, "overall": ..., "followed": [...]}

An image follows a prompt when it holds exactly the objects the prompt implies (a caption
describes the whole scene), with every attribute and relation the prompt names. A prompt
the grammar does not fully cover is never reported as followed: "a big blue square in the
middle" names two things ('big', 'middle') the judge cannot check, so it is not understood.
Exact on rendered scenes (tested).
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

import numpy as np

from zoo.data import scenes, shapes

MIN_MASS = 4.0  # foreground weight of the smallest object: less is a speck, not an object
CORE = 0.5  # foreground weight at which a pixel belongs to an object's core (the anti-aliased rim does not)
CENTRES = {shapes.IMAGE_SIZE: shapes.CELL_CENTRES, scenes.IMAGE_SIZE: scenes.CELL_CENTRES}


@dataclass
class PromptSpec:
    """What a prompt asks for: `objects` (each a dict of named attributes), how many objects
    the image must hold, and the relation of objects[0] to objects[1]."""

    category: str
    objects: list
    count: int
    relation: str | None = None
    every: bool = field(default=False)  # counting: every object has objects[0]'s attributes


def _alt(values) -> str:
    return "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))


_COLOR, _SHAPE = rf"(?:({_alt(shapes.COLORS)}) )?", f"({_alt(shapes.SHAPES)})"
_OBJECT = rf"a {_COLOR}{_SHAPE}"
_POSITION = {shapes.position_phrase(p): p for p in shapes.POSITIONS}
PATTERNS = {
    "single": re.compile(rf"a (?:({_alt(shapes.SIZES)}) )?{_COLOR}{_SHAPE}(?: ({_alt(_POSITION)}))?"),
    "count": re.compile(rf"({_alt(scenes.NUMBERS)}) {_COLOR}{_SHAPE}s"),
    "pair": re.compile(rf"{_OBJECT} (and|{_alt(scenes.RELATIONS)}) {_OBJECT}"),
}


def _named(**attributes) -> dict:
    return {a: v for a, v in attributes.items() if v}


def normalise(prompt: str) -> str:
    """Lower case, single spaces, without the final full stop or exclamation mark."""
    return " ".join(prompt.lower().split()).rstrip(".!").strip()


def parse_prompt(prompt: str) -> PromptSpec | None:
    """The prompt read by the caption grammar, or None when some part of it is outside it."""
    text = normalise(prompt)
    if m := PATTERNS["single"].fullmatch(text):
        size, color, shape, where = m.groups()
        obj = _named(shape=shape, color=color, size=size, position=_POSITION.get(where))
        return PromptSpec(scenes.ABSOLUTE if where else "colors" if color else "single_object", [obj], 1)
    if m := PATTERNS["count"].fullmatch(text):
        number, color, shape = m.groups()
        return PromptSpec("counting", [_named(shape=shape, color=color)], scenes.NUMBERS[number], every=True)
    if m := PATTERNS["pair"].fullmatch(text):
        color_a, shape_a, link, color_b, shape_b = m.groups()
        objects = [_named(shape=shape_a, color=color_a), _named(shape=shape_b, color=color_b)]
        if link != "and":
            return PromptSpec("position", objects, 2, relation=link)
        return PromptSpec("color_attr" if color_a or color_b else "two_object", objects, 2)
    return None


def read_objects(image: np.ndarray) -> list:
    """Every object in a uint8 (H, W, 3) image: its connected foreground core (8-connected),
    widened by one pixel to take in its anti-aliased rim, read by shapes.read_object."""
    from scipy import ndimage

    image = np.asarray(image)
    weight = shapes._foreground(image)
    labels, n = ndimage.label(weight > CORE, structure=np.ones((3, 3)))
    centres = CENTRES.get(image.shape[1], tuple(image.shape[1] * (2 * i + 1) / 6 for i in range(3)))
    found = []
    for k in range(1, n + 1):
        own = weight * ndimage.binary_dilation(labels == k, structure=np.ones((3, 3)))
        if own.sum() >= MIN_MASS:
            found.append(shapes.read_object(image, own, centres))
    return found


def matches(read: dict, wanted: dict) -> bool:
    """Whether an object read from pixels has every attribute a prompt names for it."""
    return all(read[a] == v for a, v in wanted.items())


def centre(read: dict) -> tuple:
    """(x, y) of an object read from pixels: its box's centre (image y points down)."""
    left, top, right, bottom = read["box"]
    return (left + right) / 2, (top + bottom) / 2


def follows(spec: PromptSpec | None, reads: list) -> bool:
    """Whether objects read from an image are what the prompt asks for (see the module)."""
    if spec is None or len(reads) != spec.count:
        return False
    if spec.every:
        return all(matches(r, spec.objects[0]) for r in reads)
    for order in itertools.permutations(reads):
        if all(matches(r, w) for r, w in zip(order, spec.objects)) and (
                spec.relation is None or scenes.relation_holds(centre(order[0]), spec.relation, centre(order[1]))):
            return True
    return False


def judge(images, prompts: list) -> dict:
    """GenEval-style scores: the share of images that follow their prompt, per category
    ('by_category'), their mean over GenEval's six categories present ('overall'; over all
    present when none of the six is, e.g. only absolute positions), and per image
    ('followed'). Prompts outside the grammar count as category 'not_understood', never followed."""
    if len(images) != len(prompts):
        raise ValueError(f"judge needs one prompt per image, got {len(images)} images and {len(prompts)} prompts")
    hits = {}
    followed = []
    for image, prompt in zip(images, prompts):
        spec = parse_prompt(prompt)
        ok = follows(spec, read_objects(image))
        hits.setdefault(spec.category if spec else "not_understood", []).append(ok)
        followed.append(ok)
    by_category = {c: float(np.mean(v)) for c, v in hits.items()}
    six = [v for c, v in by_category.items() if c in scenes.CATEGORIES] or list(by_category.values())
    return {"by_category": by_category, "overall": float(np.mean(six)) if six else float("nan"), "followed": followed}


def describe(read: dict) -> str:
    """An object read from pixels in the caption grammar's words: 'a small red circle (top left)'."""
    return f"a {read['size']} {read['color']} {read['shape']} ({read['position']})"


def wanted(spec: PromptSpec | None, read: dict) -> bool:
    """Whether an object read from an image is one the prompt asks for (its shape, colour,
    size and position where named): the tab frames such objects green, others red."""
    return spec is not None and any(matches(read, w) for w in spec.objects)


def asks_for(spec: PromptSpec) -> str:
    """What a parsed prompt asks for, in words: 'exactly 2 objects: a red circle to the left of a square'."""
    def phrase(w: dict) -> str:
        words = " ".join(w[a] for a in ("size", "color", "shape") if a in w)
        return words + (f" ({w['position']})" if "position" in w else "")

    if spec.every:
        return f"exactly {spec.count} objects, each a {phrase(spec.objects[0])}"
    link = f" {spec.relation} " if spec.relation else " and "
    return f"exactly {spec.count} object{'s' * (spec.count > 1)}: " + link.join(f"a {phrase(w)}" for w in spec.objects)


def held_out(prompt: str) -> bool:
    """Whether a prompt holds a combination training never showed (zoo.data.scenes: a
    held-out colour-shape pair, or a held-out relation phrasing)."""
    spec = parse_prompt(prompt)
    if spec is None:
        return False
    pairs = {(o.get("color"), o["shape"]) for o in spec.objects}
    relation = spec.relation and (spec.objects[0]["shape"], spec.relation, spec.objects[1]["shape"])
    return bool(pairs & scenes.HELD_OUT_PAIRS) or relation in scenes.HELD_OUT_RELATIONS
