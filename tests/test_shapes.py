"""zoo.data.shapes: the captioned shapes data and the judge that reads attributes back."""
import numpy as np
import pytest

from zoo.data import shapes as S


@pytest.fixture(scope="module")
def items():
    return S.sample_shapes(1500, seed=3)


def test_the_judge_reads_every_attribute_of_every_rendered_shape(items):
    images = np.stack([S.render(s) for s, _ in items])
    assert all(S.read_shape(im) == s.attributes for im, (s, _) in zip(images, items))
    assert S.judge(images, [c for _, c in items]) == {"shape": 1.0, "color": 1.0, "size": 1.0, "position": 1.0,
                                                      "all": 1.0}


def test_the_judge_notices_a_wrong_image():
    blue_square = S.render(S.Shape("square", "blue", "large", "top left"))
    scores = S.judge(np.stack([blue_square] * 2), ["a large red circle in the bottom right", "a blue square"])
    assert scores == {"shape": 0.5, "color": 0.5, "size": 1.0, "position": 0.0, "all": 0.5}
    assert S.read_shape(np.full((32, 32, 3), 255, np.uint8)) == {}  # nothing drawn: nothing read


def test_captions_name_true_attributes_in_the_vocabulary(items):
    words = set(S.vocabulary())
    mentioned = {a: 0 for a in S.ATTRIBUTES}
    for shape, caption in items:
        named = S.prompt_attributes(caption)
        assert named["shape"] == shape.shape and all(shape.attributes[a] == v for a, v in named.items())
        assert set(caption.split()) <= words
        for a in named:
            mentioned[a] += 1
    # every caption names the shape; the others with their MENTION chance (binomial, 5 sd)
    assert mentioned["shape"] == len(items)
    for a, p in S.MENTION.items():
        assert abs(mentioned[a] / len(items) - p) < 5 * np.sqrt(p * (1 - p) / len(items))


def test_prompt_attributes_reads_free_text():
    assert S.prompt_attributes("A LARGE purple triangle, in the bottom left!") == {
        "shape": "triangle", "color": "purple", "size": "large", "position": "bottom left"}
    assert S.prompt_attributes("a red or blue thing on the left") == {"position": "left"}  # ambiguous: not named


def test_the_dataset_is_reproducible_and_loads_through_datasets():
    a, b = S.shapes_dataset(20, seed=5), S.shapes_dataset(20, seed=5)
    assert a.column_names == ["image", "caption", *S.ATTRIBUTES]
    assert a["caption"] == b["caption"] and a["caption"] != S.shapes_dataset(20, seed=6)["caption"]
    data, captions = S.load_shapes(20, seed=5)
    assert tuple(data.images.shape) == (20, 3, 32, 32) and captions == a["caption"]
    assert np.array_equal(data.images[0].permute(1, 2, 0).numpy(), np.asarray(a[0]["image"]))


def test_position_has_the_same_margin_for_every_shape():
    """The cell comes from the centre of the shape's extent: a triangle's centroid sits a
    sixth of its height low, which once misread triangles shifted within their cell."""
    for shape in S.SHAPES:
        for position in ("top", "center", "bottom left"):
            for dx, dy in ((0, -3), (0, 3), (3, 3), (-3, -3)):  # 2x the data's jitter, still inside the cell
                image = S.render(S.Shape(shape, "green", "large", position, dx, dy))
                assert S.read_shape(image)["position"] == position, (shape, position, dx, dy)
    with pytest.raises(ValueError, match="one prompt per image"):
        S.judge(np.zeros((2, 32, 32, 3), np.uint8), ["a red circle"])
