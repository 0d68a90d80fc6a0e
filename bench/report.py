"""Where benchmarks write their results: bench/out/<name>.md (the table, also printed) and
bench/out/<name>.json (every number)."""
import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def write_report(name: str, result: dict, text: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.md").write_text(text)
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2))
    print(text)


def model_parser(doc: str, default_model: str, report: str):
    """The parser of a bench that compares models: --model (repeatable), --threads, --report."""
    import argparse

    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append",
                    help=f"a zoo entry or checkpoint folder (repeatable; default {default_model})")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    ap.add_argument("--report", default=report, help="bench/out/REPORT.md and .json")
    return ap


def compare_models(args, default_model: str, measure, markdown) -> None:
    """measure(spec) for every --model (in order), then one report of them all."""
    import torch

    torch.set_num_threads(args.threads)
    results = [measure(spec) for spec in args.model or [default_model]]
    write_report(args.report, {"models": results}, markdown(results))
