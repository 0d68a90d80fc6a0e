"""bench/relation_flips.py: the probes cover every ordered shape pair and axis with the held-out
phrasings marked, the side is read exactly from rendered scenes, and a model that follows the
word scores 1 where one that knows only the axis scores 0."""
import numpy as np

from bench import relation_flips as R
from zoo.data import scene_judge, scenes
from zoo.data.scenes import SceneObject


def test_probes_cover_every_ordered_pair_and_axis_and_mark_each_held_out_phrasing_once():
    probes = R.probes()
    assert len(probes) == 3 * 2 * 2 == len({p[:3] for p in probes})
    held = {p[:3] for p in probes if p[4]}
    assert len(held) == len(scenes.HELD_OUT_RELATIONS)  # each held-out triple lies in exactly one probe
    for x, relation, y in scenes.HELD_OUT_RELATIONS:
        assert (x, y, relation) in held or (x, y, scenes.INVERSE[relation]) in held


def _scene(first: SceneObject, second: SceneObject, *extra) -> list:
    return scene_judge.read_objects(scenes.render([first, second, *extra]))


def test_the_first_objects_side_is_read_exactly_from_rendered_scenes():
    spec = scene_judge.parse_prompt("a red square to the left of a blue circle")
    square, circle = SceneObject("square", "red", "large", "left"), SceneObject("circle", "blue", "large", "right")
    assert R.first_before_second(spec, _scene(square, circle), axis=0) is True
    swapped = [SceneObject("square", "red", "large", "right"), SceneObject("circle", "blue", "large", "left")]
    assert R.first_before_second(spec, _scene(*swapped), axis=0) is False
    above = [SceneObject("square", "red", "small", "top"), SceneObject("circle", "blue", "small", "bottom")]
    assert R.first_before_second(spec, _scene(*above), axis=1) is True
    second_square = SceneObject("square", "red", "small", "bottom left")
    assert R.first_before_second(spec, _scene(square, circle, second_square), axis=0) is None  # not one of each


class _FakePipe:
    """Renders the prompt's pair on the horizontal or vertical axis: in the order the relation
    word says (follows=True), or always the first object first (the axis only)."""

    def __init__(self, follows: bool):
        self.follows = follows

    def generate(self, prompts, **sampling):
        assert sampling == R.SAMPLING
        return np.stack([self._draw(p) for p in prompts])

    def _draw(self, prompt):
        spec = scene_judge.parse_prompt(prompt)
        horizontal = spec.relation in ("to the left of", "to the right of")
        before, after = ("left", "right") if horizontal else ("top", "bottom")
        if self.follows and spec.relation in ("to the right of", "below"):
            before, after = after, before
        a, b = ({k: w[k] for k in ("shape", "color")} for w in spec.objects)
        return scenes.render([SceneObject(size="large", position=before, **a),
                              SceneObject(size="large", position=after, **b)])


def test_a_model_that_follows_the_word_flips_every_seed_and_one_that_knows_the_axis_none():
    probe = ("triangle", "circle", "above", 1, False)
    assert R.flips(_FakePipe(follows=True), probe, seeds=3) == (3, 3)
    assert R.flips(_FakePipe(follows=False), probe, seeds=3) == (0, 3)
    assert R.count_flips([True, None, False, True], [False, True, None, True]) == (1, 2)
