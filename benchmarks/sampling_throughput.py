"""Sampling throughput of the HF-generate backend, fp32 against bf16, on the same prompts, and
with each prompt encoded once (``share_prefix``, the default) against k times
(``num_return_sequences``).

    .venv/bin/python benchmarks/sampling_throughput.py [--prompts 8] [--k 16] [--max-new-tokens 64]
        [--share-prefix on,off]

Writes benchmarks/results/sampling_throughput.json (tokens/s per dtype and batch size, with
the machine's CPU flags and thread count). Runs the embedded SmolLM2-135M-Instruct.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from larpo_lite.models import cpu_has_bf16, load_policy
from larpo_lite.reports import cpu_model, environment, write_json
from larpo_lite.sampling import HFSampler
from larpo_lite.tasks import build_prompt, load_split

OUT = Path(__file__).parent / "results" / "sampling_throughput.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-sizes", default="32,128")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--share-prefix", default="on", help="on, off or on,off")
    ap.add_argument("--append", action="store_true", help="keep the rows already in the file")
    args = ap.parse_args()
    old = json.loads(OUT.read_text())["results"] if args.append and OUT.is_file() else []
    rows = []
    when = datetime.now(UTC).isoformat(timespec="seconds")
    for dtype in args.dtypes.split(","):
        model, tok = load_policy("smollm2-135m-instruct", device="cpu", dtype=dtype)
        prompts = [build_prompt(p.question, tok) for p in load_split("validation", args.prompts)]
        shares = [x.strip() == "on" for x in args.share_prefix.split(",")]
        for bs, share in [(int(b), sh) for b in args.batch_sizes.split(",") for sh in shares]:
            sampler = HFSampler(model, tok, batch_size=bs, share_prefix=share)
            sampler.generate(prompts[:1], k=2, temperature=0.7, max_new_tokens=4)  # warm-up
            t0 = time.perf_counter()
            sampler.generate(prompts, k=args.k, temperature=0.7, max_new_tokens=args.max_new_tokens,
                             seed=0)
            wall = time.perf_counter() - t0
            st = sampler.last_stats
            row = {"dtype": dtype, "batch_size": bs, "share_prefix": share, "prompts": len(prompts), "k": args.k,
                   "max_new_tokens": args.max_new_tokens, "tokens": st.tokens,
                   "seconds": round(wall, 2), "tokens_per_s": round(st.tokens / wall, 1),
                   "measured": when, "argv": sys.argv[1:]}
            print(row, flush=True)
            rows.append(row)
        del model
    write_json({"benchmark": "sampling_throughput", "cpu": cpu_model(), "cpu_has_bf16": cpu_has_bf16(),
                "torch_threads": torch.get_num_threads(), "environment": environment(),
                "command": "python benchmarks/sampling_throughput.py [--append] ...",
                "results": old + rows}, OUT)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
