"""The shared-prompt list forward against one full sequence per candidate, in one run.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/list_forward.py [--reps 7] [--lists 2]

Writes benchmarks/results/list_forward.json. Times one training micro-batch as the trainer
runs it (tokenising, the policy forward, the ListMLE loss against cached reference log-probs,
the backward), on the embedded SmolLM2-135M-Instruct in float32 with the default LoRA (r=16 on
the attention projections), for lists of K = 2, 4, 8 with ``share_prompt`` True and False.
Seconds per list = the micro-batch's wall time / its lists. The two settings and the three K
alternate within every repetition (the order flips each time) after an untimed warm-up round,
and the medians over repetitions are reported: other load on the machine hits both alike.

Prompts are mini-GSM train questions rendered with the chat template and the answer-format
instruction, as the loop renders them; the K responses of a list are the worked solutions of K
consecutive problems (so all differ), each cut to at most ``--response-tokens`` tokens, about
the mean length of the default preset's sampled answers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from larpo_lite import losses as L
from larpo_lite import trainer as T
from larpo_lite.logprobs import ReferenceCache
from larpo_lite.models import load_policy
from larpo_lite.reports import cpu_model, environment, write_json
from larpo_lite.tasks import load_split, problem_prompt

OUT = Path(__file__).parent / "results" / "list_forward.json"
MODEL = "smollm2-135m-instruct"
KS = (2, 4, 8)


def build_lists(tok: Any, n_lists: int, k: int, response_tokens: int) -> list[T.RankedList]:
    """``n_lists`` lists of K responses: prompt j with the solutions of problems j..j+K-1."""
    problems = load_split("train", n_lists + k)

    def cut(text: str) -> str:
        ids = tok(text, add_special_tokens=False)["input_ids"][:response_tokens]
        return tok.decode(ids)

    return [T.RankedList(problem_prompt(problems[j], tok),
                         [cut(p.solution) for p in problems[j : j + k]]) for j in range(n_lists)]


def time_step(model: Any, tok: Any, lists: list[T.RankedList], cache: ReferenceCache,
              config: T.TrainConfig) -> float:
    """Wall seconds of one micro-batch: the trainer's forward and loss, then the backward."""
    model.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    loss, _ = T._micro_step(model, tok, lists, cache, config, L.get_loss(config.objective), {},
                            torch.device("cpu"))
    loss.backward()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7, help="timed repetitions (medians reported)")
    ap.add_argument("--lists", type=int, default=2, help="lists per micro-batch")
    ap.add_argument("--response-tokens", type=int, default=25, help="tokens per response, at most")
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    torch.manual_seed(0)
    model, tok = load_policy(args.model, device="cpu", dtype="float32")
    lora = T.lora_config(args.lora_r)
    if lora:
        model = T._wrap_lora(model, lora)
    model.train()
    lists = {k: build_lists(tok, args.lists, k, args.response_tokens) for k in KS}
    configs = {share: T.TrainConfig(objective="listmle", share_prompt=share, lora=lora,
                                    show_progress=False) for share in (True, False)}
    cache = ReferenceCache(max_length=configs[True].max_length)
    for k in KS:
        pairs = [(x.prompt, r) for x in lists[k] for r in x.responses]
        cache.compute(model, tok, pairs)

    def count(ls: list[T.RankedList]) -> tuple[float, float]:
        p = [len(tok(x.prompt, add_special_tokens=False)["input_ids"]) for x in ls]
        r = [len(tok(y, add_special_tokens=False)["input_ids"]) + 1 for x in ls for y in x.responses]
        return statistics.mean(p), statistics.mean(r)

    seconds: dict[tuple[int, bool], list[float]] = {(k, s): [] for k in KS for s in (True, False)}
    for rep in range(args.reps + 1):  # round 0 warms up, untimed
        order = [(k, s) for k in KS for s in (False, True)]
        if rep % 2:
            order.reverse()
        for k, share in order:
            wall = time_step(model, tok, lists[k], cache, configs[share])
            if rep:
                seconds[(k, share)].append(wall / args.lists)
        print(f"[bench] rep {rep}: " + ", ".join(
            f"K={k} {'shared' if s else 'unshared'} {v[-1]:.2f}s"
            for (k, s), v in seconds.items() if v), flush=True)

    results = []
    summary: dict[str, float] = {}
    for k in KS:
        p_tok, r_tok = count(lists[k])
        med = {s: statistics.median(seconds[(k, s)]) for s in (True, False)}
        for share in (True, False):
            tokens = p_tok + k * r_tok if share else k * (p_tok + r_tok)
            results.append({"k": k, "share_prompt": share,
                            "seconds_per_list": round(med[share], 4),
                            "seconds_per_list_all": [round(x, 4) for x in seconds[(k, share)]],
                            "tokens_per_list": round(tokens, 1)})
        summary[f"shared_speedup_k{k}"] = round(med[False] / med[True], 3)
        summary[f"token_ratio_k{k}"] = round(k * (p_tok + r_tok) / (p_tok + k * r_tok), 3)
    p_tok, r_tok = count(lists[max(KS)])
    write_json({
        "benchmark": "list_forward", "model": args.model, "dtype": "float32", "device": "cpu",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model(), "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "settings": {"reps": args.reps, "lists_per_batch": args.lists, "objective": "listmle",
                     "lora": lora, "response_tokens_max": args.response_tokens,
                     "prompt_tokens_mean": round(p_tok, 1),
                     "response_tokens_mean": round(r_tok, 1), "timed": "forward + loss + backward",
                     "statistic": "median over repetitions"},
        "environment": environment(), "results": results, "summary": summary,
    }, args.out)
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
