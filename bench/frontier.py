"""The few-step frontier of a zoo model (issue 16): each deterministic solver at 5, 10 and
20 steps with every fixed step spacing and with the model's own optimized times
(trainers/optimize_steps.py), scored by a model benchmark's measure; per solver and step
count the table keeps the best fixed spacing beside "optimized". Scores are higher-better
shares, or distances with lower=True.

    rows = measure_frontier(pipe, lambda solver, steps, spacing: {...metrics, "nfe": ...})
    lines = frontier_table(rows, score="confident", label="confident digits")

bench/digit_quality.py and bench/text2image.py use it with their own measures.
"""
from typing import Callable

from zoo.diffusion.spacing import FIXED_SPACINGS, OPTIMIZED

STEPS = (5, 10, 20)
SOLVERS = ("dpmpp_2m", "dpmpp_3m", "heun")


def settings(pipe, solvers=SOLVERS, steps=STEPS) -> list:
    """(solver, steps, spacing) of every row: the fixed spacings, and "optimized" where the
    model stores times for that solver and step count."""
    stored = pipe.optimized_times or {}
    out = []
    for solver in solvers:
        for n in steps:
            out += [(solver, n, spacing) for spacing in FIXED_SPACINGS]
            if n in stored.get(solver, {}):
                out.append((solver, n, OPTIMIZED))
    return out


def measure_frontier(pipe, measure: Callable, solvers=SOLVERS, steps=STEPS) -> list:
    """[{solver, steps, spacing, **measure(solver, steps, spacing)}] over settings()."""
    rows = []
    for solver, n, spacing in settings(pipe, solvers, steps):
        rows.append({"solver": solver, "steps": n, "spacing": spacing, **measure(solver, n, spacing)})
        print("frontier", solver, n, spacing, {k: v for k, v in rows[-1].items() if isinstance(v, float)}, flush=True)
    return rows


def _best(rows, score: str, lower: bool):
    return (min if lower else max)(rows, key=lambda r: r[score]) if rows else None


def best_fixed(rows: list, solver: str, steps: int, score: str, lower: bool = False):
    """The best fixed-spacing row of a solver and step count (lower: a distance)."""
    return _best([r for r in rows if (r["solver"], r["steps"]) == (solver, steps) and r["spacing"] != OPTIMIZED],
                 score, lower)


def optimized(rows: list, solver: str, steps: int):
    return next((r for r in rows if (r["solver"], r["steps"], r["spacing"]) == (solver, steps, OPTIMIZED)), None)


def frontier_table(rows: list, score: str, label: str, fmt: str = "{:.1%}", lower: bool = False) -> list:
    """Markdown lines: per solver and step count, NFE, the best fixed spacing and its score,
    "optimized" and its score (a dash where the model stores no times), and every fixed
    spacing's score (higher is better; lower=True for a distance)."""
    pairs = list(dict.fromkeys((r["solver"], r["steps"]) for r in rows))
    spacings = " | ".join(FIXED_SPACINGS)
    lines = [f"| solver | steps | NFE | best fixed spacing | {label} | optimized | {spacings} |",
             "|---" * (6 + len(FIXED_SPACINGS)) + "|"]
    for solver, steps in pairs:
        best, opt = best_fixed(rows, solver, steps, score, lower), optimized(rows, solver, steps)
        each = {r["spacing"]: fmt.format(r[score]) for r in rows if (r["solver"], r["steps"]) == (solver, steps)}
        won = opt is not None and (opt[score] < best[score] if lower else opt[score] > best[score])
        opt_text = "–" if opt is None else (f"**{fmt.format(opt[score])}**" if won else fmt.format(opt[score]))
        lines.append(f"| {solver} | {steps} | {best['nfe']} | {best['spacing']} | {fmt.format(best[score])} | "
                     f"{opt_text} | " + " | ".join(each.get(s, "–") for s in FIXED_SPACINGS) + " |")
    return lines


def best_at(rows: list, steps: int, score: str, lower: bool = False, solver: str = None):
    """The best row at a step count (of one solver, or any), any spacing."""
    return _best([r for r in rows if r["steps"] == steps and solver in (None, r["solver"])], score, lower)
