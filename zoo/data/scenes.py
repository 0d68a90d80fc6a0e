"""The captioned `scenes` data set: 1 to 4 coloured shapes on a white 48x48 canvas, with
captions from a grammar that covers GenEval's six categories (Ghosh et al. 2023):

    single object      "a triangle"  (and the shapes data's phrases: "a small red circle in the top left")
    colors             "a purple square"
    two objects        "a circle and a square"
    counting (2-4)     "three yellow circles"
    position           "a red circle to the left of a blue square"  (also right of, above, below)
    attribute binding  "a red triangle and a blue circle"

Every object sits in its own cell of a 3x3 grid (centres 8, 24, 40 pixels), so objects never
touch and zoo.data.scene_judge reads each one back exactly. Held-out combinations measure
compositional generalisation: the colour-shape pairs HELD_OUT_PAIRS never appear in a
training image or caption (each colour and each shape does, with others), and the phrasings
HELD_OUT_RELATIONS ("a circle above a square") never appear in a caption, though the same
arrangement does, described the other way round ("a square below a circle").

    ds = scenes_dataset(20_000, seed=0)                  # datasets.Dataset: image, caption, category, objects
    benchmark_prompts("held_out", per_category=50)       # -> [(category, prompt), ...]
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from zoo.data.shapes import BACKGROUND, COLORS, MENTION, POSITIONS, SHAPES, SIZES, SUPERSAMPLE, draw_shape, \
    position_phrase

IMAGE_SIZE = 48
CELL_CENTRES = (8, 24, 40)  # 16-pixel cells: a large shape (12 px) plus jitter leaves a 1.5-pixel gap
JITTER = 1.0  # pixels of random offset of each centre; the size varies by +-0.5
CATEGORIES = ("single_object", "two_object", "counting", "colors", "position", "color_attr")  # GenEval's six
# a one-shape caption that names where the shape is ("a small red circle in the top left") is its
# own skill, outside GenEval's six: scored apart and left out of 'overall'
ABSOLUTE = "absolute_position"
NUMBERS = {"two": 2, "three": 3, "four": 4}
RELATIONS = ("to the left of", "to the right of", "above", "below")
HELD_OUT_PAIRS = frozenset({("purple", "triangle"), ("green", "circle"), ("yellow", "square")})  # (colour, shape)
HELD_OUT_RELATIONS = frozenset({("circle", "above", "square"), ("square", "to the left of", "triangle"),
                                ("triangle", "below", "circle"), ("circle", "to the right of", "triangle")})
# (each one's inverse, "a square below a circle", is seen: that is how such a scene is captioned)
# training mixture: share of scenes per category (single objects carry the shapes data's phrases)
MIXTURE = {"single_object": 0.15, "colors": 0.15, "two_object": 0.15, "counting": 0.2, "position": 0.2,
           "color_attr": 0.15}
MARGIN = 8.0  # pixels: "left of" means the centres differ by more than half a cell
# a training-only variant of "position" (--mixture position_opposite=W, labelled position): the
# two objects on opposite sides of the relation's axis (columns 0 and 2 for "left of"), the
# other coordinate free, so the caption fixes more of the image: knowing the relation explains
# 10% of such scenes' pixel variance, 2.7% of the position category's (bench/concept_signal.py)
OPPOSITE = "position_opposite"
# its first curriculum stage (--mixture position_template=W): the pair at the middles of two
# opposite edges, so the caption decides the layout (the words of a relation get heard first)
TEMPLATE = "position_template"
POSITION_VARIANTS = (OPPOSITE, TEMPLATE)
CELL_AT = {rc: cell for cell, rc in POSITIONS.items()}  # (row, column) -> the cell's name


@dataclass(frozen=True)
class SceneObject:
    shape: str
    color: str
    size: str
    position: str  # the grid cell, a key of shapes.POSITIONS
    dx: float = 0.0
    dy: float = 0.0
    dsize: float = 0.0

    @property
    def centre(self) -> tuple:
        row, col = POSITIONS[self.position]
        return CELL_CENTRES[col] + self.dx, CELL_CENTRES[row] + self.dy


def relation_holds(a_centre, relation: str, b_centre) -> bool:
    """Whether an object at a_centre is `relation` one at b_centre (image y points down)."""
    (ax, ay), (bx, by) = a_centre, b_centre
    return {"to the left of": bx - ax, "to the right of": ax - bx,
            "above": by - ay, "below": ay - by}[relation] > MARGIN


def render(objects) -> np.ndarray:
    """uint8 (48, 48, 3) image of the objects on the white background (anti-aliased)."""
    k = SUPERSAMPLE
    image = Image.new("RGB", (IMAGE_SIZE * k, IMAGE_SIZE * k), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for obj in objects:
        cx, cy = obj.centre
        draw_shape(draw, obj.shape, COLORS[obj.color], cx * k, cy * k, (SIZES[obj.size] + obj.dsize) * k / 2)
    return np.asarray(image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX))


# ----------------------------------------------------------------------------- phrases


def noun(shape: str, color: str | None = None) -> str:
    return f"a {color} {shape}" if color else f"a {shape}"


def single_caption(obj: SceneObject, mention=("color", "size", "position")) -> str:
    """The shapes data's phrase: 'a [size] [color] <shape> [position phrase]'."""
    words = ["a"] + [getattr(obj, a) for a in ("size", "color") if a in mention] + [obj.shape]
    return " ".join(words + ([position_phrase(obj.position)] if "position" in mention else []))


def count_caption(n: int, shape: str, color: str | None) -> str:
    number = next(word for word, v in NUMBERS.items() if v == n)
    return " ".join([number] + ([color] if color else []) + [shape + "s"])


def vocabulary() -> list[str]:
    """Every word a caption can contain."""
    words = {"a", "and", *SHAPES, *(s + "s" for s in SHAPES), *COLORS, *SIZES, *NUMBERS}
    for phrase in [*RELATIONS, *(position_phrase(p) for p in POSITIONS)]:
        words.update(phrase.split())
    return sorted(words)


# ----------------------------------------------------------------------------- scenes


def _allowed(color: str, shape: str, held_out: bool) -> bool:
    return held_out or (color, shape) not in HELD_OUT_PAIRS


def _object(rng, cell: str, shape=None, color=None, held_out=False) -> SceneObject:
    """A random object in `cell`; shape / colour drawn when not given, never a held-out
    pair unless held_out."""
    while True:
        s = shape or str(rng.choice(SHAPES))
        c = color or str(rng.choice(list(COLORS)))
        if _allowed(c, s, held_out):
            break
    return SceneObject(s, c, str(rng.choice(list(SIZES))), cell, float(rng.uniform(-JITTER, JITTER)),
                       float(rng.uniform(-JITTER, JITTER)), float(rng.uniform(-0.5, 0.5)))


def _cells(rng, n: int) -> list:
    return [str(c) for c in rng.choice(list(POSITIONS), size=n, replace=False)]


def _relations(a: SceneObject, b: SceneObject) -> list:
    return [r for r in RELATIONS if relation_holds(a.centre, r, b.centre)]


INVERSE = {"to the left of": "to the right of", "to the right of": "to the left of", "above": "below", "below": "above"}


def _relation_caption(rng, a: SceneObject, b: SceneObject, colors: bool, relation: str | None = None) -> str:
    """'A <relation> B' for the given relation or one that holds; a held-out phrasing is said
    the other way round ('B <inverse> A'), so the caption is still true."""
    relation = relation or str(rng.choice(_relations(a, b)))
    if (a.shape, relation, b.shape) in HELD_OUT_RELATIONS:
        a, b, relation = b, a, INVERSE[relation]
    return f"{noun(a.shape, a.color if colors else None)} {relation} {noun(b.shape, b.color if colors else None)}"


def _opposite_scene(rng, template: bool = False) -> tuple:
    """(objects, caption) of an OPPOSITE scene: A and B at the two ends of a random axis
    (TEMPLATE: in the middle of the other axis)."""
    horizontal, ends = rng.random() < 0.5, rng.permutation([0, 2])
    across = np.ones(2, dtype=int) if template else rng.integers(3, size=2)
    cells = [CELL_AT[(int(o), int(e)) if horizontal else (int(e), int(o))] for e, o in zip(ends, across)]
    a, b = _object(rng, cells[0]), _object(rng, cells[1])
    relation = RELATIONS[(0 if ends[0] == 0 else 1) + (0 if horizontal else 2)]  # left of / right of / above / below
    return [a, b], _relation_caption(rng, a, b, rng.random() < 0.7, relation)


def random_scene(rng, category: str) -> tuple:
    """(objects, caption) of one training scene of a category (no held-out combination)."""
    if category in POSITION_VARIANTS:
        return _opposite_scene(rng, template=category == TEMPLATE)
    if category in ("single_object", "colors"):
        obj = _object(rng, _cells(rng, 1)[0])
        mention = tuple(a for a, p in MENTION.items() if rng.random() < p and a != "color")
        return [obj], single_caption(obj, mention + (("color",) if category == "colors" else ()))
    if category == "counting":
        n, one_color = int(rng.integers(2, 5)), rng.random() < 0.6
        shape = str(rng.choice(SHAPES))
        color = _object(rng, "center", shape=shape).color if one_color else None
        objects = [_object(rng, cell, shape=shape, color=color) for cell in _cells(rng, n)]
        return objects, count_caption(n, shape, color)
    cells = _cells(rng, 2)
    a = _object(rng, cells[0])
    b = _object(rng, cells[1], shape=str(rng.choice([s for s in SHAPES if s != a.shape]))
                if category == "two_object" else None)
    if category == "position":
        return [a, b], _relation_caption(rng, a, b, colors=rng.random() < 0.7)
    colors = category == "color_attr"
    return [a, b], f"{noun(a.shape, a.color if colors else None)} and {noun(b.shape, b.color if colors else None)}"


def label(category: str, caption: str) -> str:
    """The category a caption is scored in: a one-shape caption naming its position is ABSOLUTE."""
    if category in POSITION_VARIANTS:
        return "position"
    single = category in ("single_object", "colors")
    return ABSOLUTE if single and any(position_phrase(p) in caption for p in POSITIONS) else category


def check_mixture(mixture: dict) -> dict:
    """A mixture of the six categories: non-negative weights, normalised to shares."""
    unknown = set(mixture) - set(CATEGORIES + POSITION_VARIANTS)
    if unknown:
        raise ValueError(f"unknown scene categories {sorted(unknown)}; the mixture names some of "
                         f"{CATEGORIES + POSITION_VARIANTS}")
    # an old mixture draws as it always did
    named = CATEGORIES + tuple(v for v in POSITION_VARIANTS if v in mixture)
    weights = {c: float(mixture.get(c, 0.0)) for c in named}
    if not all(np.isfinite(w) and w >= 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"mixture weights must be finite, non-negative and not all zero, got {mixture}")
    total = sum(weights.values())
    return {c: w / total for c, w in weights.items()}


def sample_scenes(n: int, seed: int = 0, mixture: dict | None = None) -> list:
    """n training scenes [(category, objects, caption)], categories drawn from `mixture`
    (default MIXTURE; a one-shape caption that names a position is labelled ABSOLUTE)."""
    rng = np.random.default_rng(seed)
    # the default keeps MIXTURE's own order, so a seed gives the scenes the bundled models were
    # trained on; a given mixture draws in the order of CATEGORIES
    shares = MIXTURE if mixture is None else check_mixture(mixture)
    names, weights = list(shares), np.array(list(shares.values()))
    out = []
    for category in rng.choice(names, size=n, p=weights / weights.sum()):
        objects, caption = random_scene(rng, str(category))
        out.append((label(str(category), caption), objects, caption))
    return out


def scenes_dataset(n: int, seed: int = 0, mixture: dict | None = None):
    """A `datasets.Dataset` of n captioned scenes (image, caption, category, objects: the
    ground truth as JSON), the same for the same (n, seed, mixture)."""
    import datasets

    items = sample_scenes(n, seed, mixture)
    features = datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string"),
                                  "category": datasets.Value("string"), "objects": datasets.Value("string")})
    columns = {"image": [Image.fromarray(render(objs)) for _, objs, _ in items],
               "caption": [c for _, _, c in items], "category": [cat for cat, _, _ in items],
               "objects": [json.dumps([asdict(o) for o in objs]) for _, objs, _ in items]}
    return datasets.Dataset.from_dict(columns, features=features)


def load_scenes(n: int, seed: int = 0, mixture: dict | None = None):
    """(ImageData of the n images as uint8 (n, 3, 48, 48), their captions), for training."""
    from zoo.data.images import ImageData, to_uint8_chw

    ds = scenes_dataset(n, seed, mixture)
    images = to_uint8_chw(ds["image"])
    return ImageData(f"scenes-{n}-seed{seed}", images, torch.full((n,), -1, dtype=torch.int64)), list(ds["caption"])


# ----------------------------------------------------------------------------- the benchmark's prompts


def _held_out_prompt(rng, category: str) -> str | None:
    """A prompt of the category that contains a held-out combination (None: the category
    has none: 'a triangle' and 'a circle and a square' name no colour or relation)."""
    color, shape = sorted(HELD_OUT_PAIRS)[int(rng.integers(len(HELD_OUT_PAIRS)))]
    if category == "colors":
        return noun(shape, color)
    if category == "counting":
        return count_caption(int(rng.integers(2, 5)), shape, color)
    other = _object(rng, "center")
    if category == "color_attr":
        pair = [noun(shape, color), noun(other.shape, other.color)]
        return " and ".join(pair if rng.random() < 0.5 else pair[::-1])
    if category == "position":
        if rng.random() < 0.5:  # a held-out phrasing of seen objects
            a, relation, b = sorted(HELD_OUT_RELATIONS)[int(rng.integers(len(HELD_OUT_RELATIONS)))]
            return f"a {a} {relation} a {b}"
        pair = [noun(shape, color), noun(other.shape, other.color)]
        return f" {rng.choice(RELATIONS)} ".join(pair if rng.random() < 0.5 else pair[::-1])
    return None


def benchmark_prompts(split: str, per_category: int = 50, seed: int = 0) -> list:
    """[(category, prompt)]: per_category prompts of each category, 'seen' (drawn as the
    training captions are) or 'held_out' (each with a held-out combination; categories
    without one are left out)."""
    if split not in ("seen", "held_out"):
        raise ValueError(f"split must be 'seen' or 'held_out', got {split!r}")
    rng, out = np.random.default_rng(seed + (0 if split == "seen" else 1)), []
    for category in CATEGORIES + (ABSOLUTE,):
        for _ in range(per_category):
            prompt = _seen_prompt(rng, category) if split == "seen" else _held_out_prompt(rng, category)
            if prompt is None:
                break
            out.append((category, prompt))
    return out


def _seen_prompt(rng, category: str) -> str:
    """A training caption whose label is `category` (drawn until one is)."""
    while True:
        drawn = str(rng.choice(["single_object", "colors"])) if category == ABSOLUTE else category
        caption = random_scene(rng, drawn)[1]
        if label(drawn, caption) == category:
            return caption
