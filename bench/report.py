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
