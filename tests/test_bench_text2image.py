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
