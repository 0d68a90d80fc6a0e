"""bench/frontier.py: the rows a model's few-step frontier measures and how its table reads them."""
from types import SimpleNamespace

from bench import frontier
from zoo.diffusion.spacing import FIXED_SPACINGS


def _rows(table):
    pipe = SimpleNamespace(optimized_times={"heun": {5: [0.999, 0.5, 0.2, 0.1, 0.01]}})
    scores = {"uniform": 0.5, "logsnr": 0.7, "karras": 0.6, "quadratic": 0.2, "optimized": table}
    return frontier.measure_frontier(pipe, lambda solver, steps, spacing: {"nfe": 2 * steps - 1,
                                                                             "score": scores[spacing]},
                                     solvers=("heun",), steps=(5, 10))


def test_optimized_rows_only_where_the_model_stores_times():
    pipe = SimpleNamespace(optimized_times={"heun": {5: []}, "dpmpp_2m": {10: []}})
    got = frontier.settings(pipe, ("heun", "dpmpp_2m"), (5, 10))
    assert [s for s in got if s[2] == "optimized"] == [("heun", 5, "optimized"), ("dpmpp_2m", 10, "optimized")]
    assert len(got) == 4 * len(FIXED_SPACINGS) + 2
    assert all(s[2] != "optimized" for s in frontier.settings(SimpleNamespace(optimized_times=None)))


def test_the_table_keeps_the_best_fixed_spacing_and_bolds_optimized_only_when_it_wins():
    rows = _rows(0.9)
    lines = frontier.frontier_table(rows, "score", "score")
    assert lines[2].startswith("| heun | 5 | 9 | logsnr | 70.0% | **90.0%** | 50.0% | 70.0% | 60.0% | 20.0% |")
    assert lines[3].startswith("| heun | 10 | 19 | logsnr | 70.0% | – |")
    assert frontier.best_at(rows, 5, "score")["spacing"] == "optimized"
    assert "**" not in frontier.frontier_table(_rows(0.65), "score", "score")[2]


def test_a_distance_ranks_the_other_way():
    rows = _rows(0.1)  # optimized has the smallest "score": the best distance
    lines = frontier.frontier_table(rows, "score", "distance", "{:.2f}", lower=True)
    assert lines[2].startswith("| heun | 5 | 9 | quadratic | 0.20 | **0.10** |")
    assert frontier.best_at(rows, 5, "score", lower=True)["spacing"] == "optimized"
    assert frontier.best_at(rows, 5, "score", solver="dpmpp_2m") is None
