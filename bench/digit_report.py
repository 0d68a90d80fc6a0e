"""Markdown tables and model-card records of bench/digit_quality.py's results: the
per-solver table of each model, the few-step frontier, and the `eval` numbers the
Unconditional tab reads (an unconditional model's) or that sit beside bench/guidance.py's
(the class-conditional model's, prefixed `unguided_`)."""
from pathlib import Path

from bench.digit_quality import CONFIDENT, HEADLINE, REFERENCE_STEPS


def frontier_markdown(r: dict) -> str:
    """Two tables (Frechet distance to the test digits over the train-vs-test reference,
    which sees collapse and imbalance; the confident share, which alone does not: a sampler
    that draws one crisp digit class scores high) and issue 16's target line."""
    from bench import frontier

    ref, rows = r["reference_row"], r["rows"]
    lines = [f"Few-step frontier of `{r['model']}` (w = {r.get('guidance', 0.0):g}): {r['samples']} samples per row "
             "(sample i has seed i). Bold: "
             "optimized beats the best fixed spacing.", "",
             "Frechet distance in the digit classifier's features, as a multiple of the train-vs-test reference "
             "(lower is better):", ""]
    lines += frontier.frontier_table(rows, "frechet_ratio", "FD ratio (best fixed)", "{:.2f}", lower=True)
    lines += ["", f"Share of confident digits (> {CONFIDENT}; real test digits "
                  f"{pct(r['reference']['real_confident'])}):", ""]
    lines += frontier.frontier_table(rows, "confident", "confident (best fixed)")
    ten = frontier.best_at(rows, 10, "confident", solver=REFERENCE_STEPS[0])
    gap = 100 * (ref["confident"] - ten["confident"])
    lines += ["", f"Reference: {ref['solver']} {ref['steps']} steps (logsnr) {pct(ref['confident'])} confident, FD "
              f"ratio {ref['frechet_ratio']:.2f}. {ten['solver']} at 10 steps, its best spacing ({ten['spacing']}): "
              f"{pct(ten['confident'])}, FD ratio {ten['frechet_ratio']:.2f}, {gap:.1f} points below (issue 16's "
              f"target: within 2 points): {'met' if gap <= 2 else 'NOT met'}."]
    return "\n".join(lines) + "\n"


def pct(v: float) -> str:
    return f"{v:.1%}"


def model_table(m: dict, n: int) -> list:
    cond = m["conditional"]
    kind = f"class-conditional, w = 0 (no guidance), {n // 10} per class" if cond else "unconditional"
    first = m["rows"][0] if m["rows"] else {}
    against = (f"; nearest training digits among its own training set, {first['memorisation_against']} (real test "
               f"digits' 1st percentile {first['nn_p1_real']:.3f})") if "memorisation_against" in first else ""
    lines = [f"`{m['model']}` ({kind}), {n} samples per row{against}:", "",
             "| solver | steps | autoguidance | NFE (passes) | confident" + (" | requested class" if cond else "")
             + " | samples per class 0-9 (%) | Frechet distance (x reference) | nearest-training 1st pct"
               " | closer than real 1st pct | seconds |",
             "|---|---|---|---|---|" + ("---|" if cond else "") + "---|---|---|---|---|"]
    for r in m["rows"]:
        classes = " / ".join(f"{100 * s:.0f}" for s in r["class_shares"])
        guided = f"w = {r['autoguidance']:g} ({r['guide']})" if r.get("autoguidance") else "–"
        lines.append(f"| {r['solver']} | {r['steps']} | {guided} | {r['nfe']} ({r.get('passes', r['nfe'])}) | "
                     f"{pct(r['confident'])}"
                     + (f" | {pct(r['on_class'])}" if cond else "")
                     + f" | {classes} | {r['frechet_distance']:.2f} (x{r['frechet_ratio']:.2f}) | {r['nn_p1']:.3f}"
                       f" | {pct(r['closer_than_real_p1'])} | {r['seconds']} |")
    if m["vlb_bits_per_dim_test"] is not None:
        lines += ["", f"Variational bound on the 500 real test digits: **{m['vlb_bits_per_dim_test']:.3f} bits/dim** "
                      "(1000-step discretisation, 200 sampled terms)."]
    return lines + [""]


def markdown(r: dict) -> str:
    ref = r["reference"]
    lines = [f"Digit classifier (trained on 4,500 real digits): **{ref['classifier_test_accuracy']:.1%}** accuracy on "
             f"the 500 held-out test digits, {ref['real_confident']:.1%} of which it classifies with confidence > "
             f"{CONFIDENT} (the score of a perfect generator). Frechet distance in its features to the test digits: "
             f"**{ref['frechet_reference']:.2f}** for 500 real training digits (the reference). Nearest training "
             f"digit of the real test digits among mnist-offline's 4,500: 1st percentile **{ref['nn_p1']:.3f}** (RMS "
             "pixel distance on [-1, 1]; a model trained on more digits is compared with its own training set); "
             "a model that copies training digits puts more than 1% of its samples below it.", ""]
    for m in r["models"]:
        lines += model_table(m, r["samples"])
    return "\n".join(lines)


def headline(m: dict, autoguided: bool = False) -> dict | None:
    """The HEADLINE row, unguided or (autoguided) with autoguidance; None if not measured."""
    return next((r for r in m["rows"] if (r["solver"], r["steps"]) == HEADLINE
                 and bool(r.get("autoguidance")) == autoguided), None)


def quality_numbers(row: dict, prefix: str) -> dict:
    """One row's card numbers, keys prefixed (the tab's model line reads them)."""
    return {f"{prefix}confident_digits": round(row["confident"], 4),
            f"{prefix}confident_solver": f"{HEADLINE[0]}, {HEADLINE[1]} steps",
            f"{prefix}class_share_min": round(row["class_share_min"], 4),
            f"{prefix}class_share_max": round(row["class_share_max"], 4),
            f"{prefix}frechet_distance": round(row["frechet_distance"], 3),
            f"{prefix}nn_p1": round(row["nn_p1"], 4),
            f"{prefix}closer_than_real_p1": round(row["closer_than_real_p1"], 4)}


def eval_numbers(m: dict, ref: dict) -> dict:
    """config.json 'eval' keys. The unconditional model's are read by the Unconditional tab
    (confident_digits, confident_solver, vlb_bits_per_dim_test, and autoguided_* with the
    autoguidance w and guide); the conditional model's carry an `unguided_` prefix beside
    bench/guidance.py's guided numbers."""
    h, prefix = headline(m), "unguided_" if m["conditional"] else ""
    numbers = {**quality_numbers(h, prefix),
               f"{prefix}confident_by_solver": {label(r): round(r["confident"], 4) for r in m["rows"]},
               "frechet_reference": round(ref["frechet_reference"], 3), "nn_p1_real": round(h["nn_p1_real"], 4),
               "real_confident": round(ref["real_confident"], 4),
               "classifier_test_accuracy": round(ref["classifier_test_accuracy"], 4)}
    guided = headline(m, autoguided=True)
    if guided is not None:
        numbers.update(quality_numbers(guided, "autoguided_"), autoguidance_w=guided["autoguidance"],
                       autoguidance_guide=guided["guide"])
    if m["conditional"]:
        numbers["unguided_on_class"] = round(h["on_class"], 4)
    if m["vlb_bits_per_dim_test"] is not None:
        numbers["vlb_bits_per_dim_test"] = round(m["vlb_bits_per_dim_test"], 4)
    return numbers


def label(row: dict) -> str:
    """'dpmpp_2m 20', or 'dpmpp_2m 20 autoguided w=1' for an autoguided row."""
    return f"{row['solver']} {row['steps']}" + (f" autoguided w={row['autoguidance']:g}" if row.get("autoguidance")
                                                 else "")


SECTION = "\n### Unguided quality (bench/digit_quality.py)\n\n"


def merged_card_text(folder: Path, text: str) -> tuple:
    """(source, text) for record_evaluation that keeps another bench's evaluation section
    (bench/guidance.py on mnist-cond) and puts this one after it, replacing an earlier copy."""
    card = (folder / "README.md").read_text()
    if "\n## Evaluation (" not in card:
        return "bench/digit_quality.py", text
    header, _, body = card.split("\n## Evaluation (", 1)[1].partition("\n\n")
    source = header.rstrip(")").replace("; bench/digit_quality.py", "")
    if source == "bench/digit_quality.py":
        return source, text
    return f"{source}; bench/digit_quality.py", body.split(SECTION)[0].rstrip() + "\n" + SECTION + text


def update_card(m: dict, r: dict) -> None:
    """Record one bundled model's numbers in its config.json ('eval') and model card."""
    import json

    from zoo.hub import record_evaluation

    folder = Path(m["folder"])
    text = markdown({**r, "models": [m]})
    numbers = eval_numbers(m, r["reference"])
    if m["conditional"]:  # keep bench/guidance.py's numbers beside these
        numbers = {**json.loads((folder / "config.json").read_text()).get("eval", {}), **numbers}
        source, text = merged_card_text(folder, text)
    else:
        source = "bench/digit_quality.py"
    record_evaluation(folder, numbers, text, source)
