"""Main-environment options for greedy answering beside the default sampler: HF generate with a
static KV cache, and the same compiled with ``torch.compile`` (inductor, CPU), against plain
generate (the old path) and the default decode loop, on the same test problems, in turn per chunk.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sampling_options.py            # ~10 min
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sampling_options.py --quick    # 16 problems

Greedy only: the compiled model is traced for fixed shapes (a static cache of the batch's
length), which greedy answering of fixed-size batches can keep; sampling k per prompt with rows
leaving the batch changes shapes every step. The first compiled chunk includes compilation,
reported apart (``compile_seconds``). Writes benchmarks/results/sampling_options.json
(``--quick``: runs/benchmarks/).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from larpo_lite.models import cpu_has_bf16, load_policy
from larpo_lite.reports import cpu_model, environment, write_json
from larpo_lite.sampling import HFSampler
from larpo_lite.tasks import load_split, problem_prompt

RESULTS = Path(__file__).parent / "results"
OPTIONS = ("generate", "generate_static", "generate_static_compiled", "continuous")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--problems", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    args = ap.parse_args()
    if args.quick:
        args.problems, args.batch_size = 16, 16
    started = datetime.now(UTC).isoformat(timespec="seconds")
    model, tok = load_policy("smollm2-135m-instruct", device="cpu", dtype="float32")
    problems = load_split("test", args.problems)
    prompts = [problem_prompt(p, tok) for p in problems]
    plain_forward = model.forward
    compiled_forward = torch.compile(plain_forward, dynamic=False)

    def run(option: str, part: list[str]) -> tuple[list[str], float, int]:
        static = option.startswith("generate_static")
        model.generation_config.cache_implementation = "static" if static else None
        model.forward = compiled_forward if option.endswith("compiled") else plain_forward
        sampler = HFSampler(model, tok, batch_size=args.batch_size,
                            decode="continuous" if option == "continuous" else "generate")
        try:
            t0 = time.perf_counter()
            gens = sampler.generate(part, k=1, temperature=0.0, max_new_tokens=args.max_new_tokens)
            return [g.texts[0] for g in gens], time.perf_counter() - t0, sum(g.num_tokens[0] for g in gens)
        finally:
            model.generation_config.cache_implementation = None
            model.forward = plain_forward

    rows: dict[str, dict[str, Any]] = {o: {"tokens": 0, "texts": [], "chunks": [], "chunk_tokens": []}
                                       for o in OPTIONS}
    for start in range(0, len(prompts), args.batch_size):
        part = prompts[start:start + args.batch_size]
        for o in OPTIONS:
            texts, sec, tokens = run(o, part)
            r = rows[o]
            r["texts"] += texts
            r["tokens"] += tokens
            r["chunks"].append(round(sec, 2))
            r["chunk_tokens"].append(tokens)
            print(f"  {o}: problems {start}-{start + len(part)}: {sec:.1f} s", flush=True)
    base = rows["generate"]["texts"]
    out: dict[str, Any] = {}
    for o, r in rows.items():
        out[o] = {"seconds": round(sum(r["chunks"]), 2), "tokens": r["tokens"],
                  "tokens_per_s": round(r["tokens"] / sum(r["chunks"]), 2),
                  "identical_to_generate": sum(a == b for a, b in zip(base, r["texts"], strict=True)),
                  "chunk_seconds": r["chunks"], "chunk_tokens": r["chunk_tokens"]}
        if o.endswith("compiled") and len(r["chunks"]) > 1:  # the first chunk compiles
            out[o]["tokens_per_s_after_first_chunk"] = round(
                sum(r["chunk_tokens"][1:]) / sum(r["chunks"][1:]), 2)
    record = {
        "benchmark": "sampling_options",
        "summary": {o: out[o]["tokens_per_s"] for o in OPTIONS},
        "workload": {"greedy_test_problems": len(problems), "batch_size": args.batch_size,
                     "max_new_tokens": args.max_new_tokens, "quick": args.quick},
        "options": out,
        "note": "tokens_per_s: generated tokens over wall time, options in turn per chunk; the "
                "compiled option's first chunk includes torch.compile's tracing and code generation "
                "(every new prompt width recompiles: dynamic=False)",
        "cpu": cpu_model(), "cpu_has_bf16": cpu_has_bf16(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "torch_threads": torch.get_num_threads(),
        "load_average_end": round(os.getloadavg()[0], 2), "environment": environment(),
        "measured": started, "command": "python benchmarks/sampling_options.py " + " ".join(sys.argv[1:]),
    }
    path = (RESULTS.parents[1] / "runs" / "benchmarks" / "sampling_options_quick.json" if args.quick
            else RESULTS / "sampling_options.json")
    write_json(record, path)
    print(record["summary"])
    print("wrote", path)


if __name__ == "__main__":
    main()
