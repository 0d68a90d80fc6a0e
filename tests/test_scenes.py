"""zoo.data.scenes and zoo.data.scene_judge: the scene world, its held-out combinations,
and the judge that reads every object back from pixels."""
import numpy as np
import pytest

from zoo.data import scene_judge as J
from zoo.data import scenes as S


@pytest.fixture(scope="module")
def items():
    return S.sample_scenes(1200, seed=3)


def _truth(objects) -> list:
    return sorted((o.shape, o.color, o.size, o.position) for o in objects)


def test_the_judge_reads_every_object_of_every_rendered_scene(items):
    for category, objects, caption in items:
        reads = J.read_objects(S.render(objects))
        assert _truth(objects) == sorted((r["shape"], r["color"], r["size"], r["position"]) for r in reads), caption
    images = np.stack([S.render(objects) for _, objects, _ in items])
    result = J.judge(images, [caption for _, _, caption in items])
    assert result["by_category"] == {c: 1.0 for c in S.CATEGORIES + (S.ABSOLUTE,)} and result["overall"] == 1.0


def test_every_category_is_drawn_and_captions_parse_to_their_category(items):
    seen = {c: 0 for c in S.CATEGORIES + (S.ABSOLUTE,)}
    words = set(S.vocabulary())
    for category, objects, caption in items:
        spec = J.parse_prompt(caption)
        assert spec.category == category and spec.count == len(objects), caption
        assert set(caption.split()) <= words
        seen[category] += 1
    assert all(n > 0.6 * S.MIXTURE[c] * len(items) for c, n in seen.items() if c in ("two_object", "counting",
                                                                                   "position", "color_attr"))
    # one-shape captions naming a position are scored apart (about 60% of them, MENTION)
    singles = seen["single_object"] + seen["colors"] + seen[S.ABSOLUTE]
    assert 0.5 < seen[S.ABSOLUTE] / singles < 0.7


def test_a_mixture_weighs_the_categories_and_bad_ones_are_refused():
    only = S.sample_scenes(200, seed=1, mixture={"position": 2.0, "color_attr": 2.0})  # normalised to 1/2 each
    assert {c for c, _, _ in only} == {"position", "color_attr"}
    assert 60 < sum(c == "position" for c, _, _ in only) < 140
    # the default keeps drawing the scenes the bundled models were trained on (40,000 of seed 0)
    trained_on = [caption for _, _, caption in S.sample_scenes(40_000, seed=0)]
    assert trained_on[:3] == ["three blue circles", "a large green square", "a circle"]
    assert trained_on[-1] == "a purple square and a yellow triangle"
    for bad, message in (({"positon": 1.0}, "unknown scene categories"), ({"position": -1.0}, "non-negative"),
                         ({"position": 0.0}, "not all zero"), ({"position": float("nan")}, "finite")):
        with pytest.raises(ValueError, match=message):
            S.sample_scenes(10, mixture=bad)


def test_training_scenes_never_show_a_held_out_combination(items):
    for _, objects, caption in items:
        assert not {(o.color, o.shape) for o in objects} & S.HELD_OUT_PAIRS, caption
        spec = J.parse_prompt(caption)
        if spec.relation:
            assert (spec.objects[0]["shape"], spec.relation, spec.objects[1]["shape"]) not in S.HELD_OUT_RELATIONS
    colors = {(o.color, o.shape) for _, objects, _ in items for o in objects}
    for color, shape in S.HELD_OUT_PAIRS:  # each colour and each shape still appears, with others
        assert any(c == color for c, _ in colors) and any(s == shape for _, s in colors)


def test_held_out_prompts_each_hold_a_held_out_combination():
    prompts = S.benchmark_prompts("held_out", per_category=40)
    assert {c for c, _ in prompts} == {"colors", "counting", "position", "color_attr"}
    for category, prompt in prompts:
        assert J.parse_prompt(prompt).category == category and J.held_out(prompt), prompt
    seen = S.benchmark_prompts("seen", per_category=40)
    assert not any(J.held_out(p) for _, p in seen)
    assert len(seen) == 40 * (len(S.CATEGORIES) + 1) and seen == S.benchmark_prompts("seen", per_category=40)
    assert all(J.parse_prompt(p).category == c for c, p in seen)


def test_the_judge_notices_wrong_scenes():
    red_left = S.SceneObject("circle", "red", "large", "left")
    blue_right = S.SceneObject("square", "blue", "large", "right")
    image = S.render([red_left, blue_right])
    verdicts = {p: J.judge([image], [p])["followed"][0] for p in (
        "a red circle to the left of a blue square", "a blue square to the right of a red circle",
        "a red circle to the right of a blue square", "a red circle above a blue square",
        "a red circle and a blue square", "a blue circle and a red square", "a circle and a square",
        "two circles", "a red circle", "a circle and a triangle")}
    assert verdicts == {"a red circle to the left of a blue square": True,
                        "a blue square to the right of a red circle": True,
                        "a red circle to the right of a blue square": False, "a red circle above a blue square": False,
                        "a red circle and a blue square": True, "a blue circle and a red square": False,
                        "a circle and a square": True, "two circles": False,
                        "a red circle": False,  # a second object: the caption describes the whole scene
                        "a circle and a triangle": False}
    assert J.read_objects(np.full((48, 48, 3), 255, np.uint8)) == []


def test_counting_needs_exactly_that_many():
    three = [S.SceneObject("circle", "yellow", "small", cell) for cell in ("top left", "center", "bottom right")]
    image = S.render(three)
    for prompt, ok in (("three yellow circles", True), ("three circles", True), ("two yellow circles", False),
                       ("four yellow circles", False), ("three red circles", False), ("three squares", False)):
        assert J.judge([image], [prompt])["followed"] == [ok], prompt


def test_prompts_outside_the_grammar_are_never_followed():
    """The judge cannot check 'big' or 'middle': such a prompt is not understood, not followed."""
    image = S.render([S.SceneObject("square", "blue", "large", "center")])
    assert J.judge([image], ["a large blue square in the center"])["followed"] == [True]
    for prompt in ("a big blue square in the middle", "a blue square in the middle", "blue square", "a blue square?",
                   "a blue square and", "3 blue squares", ""):
        result = J.judge([image], [prompt])
        assert result["followed"] == [False] and set(result["by_category"]) == {"not_understood"}, prompt
    assert J.parse_prompt("A Red Circle to the LEFT of a blue square.").relation == "to the left of"


def test_the_scene_judge_reads_the_32_pixel_shapes_data_too():
    """The single-object prompts of the benchmark are scored on the old 32x32 model too."""
    from zoo.data import shapes

    for shape, caption in shapes.sample_shapes(300, seed=4):
        assert J.judge([shapes.render(shape)], [caption])["followed"] == [True], caption


def test_the_dataset_is_reproducible_and_records_its_ground_truth():
    import json

    a = S.scenes_dataset(12, seed=5)
    assert a.column_names == ["image", "caption", "category", "objects"]
    assert a["caption"] == S.scenes_dataset(12, seed=5)["caption"]
    data, captions = S.load_scenes(12, seed=5)
    assert tuple(data.images.shape) == (12, 3, 48, 48) and captions == a["caption"]
    objects = [S.SceneObject(**o) for o in json.loads(a[0]["objects"])]
    assert np.array_equal(S.render(objects), np.asarray(a[0]["image"]))
