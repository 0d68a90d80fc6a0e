"""The captioned `shapes` data set: one coloured shape on a white 32x32 canvas, with a
caption that names some or all of its attributes ("a small red circle in the top left",
"a blue square"). Procedural, so it needs no download, any size is one call away, and
every image's true attributes are known: `judge` reads them back from pixels, which is
how the text-to-image model's prompt-following is measured.

    ds = shapes_dataset(20_000, seed=0)        # datasets.Dataset: image, caption, attributes
    read_shape(image_uint8)                     # -> the attributes read back from the pixels
    judge(images_uint8, prompts)                # -> share of images showing what each prompt names
    prompt_attributes("a red circle")           # -> {"color": "red", "shape": "circle"}
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

IMAGE_SIZE = 32
BACKGROUND = (255, 255, 255)
SHAPES = ("circle", "square", "triangle")
COLORS = {"red": (220, 38, 38), "green": (34, 160, 60), "blue": (37, 80, 220),
          "yellow": (236, 196, 24), "purple": (140, 56, 190), "cyan": (24, 190, 205)}
SIZES = {"small": 7.0, "large": 12.0}  # side of the bounding box, pixels
# 3x3 grid of positions: (row, column) -> phrase; cell centres at 8, 16, 24 pixels
CELL_CENTRES = (8, 16, 24)
POSITIONS = {
    "top left": (0, 0), "top": (0, 1), "top right": (0, 2),
    "left": (1, 0), "center": (1, 1), "right": (1, 2),
    "bottom left": (2, 0), "bottom": (2, 1), "bottom right": (2, 2),
}
PHRASES = {"top": "at the top", "left": "on the left", "center": "in the center", "right": "on the right",
           "bottom": "at the bottom"}  # the rest read "in the <position>"
ATTRIBUTES = ("shape", "color", "size", "position")
# chance that a caption names each attribute (the shape always): partial captions teach
# the model what to do when a prompt leaves something out
MENTION = {"color": 0.85, "size": 0.6, "position": 0.6}
# distinct captions: the shape, each other attribute named or not (630: a training set of a
# few thousand captions holds every one, so evaluations use fresh shapes, not unseen sentences)
LANGUAGE_SIZE = len(SHAPES) * (len(COLORS) + 1) * (len(SIZES) + 1) * (len(POSITIONS) + 1)
JITTER = 1.5  # pixels of random offset of the centre; the size varies by +-0.5
SUPERSAMPLE = 4  # draw at 4x and downsample: anti-aliased edges


@dataclass(frozen=True)
class Shape:
    shape: str
    color: str
    size: str
    position: str
    dx: float = 0.0
    dy: float = 0.0
    dsize: float = 0.0

    @property
    def attributes(self) -> dict:
        return {"shape": self.shape, "color": self.color, "size": self.size, "position": self.position}


def position_phrase(position: str) -> str:
    return PHRASES.get(position, f"in the {position}")


def caption(shape: Shape, mention=("color", "size", "position")) -> str:
    """'a [size] [color] <shape> [position phrase]' with the attributes in `mention`."""
    words = ["a"] + [getattr(shape, a) for a in ("size", "color") if a in mention] + [shape.shape]
    if "position" in mention:
        words.append(position_phrase(shape.position))
    return " ".join(words)


def random_shape(rng: np.random.Generator) -> Shape:
    return Shape(shape=str(rng.choice(SHAPES)), color=str(rng.choice(list(COLORS))),
                 size=str(rng.choice(list(SIZES))), position=str(rng.choice(list(POSITIONS))),
                 dx=float(rng.uniform(-JITTER, JITTER)), dy=float(rng.uniform(-JITTER, JITTER)),
                 dsize=float(rng.uniform(-0.5, 0.5)))


def render(shape: Shape) -> np.ndarray:
    """uint8 (32, 32, 3) image of one shape on the white background."""
    k = SUPERSAMPLE
    image = Image.new("RGB", (IMAGE_SIZE * k, IMAGE_SIZE * k), BACKGROUND)
    row, col = POSITIONS[shape.position]
    cx, cy = (CELL_CENTRES[col] + shape.dx) * k, (CELL_CENTRES[row] + shape.dy) * k
    half = (SIZES[shape.size] + shape.dsize) * k / 2
    draw_shape(ImageDraw.Draw(image), shape.shape, COLORS[shape.color], cx, cy, half)
    return np.asarray(image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX))


def draw_shape(draw, shape: str, color: tuple, cx: float, cy: float, half: float):
    """One filled shape of half-side `half` centred at (cx, cy) (PIL coordinates)."""
    box = (cx - half, cy - half, cx + half, cy + half)
    if shape == "circle":
        draw.ellipse(box, fill=color)
    elif shape == "square":
        draw.rectangle(box, fill=color)
    else:  # triangle, apex up
        draw.polygon([(cx, cy - half), (cx + half, cy + half), (cx - half, cy + half)], fill=color)


def sample_shapes(n: int, seed: int = 0) -> list[tuple[Shape, str]]:
    """n random shapes with their captions (each attribute named with MENTION's chance)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        shape = random_shape(rng)
        mention = tuple(a for a, p in MENTION.items() if rng.random() < p)
        out.append((shape, caption(shape, mention)))
    return out


def shapes_dataset(n: int, seed: int = 0):
    """A `datasets.Dataset` of n captioned images (columns image, caption and the four
    attributes), the same for the same (n, seed); save_to_disk / push_to_hub as any other."""
    import datasets

    items = sample_shapes(n, seed)
    features = datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string"),
                                  **{a: datasets.Value("string") for a in ATTRIBUTES}})
    columns = {"image": [Image.fromarray(render(s)) for s, _ in items], "caption": [c for _, c in items],
               **{a: [getattr(s, a) for s, _ in items] for a in ATTRIBUTES}}
    return datasets.Dataset.from_dict(columns, features=features)


def vocabulary() -> list[str]:
    """Every word a training caption can contain."""
    words = {"a", *SHAPES, *COLORS, *SIZES}
    for position in POSITIONS:
        words.update(position_phrase(position).split())
    return sorted(words)


def prompt_attributes(prompt: str) -> dict:
    """The attributes a prompt names (the caption grammar read backwards), e.g.
    'a small red circle on the left' -> shape, color, size and position."""
    text = " ".join(re.findall(r"[a-z]+", prompt.lower()))
    found = {}
    for name, values in (("shape", SHAPES), ("color", COLORS), ("size", SIZES)):
        hits = [v for v in values if re.search(rf"\b{v}\b", text)]
        if len(hits) == 1:
            found[name] = hits[0]
    positions = [p for p in sorted(POSITIONS, key=len, reverse=True) if re.search(rf"\b{position_phrase(p)}\b", text)]
    if positions:
        found["position"] = positions[0]  # the longest match: "in the top left" before "on the left"
    return found


def _foreground(image: np.ndarray) -> np.ndarray:
    """Soft foreground weight in [0, 1] per pixel: distance from the background colour."""
    diff = np.abs(image.astype(np.float32) - np.array(BACKGROUND, dtype=np.float32)).max(axis=-1)
    return np.clip((diff - 40.0) / 100.0, 0.0, 1.0)


def _span(mass: np.ndarray) -> tuple:
    """(start, middle, end) of the foreground along one axis (mass per pixel line), from
    the 2% and 98% quantiles of its cumulative mass: robust to faint anti-aliased edges."""
    coords, cum = np.arange(len(mass)) + 0.5, np.cumsum(mass) / mass.sum()
    start, end = np.interp(0.02, cum, coords), np.interp(0.98, cum, coords)
    return start, (start + end) / 2, end


def _top_to_bottom(rows: np.ndarray) -> float:
    """Foreground mass above the middle of a shape over the mass below it (rows: mass per
    pixel row): about 1 for a circle or square, 1/3 for an apex-up triangle."""
    ys, middle = np.arange(len(rows)) + 0.5, _span(rows)[1]
    upper = float((rows * np.clip(middle - (ys - 0.5), 0.0, 1.0)).sum())
    return upper / max(rows.sum() - upper, 1e-6)


def _cell(v: float, centres: tuple) -> int:
    """Grid row or column (0, 1, 2) of a coordinate: borders halfway between the centres."""
    return sum(v >= (a + b) / 2 for a, b in zip(centres, centres[1:]))


def read_object(image: np.ndarray, weight: np.ndarray, centres: tuple = CELL_CENTRES) -> dict:
    """The attributes of one shape, from the image and its soft foreground weight (zero
    off the shape): colour = nearest palette colour to the mean foreground colour;
    position = grid cell of the centre of its extent (not the centroid, which sits low in
    a triangle); size = its extent; shape = triangle when its top half holds much less
    than its bottom half, else square or circle by how much of its bounding box it fills
    (1 vs pi/4); box = (left, top, right, bottom) of the extent, in pixel edges. `centres`:
    the grid cells' centres along either axis."""
    mass = weight.sum()
    mean = (image.astype(np.float32) * weight[..., None]).sum(axis=(0, 1)) / mass
    color = min(COLORS, key=lambda c: float(((np.array(COLORS[c]) - mean) ** 2).sum()))
    rows, cols = weight.sum(axis=1), weight.sum(axis=0)
    (top, cy, bottom), (left, cx, right) = _span(rows), _span(cols)
    position = next(p for p, rc in POSITIONS.items() if rc == (_cell(cy, centres), _cell(cx, centres)))
    width, height = rows.max(), cols.max()  # widest row, tallest column
    size = "small" if max(width, height) < (SIZES["small"] + SIZES["large"]) / 2 else "large"
    if _top_to_bottom(rows) < 0.5:
        shape = "triangle"
    else:
        shape = "square" if mass / (width * height) > 0.9 else "circle"
    return {"shape": shape, "color": color, "size": size, "position": position,
            # _span's quantiles sit at pixel centres: the box reaches half a pixel further, to the pixel edges
            "box": tuple(round(float(v), 2) for v in (left - 0.5, top - 0.5, right + 0.5, bottom + 0.5))}


def read_shape(image: np.ndarray) -> dict:
    """The attributes of the one shape in a uint8 (H, W, 3) image, read from its pixels
    (read_object, without the box). An empty canvas gives {}. Exact on the data set (tested)."""
    weight = _foreground(image)
    if weight.sum() < 4.0:
        return {}
    return {a: v for a, v in read_object(image, weight).items() if a in ATTRIBUTES}


def judge(images: np.ndarray, prompts: list[str]) -> dict:
    """Share of generated images whose shape has each attribute their prompt asks for:
    {attribute: accuracy over the prompts that name it, "all": share with every named one}."""
    if len(images) != len(prompts):
        raise ValueError(f"judge needs one prompt per image, got {len(images)} images and {len(prompts)} prompts")
    hits = {a: [] for a in ATTRIBUTES}
    every = []
    for image, prompt in zip(images, prompts):
        wanted, seen = prompt_attributes(prompt), read_shape(np.asarray(image))
        ok = [seen.get(a) == v for a, v in wanted.items()]
        for a, v in wanted.items():
            hits[a].append(seen.get(a) == v)
        every.append(all(ok))
    out = {a: float(np.mean(v)) for a, v in hits.items() if v}
    out["all"] = float(np.mean(every)) if every else float("nan")
    return out


def load_shapes(n: int, seed: int = 0):
    """(ImageData of the n images as uint8 (n, 3, 32, 32), their captions): the data set
    decoded through `datasets`, held in memory for training."""
    from zoo.data.images import ImageData, to_uint8_chw

    ds = shapes_dataset(n, seed)
    images = to_uint8_chw(ds["image"])
    return ImageData(f"shapes-{n}-seed{seed}", images, torch.full((n,), -1, dtype=torch.int64)), list(ds["caption"])
