"""Render the README's "Measured here" table from benchmarks/results/*.json.

    .venv/bin/python benchmarks/readme_table.py      # rewrites the block between the markers

Only numbers present in the result files appear; nothing is typed in by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BEGIN, END = "<!-- benchmarks:begin -->", "<!-- benchmarks:end -->"


def sampling_rows() -> list[str]:
    path = RESULTS / "sampling_throughput.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    rows = []
    for r in data["results"]:
        rows.append(f"| HF generate, {r['dtype']}, batch {r['batch_size']} "
                    f"({r['prompts']} prompts x {r['k']} samples, <= {r['max_new_tokens']} tokens) "
                    f"| {r['tokens_per_s']} tokens/s | `{path.relative_to(ROOT)}` |")
    cpu = f"{data['cpu']}, {data['torch_threads']} threads, bf16 units: {data['cpu_has_bf16']}"
    rows.append(f"| (machine) | {cpu} | |")
    return rows


def training_rows() -> list[str]:
    path = RESULTS / "training_step.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    return [f"| training step, {r['setting']} | {r['seconds_per_step']} s/step | "
            f"`{path.relative_to(ROOT)}` |" for r in data["results"]]


def table() -> str:
    rows = sampling_rows() + training_rows()
    head = ["| what | measured | from |", "|---|---|---|"]
    return "\n".join([BEGIN, *head, *rows, END])


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    if BEGIN in text:
        start, end = text.index(BEGIN), text.index(END) + len(END)
        text = text[:start] + table() + text[end:]
    else:
        text = text.replace("BENCHMARK_TABLE", table())
    readme.write_text(text)
    print(table())


if __name__ == "__main__":
    main()
