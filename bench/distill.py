"""Distilled students against their teachers' best solvers at the same network passes.
Writes bench/out/distill.md, distill.json and distill.png.

  python bench/distill.py [--samples 20000] [--seeds 3] [--quick]

For each teacher (a bundled toy model) and each of its bundled students: the sliced
Wasserstein distance (SWD, zoo.diffusion.metrics) to fresh true points over the Monte-Carlo
floor (the same distance between two true sets, zoo.pipelines.toy2d_views.noise_floor) at 1, 2 and 4
network passes. The teacher's number at a budget is its best solver x spacing whose NFE fits
the budget (bench/solvers.py's steps_for_nfe); for toy-gmm the exact mixture denoiser's best
solver is shown too (the solver limit without network error). For reflow: the mean path
curvature (zoo.diffusion.distill.path_curvature, 64 Euler steps) of teacher and student.
Issue 17's targets: gmm student within 1.5x the floor at 4 passes, within 3x at 1 pass.

  python bench/distill.py --digits STUDENT [--digits STUDENT ...]   # bench/out/distill_digits.md

Digits: students of the class-conditional mnist-cond (registry names or checkpoint folders,
w an input) at each step count they support, against the teacher with DPM-Solver++(2M) at
20 steps (40 network passes with CFG), all at w = 1: the share of samples the digit
classifier of bench/digit_quality.py calls the requested class (on-class) and the share it
calls any digit with confidence > 0.9 (confident), 500 samples, 50 per class. Issue 17's
targets: the 4-step student on-class >= 95% and confident >= 90%, the 1-step one on-class >= 85%.
"""
import argparse
import json
import statistics
from pathlib import Path

import torch

import zoo
from bench.solvers import steps_for_nfe
from zoo.diffusion import SOLVERS, SPACINGS, sample_info
from zoo.diffusion.distill import path_curvature
from zoo.pipelines.toy2d import exact_pipeline
from zoo.pipelines.toy2d_views import noise_floor, trajectories

PASSES = (1, 2, 4)
OUT = Path(__file__).resolve().parent / "out"
# teacher -> its bundled students (registry names)
STUDENTS = {"toy-gmm": ("toy-gmm-pd4", "toy-gmm-pd2", "toy-gmm-pd1", "toy-gmm-cd"),
            "toy-moons": ("toy-moons-cd",), "toy-moons-flow": ("toy-moons-reflow",)}


def swd(pipe, points, seed: int) -> float:
    return pipe.distance_to_data(points.float(), seed=12345 + seed)


def floor(dataset: str, n: int, seeds: int) -> float:
    return statistics.mean(noise_floor(dataset, n, s) for s in range(seeds))


def best_solver(pipe, nfe: int, n: int, seeds: int, dtype=torch.float32) -> tuple:
    """(mean SWD, solver, spacing, NFE used) of the best solver x spacing within `nfe` passes."""
    best = None
    for solver in SOLVERS:
        steps = steps_for_nfe(solver, nfe)
        # with 1 or 2 steps every spacing is the same grid (t_max, then t_min): measured once
        for spacing in (SPACINGS if steps > 2 else ["uniform"]):
            try:
                runs = [sample_info(pipe.denoiser, (n, 2), schedule=pipe.schedule, steps=steps, solver=solver,
                                    spacing=spacing, seed=s * n, dtype=dtype) for s in range(seeds)]
            except ValueError:  # a spacing this model has no times for (per-model optimized times)
                continue
            if runs[0].nfe > nfe:
                continue
            score = statistics.mean(swd(pipe, r.x0, s) for s, r in enumerate(runs))
            if best is None or score < best[0]:
                best = (score, solver, spacing, runs[0].nfe)
    return best


def student_row(pipe, n: int, seeds: int) -> dict:
    """{passes: mean SWD} at the student's supported passes among PASSES (reflow: Euler)."""
    supported = pipe.distill.steps or PASSES
    return {k: statistics.mean(swd(pipe, pipe(n=n, steps=k, solver="euler", seed=s * n).points, s)
                               for s in range(seeds)) for k in PASSES if k in supported}


def curvature(pipe, n: int = 2000, steps: int = 64) -> float:
    path, times, _ = trajectories(pipe, n, steps, "euler", 0, "uniform")
    return path_curvature(path, times)


def measure(n: int, seeds: int) -> dict:
    results = {}
    for teacher_name, students in STUDENTS.items():
        teacher = zoo.load(teacher_name)
        row = {"floor": floor(teacher.dataset, n, seeds),
               "teacher": {k: best_solver(teacher, k, n, seeds) for k in PASSES},
               "students": {name: student_row(zoo.load(name), n, seeds) for name in students}}
        if teacher_name == "toy-gmm":
            row["exact"] = {k: best_solver(exact_pipeline(), k, n, seeds, torch.float64) for k in PASSES}
        if teacher.schedule == "flow":
            row["curvature"] = {teacher_name: curvature(teacher), **{s: curvature(zoo.load(s)) for s in students}}
        results[teacher_name] = row
        print(teacher_name, json.dumps(row, default=str)[:400], flush=True)
    return results


def _cell(value, fl) -> str:
    return f"{value:.4f} ({value / fl:.2f}x)" if value is not None else "-"


def markdown(results: dict, n: int, seeds: int) -> str:
    lines = [f"{n} samples x {seeds} seeds; each cell: SWD to fresh true points (its ratio to the Monte-Carlo floor). "
             "Teacher: its best solver x spacing within the passes.", "",
             "| teacher / student | floor | " + " | ".join(f"{k} pass{'es' * (k > 1)}" for k in PASSES) + " |",
             "|---|---|" + "---|" * len(PASSES)]
    for name, row in results.items():
        fl = row["floor"]
        best = " | ".join(f"{_cell(row['teacher'][k][0], fl)} {row['teacher'][k][1]}/{row['teacher'][k][2]}"
                          for k in PASSES)
        lines.append(f"| {name} (teacher, best solver) | {fl:.4f} | {best} |")
        if "exact" in row:
            lines.append("| exact mixture denoiser, best solver | | " + " | ".join(
                f"{_cell(row['exact'][k][0], fl)} {row['exact'][k][1]}/{row['exact'][k][2]}" for k in PASSES) + " |")
        for student, cells in row["students"].items():
            lines.append(f"| {student} | | " + " | ".join(_cell(cells.get(k), fl) for k in PASSES) + " |")
    for name, row in results.items():
        if "curvature" in row:
            lines += ["", "Mean path curvature (64 Euler steps; 0 = straight lines at constant speed): " +
                      ", ".join(f"{k} {v:.4f}" for k, v in row["curvature"].items())]
    return "\n".join(lines) + "\n"


def targets(results: dict) -> list:
    """Issue 17's toy targets, met or not."""
    row, lines = results["toy-gmm"], []
    fl = row["floor"]
    for student, passes, limit in (("toy-gmm-pd4", 4, 1.5), ("toy-gmm-cd", 4, 1.5), ("toy-gmm-pd1", 1, 3.0),
                                   ("toy-gmm-cd", 1, 3.0)):
        value = row["students"][student][passes]
        teacher = row["teacher"][passes][0]
        lines.append(f"{student} at {passes} pass(es): {value / fl:.2f}x floor (target <= {limit}x: "
                     f"{'met' if value <= limit * fl else 'NOT met'}; teacher's best at {passes}: {teacher / fl:.2f}x)")
    return lines


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4))
    for ax, (name, row) in zip(axes, results.items()):
        fl = row["floor"]
        ax.plot(PASSES, [row["teacher"][k][0] / fl for k in PASSES], "k-o", label=f"{name}: best solver")
        if "exact" in row:
            ax.plot(PASSES, [row["exact"][k][0] / fl for k in PASSES], "k:o", label="exact denoiser: best solver")
        for student, cells in row["students"].items():
            ks = sorted(cells)
            ax.plot(ks, [cells[k] / fl for k in ks], "-s" if len(ks) > 1 else "s", ms=8, label=student)
        ax.axhline(1.0, color="gray", ls="--", label="floor")
        ax.set(xscale="log", yscale="log", xticks=PASSES, xticklabels=PASSES, xlabel="network passes",
               ylabel="SWD / floor", title=name)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


DIGIT_W, DIGIT_TEACHER, DIGIT_SAMPLES = 1.0, ("mnist-cond", "dpmpp_2m", 20), 500


def digit_rows(students: list, n: int = DIGIT_SAMPLES) -> list:
    """[{model, steps, passes, on_class, confident}]: the teacher at 20 steps, then each
    student at each of its step counts, at w = DIGIT_W."""
    from bench.digit_quality import Reference, draw, load_model

    ref, rows = Reference(), []
    name, solver, steps = DIGIT_TEACHER
    runs = [(name, load_model(name)[1], solver, steps)]
    for spec in students:
        pipe = load_model(spec)[1]
        runs += [(spec, pipe, "ddim", k) for k in pipe.distill.steps]
    for spec, pipe, solver, steps in runs:
        s = draw(pipe, n, solver, steps, guidance=DIGIT_W)
        m = ref.measure(s["x"], s["labels"])
        rows.append({"model": spec, "steps": steps, "passes": s["passes"], "on_class": m["on_class"],
                     "confident": m["confident"], "frechet_ratio": m["frechet_ratio"]})
        print(rows[-1], flush=True)
    return rows


def digit_markdown(rows: list) -> str:
    lines = [f"Digits at w = {DIGIT_W:g}, {DIGIT_SAMPLES} samples (50 per class), judged by bench/digit_quality.py's "
             "classifier; Frechet distance to the test digits in its features over the train-vs-test reference (guided "
             "samples are less varied than data, so the teacher's own ratio is the comparison).", "",
             "| model | steps | network passes | on-class | confident | FD ratio |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['steps']} | {r['passes']} | {r['on_class']:.1%} | {r['confident']:.1%} | "
              f"{r['frechet_ratio']:.2f} |" for r in rows]
    for r in rows[1:]:
        goals = {4: (0.95, 0.90), 1: (0.85, None)}.get(r["steps"])
        if goals:
            met = r["on_class"] >= goals[0] and (goals[1] is None or r["confident"] >= goals[1])
            lines.append(f"\n* {r['model']} at {r['steps']} step(s): on-class {r['on_class']:.1%}, confident "
                         f"{r['confident']:.1%} (target on-class >= {goals[0]:.0%}"
                         + (f", confident >= {goals[1]:.0%}" if goals[1] else "") + f"): {'met' if met else 'NOT met'}")
    return "\n".join(lines) + "\n"


def update_digit_cards(rows: list) -> None:
    """Each bundled student's numbers into its config.json 'eval' (the Guidance tab's model
    line reads them) and its card, beside the teacher's."""
    from zoo.hub import record_evaluation

    teacher, text = rows[0], digit_markdown(rows)
    for r in rows[1:]:
        folder = Path(__file__).resolve().parents[1] / "weights" / r["model"]
        if folder.is_dir():
            record_evaluation(folder, {"w": DIGIT_W, "steps": r["steps"], "on_class": round(r["on_class"], 4),
                                       "confident": round(r["confident"], 4),
                                       "frechet_ratio": round(r["frechet_ratio"], 3),
                                       "teacher_on_class": round(teacher["on_class"], 4),
                                       "teacher_passes": teacher["passes"]}, text, "bench/distill.py --digits")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=20_000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="2,000 samples, 1 seed: a smoke run")
    ap.add_argument("--digits", action="append", help="a student of mnist-cond (repeatable): the digit table only")
    ap.add_argument("--update-card", action="store_true", help="with --digits: record the numbers in the bundled "
                    "students' folders")
    args = ap.parse_args()
    if args.digits:
        from bench.report import write_report

        rows = digit_rows(args.digits)
        write_report("distill_digits", {"rows": rows}, digit_markdown(rows))
        if args.update_card:
            update_digit_cards(rows)
        return
    n, seeds = (2000, 1) if args.quick else (args.samples, args.seeds)
    OUT.mkdir(parents=True, exist_ok=True)
    results = measure(n, seeds)
    text = markdown(results, n, seeds) + "\n" + "\n".join(f"* {line}" for line in targets(results)) + "\n"
    (OUT / "distill.md").write_text(text)
    (OUT / "distill.json").write_text(json.dumps(results, indent=1, default=str))
    plot(results, OUT / "distill.png")
    print(text)


if __name__ == "__main__":
    main()
