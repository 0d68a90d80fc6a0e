"""bench/text2image.py's row sets: the headline row is the targets' setting, 'guidance' adds
every w at it, 'all' every solver at 10 and 20 steps with each fixed spacing, no row twice."""
from bench import text2image as T
from zoo.diffusion.solvers import SOLVERS


def test_row_sets_nest_and_the_headline_is_the_targets_setting():
    headline, guidance, every = (dict(T.runs(rows)) for rows in T.ROWS)
    assert headline == {"w = 3, dpmpp_2m 20 logsnr": {"guidance": 3.0}}
    assert headline.items() <= guidance.items() <= every.items()
    assert sorted(m["guidance"] for m in guidance.values()) == sorted(T.GUIDANCE)
    solver_rows = len(every) - len(guidance)
    assert solver_rows == len(SOLVERS) * len(T.STEPS) * len(T.SPACINGS) - 1  # dpmpp_2m 20 logsnr: a guidance row
    assert len({tuple(sorted(m.items())) for m in every.values()}) == len(every)


def test_minimal_pairs_differ_in_one_kind_of_word_and_stay_in_the_training_language():
    from bench.text_sensitivity import KINDS, minimal_pairs
    from zoo.data import scene_judge as J
    from zoo.data import scenes as S

    expected = {"colour": "colors", "shape": "colors", "place": S.ABSOLUTE, "relation": "position",
                "binding": "color_attr"}
    for kind in KINDS:
        pairs = minimal_pairs(kind, 20, seed=1)
        assert len(set(pairs)) > 10  # drawn, not one pair repeated
        for p, q in pairs:
            a, b = J.parse_prompt(p), J.parse_prompt(q)
            assert a.category == b.category == expected[kind], (p, q)
            assert not J.held_out(p) and not J.held_out(q), (p, q)
            differ = [i for i, (x, y) in enumerate(zip(a.objects, b.objects)) if x != y]
            if kind == "relation":
                assert a.objects == b.objects and S.INVERSE[a.relation] == b.relation
            elif kind == "binding":  # the colours swap between the two shapes
                assert differ == [0, 1] and a.objects[0]["color"] == b.objects[1]["color"]
            else:
                attribute = {"colour": "color", "shape": "shape", "place": "position"}[kind]
                assert differ == [0] and [k for k in a.objects[0] if a.objects[0][k] != b.objects[0][k]] == [attribute]
