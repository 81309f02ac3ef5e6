"""Masked attention through SDPA with ``enable_gqa=True`` (``models.use_sdpa_gqa``) against
transformers' ``"sdpa"``, which copies each key/value head (``repeat_kv``) whenever there is an
attention mask on the CPU, with the default sampler on the loop's workload: train prompts x 8
samples at T=0.7 and greedy answers on test problems, SmolLM2 float32, at most 48 new tokens.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sdpa_gqa.py            # ~1 h on a busy 2-core CPU
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sdpa_gqa.py --quick    # a small slice

Variants: ``repeat_kv`` (``"sdpa"``, transformers' path) and ``sdpa_gqa``, each at the default
batch size and at ``--big-batch``. All variants run on one loaded model (the attention
implementation is switched between runs), in turn on each chunk of the workload, the order
reversed from one chunk to the next (ABCD DCBA ...), so drift in the load of a shared machine
hits them alike. Each run's wall and CPU seconds are kept: on a shared machine the CPU time of
one thread is the steadier measure. First, one decoding step of a batch over a fixed KV cache
with each attention (the isolated lever). Outputs: the responses of each variant against
``repeat_kv`` at the default batch size (same seed), text and token count of every sample.

Writes benchmarks/results/sdpa_gqa.json (``--quick``: runs/benchmarks/, git-ignored) with a flat
``summary``: the speedups of ``sdpa_gqa`` over ``repeat_kv`` at the default batch size (CPU
seconds) and whether the responses were identical.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from larpo_lite.config import Params
from larpo_lite.models import load_policy, use_sdpa_gqa
from larpo_lite.reports import benchmark_context, environment, write_json
from larpo_lite.sampling import HFSampler
from larpo_lite.tasks import load_split, problem_prompt

RESULTS = Path(__file__).parent / "results"
MODEL = "smollm2-135m-instruct"
BASELINE = "repeat_kv"


def run(model: Any, tok: Any, variant: str, batch_size: int, prompts: list[str],
        **kw: Any) -> tuple[list, float, float]:
    """One variant on ``prompts``: (generations, wall seconds, CPU seconds of this process)."""
    use_sdpa_gqa(model, enable=variant == "sdpa_gqa")
    sampler = HFSampler(model, tok, batch_size=batch_size)  # the default decode (continuous)
    t0, c0 = time.perf_counter(), time.process_time()
    gens = sampler.generate(prompts, **kw)
    return gens, time.perf_counter() - t0, time.process_time() - c0


def measure(model: Any, tok: Any, variants: list[tuple[str, int]], prompts: list[str], chunk: int,
            reps: int, **kw: Any) -> dict[str, dict[str, Any]]:
    """Each variant on each chunk of ``prompts`` in turn, the order reversed from one chunk to
    the next; the whole workload ``reps`` times. Totals per variant and repetition."""
    rows: dict[str, dict[str, Any]] = {}
    outputs: dict[str, list] = {}
    turn = 0
    for rep in range(reps):
        for start in range(0, len(prompts), chunk):
            order = variants if turn % 2 == 0 else variants[::-1]
            turn += 1
            for variant, bs in order:
                name = f"{variant}_b{bs}"
                gens, wall, cpu = run(model, tok, variant, bs, prompts[start:start + chunk], **kw)
                r = rows.setdefault(name, {"attention": variant, "batch_size": bs, "tokens": 0,
                                           "wall_seconds": [0.0] * reps, "cpu_seconds": [0.0] * reps,
                                           "chunk_cpu_seconds": []})
                r["wall_seconds"][rep] += wall
                r["cpu_seconds"][rep] += cpu
                r["chunk_cpu_seconds"].append(round(cpu, 2))
                if rep == 0:
                    r["tokens"] += sum(sum(g.num_tokens) for g in gens)
                    outputs.setdefault(name, []).extend(
                        (tuple(g.texts), tuple(g.num_tokens)) for g in gens)
                print(f"  rep {rep} prompts {start}-{start + chunk} {name}: {wall:.1f} s wall, "
                      f"{cpu:.1f} s CPU, load {os.getloadavg()[0]:.2f}", flush=True)
    base = f"{BASELINE}_b{variants[0][1]}"
    for r in rows.values():
        r["wall_seconds"] = [round(x, 2) for x in r["wall_seconds"]]
        r["cpu_seconds"] = [round(x, 2) for x in r["cpu_seconds"]]
        r["cpu_tokens_per_s"] = round(r["tokens"] / statistics.median(r["cpu_seconds"]), 2)
    for name, r in rows.items():
        b = rows[base]
        r["speedup_cpu"] = round(sum(b["cpu_seconds"]) / sum(r["cpu_seconds"]), 3)
        r["speedup_wall"] = round(sum(b["wall_seconds"]) / sum(r["wall_seconds"]), 3)
        ratios = [x / y for x, y in zip(b["chunk_cpu_seconds"], r["chunk_cpu_seconds"], strict=True)]
        r["speedup_cpu_per_chunk_min_median_max"] = [round(min(ratios), 3),
                                                     round(statistics.median(ratios), 3),
                                                     round(max(ratios), 3)]
        same = [a == b for a, b in zip(outputs[base], outputs[name], strict=True)]
        r["prompts_with_identical_responses"] = sum(same)
        r["responses_identical"] = all(same)
        # the other attention at the same batch size (a batch size changes float rounding)
        twin = f"{BASELINE if r['attention'] != BASELINE else 'sdpa_gqa'}_b{r['batch_size']}"
        r["identical_to_" + twin] = outputs[name] == outputs[twin]
    return rows


@torch.inference_mode()
def decode_step(model: Any, batch: int, context: int, reps: int) -> dict[str, Any]:
    """ms per decoding step of ``batch`` rows over a ``context``-token KV cache, half the rows
    left-padded by 20 (so attention gets a mask), each attention in turn ``reps`` times."""
    from transformers import DynamicCache

    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(100, 10000, (batch, context), generator=gen)
    mask = torch.ones(batch, context, dtype=torch.long)
    mask[: batch // 2, :20] = 0
    use_sdpa_gqa(model, enable=False)
    kv = [(layer.keys, layer.values) for layer in
          model(input_ids=ids, attention_mask=mask, use_cache=True).past_key_values.layers]
    step_mask = torch.cat([mask, mask.new_ones(batch, 1)], dim=1)
    nxt, pos = ids[:, -1:], mask.sum(-1, keepdim=True)
    rows: dict[str, dict[str, list[float]]] = {}
    logits: dict[str, torch.Tensor] = {}
    for rep in range(reps):
        for variant in (BASELINE, "sdpa_gqa") if rep % 2 == 0 else ("sdpa_gqa", BASELINE):
            use_sdpa_gqa(model, enable=variant == "sdpa_gqa")
            walls, cpus = [], []
            for _ in range(5):
                cache = DynamicCache()
                for li, (k, v) in enumerate(kv):
                    cache.update(k, v, li)
                t0, c0 = time.perf_counter(), time.process_time()
                out = model(input_ids=nxt, attention_mask=step_mask, position_ids=pos,
                            past_key_values=cache, use_cache=True, logits_to_keep=1)
                walls.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
            logits[variant] = out.logits
            r = rows.setdefault(variant, {"wall_ms": [], "cpu_ms": []})
            r["wall_ms"].append(round(1000 * statistics.median(walls), 1))
            r["cpu_ms"].append(round(1000 * statistics.median(cpus), 1))
            print(f"  decode step {variant}: {r['wall_ms'][-1]} ms wall, {r['cpu_ms'][-1]} ms CPU",
                  flush=True)
    a, b = logits[BASELINE], logits["sdpa_gqa"]
    return {"batch": batch, "context": context, "reps": reps, **rows,
            "speedup_cpu": round(statistics.median(rows[BASELINE]["cpu_ms"])
                                 / statistics.median(rows["sdpa_gqa"]["cpu_ms"]), 3),
            "logits_max_abs_diff_over_max_abs": float((a - b).abs().max() / a.abs().max())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a small slice (validates the script)")
    ap.add_argument("--train-prompts", type=int, default=64)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--test-problems", type=int, default=100)
    ap.add_argument("--max-new-tokens", type=int, default=Params().max_new_tokens)
    ap.add_argument("--batch-size", type=int, default=Params().batch_size)
    ap.add_argument("--big-batch", type=int, default=128, help="the second batch size measured")
    ap.add_argument("--reps", type=int, default=1, help="passes over each workload")
    ap.add_argument("--sample-chunk", type=int, default=16,
                    help="prompts per interleaved chunk (16 x 8 samples fill a batch of 128)")
    ap.add_argument("--greedy-chunk", type=int, default=100, help="problems per interleaved chunk")
    ap.add_argument("--step-context", type=int, default=160,
                    help="KV cache length of the decoding-step timing")
    args = ap.parse_args()
    if args.quick:
        args.train_prompts, args.test_problems = 4, 8
        args.sample_chunk, args.greedy_chunk, args.step_context = 2, 4, 32
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_start = os.getloadavg()

    model, tok = load_policy(MODEL, device="cpu", dtype="float32")
    default_on = model.config._attn_implementation
    train = load_split("train", args.train_prompts)
    test = load_split("test", args.test_problems)
    train_prompts = [problem_prompt(p, tok) for p in train]
    test_prompts = [problem_prompt(p, tok) for p in test]
    variants = [(a, bs) for bs in (args.batch_size, args.big_batch) for a in (BASELINE, "sdpa_gqa")]
    for a, bs in variants:  # warm-up
        run(model, tok, a, bs, test_prompts[:2], k=1, temperature=0.0, max_new_tokens=4)

    print(f"decoding step: batch {args.batch_size}, context {args.step_context}", flush=True)
    step = decode_step(model, args.batch_size, args.step_context, reps=4)
    print(f"sampling: {len(train)} prompts x {args.k} at T={args.temperature}", flush=True)
    sampled = measure(model, tok, variants, train_prompts, args.sample_chunk, args.reps, k=args.k,
                      temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=0)
    print(f"greedy: {len(test)} problems", flush=True)
    greedy = measure(model, tok, variants, test_prompts, args.greedy_chunk, args.reps, k=1, temperature=0.0,
                     max_new_tokens=args.max_new_tokens)

    b, big = args.batch_size, args.big_batch
    record = {
        "benchmark": "sdpa_gqa",
        "summary": {
            "speedup_decode_step_cpu": step["speedup_cpu"],
            "speedup_sampling_cpu": sampled[f"sdpa_gqa_b{b}"]["speedup_cpu"],
            "speedup_sampling_cpu_big_batch": sampled[f"sdpa_gqa_b{big}"]["speedup_cpu"],
            "speedup_greedy_cpu": greedy[f"sdpa_gqa_b{b}"]["speedup_cpu"],
            "speedup_greedy_cpu_big_batch": greedy[f"sdpa_gqa_b{big}"]["speedup_cpu"],
            "sampling_identical": sampled[f"sdpa_gqa_b{b}"]["responses_identical"],
            "greedy_identical": greedy[f"sdpa_gqa_b{b}"]["responses_identical"],
        },
        "baseline": f"attn_implementation 'sdpa' (transformers {environment().get('transformers')}): "
                    "with an attention mask on the CPU its use_gqa_in_sdpa says no and repeat_kv "
                    "copies the 3 key/value heads to 9 before SDPA",
        "lever": "attn_implementation 'sdpa_gqa' (larpo_lite.models.use_sdpa_gqa): SDPA with "
                 "enable_gqa=True, no copies",
        "load_policy_default": default_on,
        "model": MODEL, "dtype": "float32",
        "settings": {"train_prompts": len(train), "k": args.k, "temperature": args.temperature,
                     "test_problems": len(test), "max_new_tokens": args.max_new_tokens,
                     "batch_sizes": [b, big], "reps": args.reps, "quick": args.quick,
                     "sample_chunk": args.sample_chunk, "greedy_chunk": args.greedy_chunk,
                     "sampler": "HFSampler(decode='continuous'), the default"},
        "decode_step": step,
        "sampling": sampled,
        "greedy": greedy,
        "note": "variants in turn on each chunk of the workload (order reversed chunk to chunk), "
                "one loaded model; cpu_seconds: CPU time of this process (the machine is shared: "
                "its wall time swings with the other jobs, its CPU time much less); speedup_cpu "
                "and speedup_wall: the baseline's total over the variant's, every variant against "
                "repeat_kv at the default batch size; responses compared (text and token count of "
                "every sample) with that baseline, same seed",
        **benchmark_context("benchmarks/sdpa_gqa.py", sys.argv[1:], started, load_start[0]),
    }
    out = (RESULTS.parents[1] / "runs" / "benchmarks" / "sdpa_gqa_quick.json" if args.quick
           else RESULTS / "sdpa_gqa.json")
    write_json(record, out)
    print(record["summary"])
    print("wrote", out)


if __name__ == "__main__":
    main()
