"""Training throughput: our trainer against TRL's DPOTrainer, the cost of a list of K, LoRA
against full fine-tuning. Same model, dtype, data and batch in one run.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/training_throughput.py [--pairs 32] [--lists 8]

Writes benchmarks/results/training_throughput.json. Runs the embedded SmolLM2-135M-Instruct
in float32 on the CPU. Throughput counts response tokens (the tokens the loss is taken over)
per wall second of the whole training call, reference log-probs included.

The data are the mini-GSM train split's worked solutions: for a DPO pair the chosen
response is the solution and the rejected one is the same text with a wrong final answer,
so both sides have realistic, nearly equal lengths; a list of K holds the solution and K-1
wrong-answer variants.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from larpo_lite.models import load_policy
from larpo_lite.reports import environment, write_json
from larpo_lite.tasks import build_prompt, load_split
from larpo_lite.trainer import RankedList, TrainConfig, train_ranking

OUT = Path(__file__).parent / "results" / "training_throughput.json"
MODEL = "smollm2-135m-instruct"
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}


def wrong(solution: str, answer: str, delta: int) -> str:
    """The solution with its final answer replaced by ``answer + delta``."""
    bad = str(int(float(answer)) + delta)
    return re.sub(r"####\s*\S+\s*$", f"#### {bad}", solution.strip())


def build_lists(n: int, k: int, tok: Any) -> list[RankedList]:
    problems = load_split("train", n)
    return [RankedList(build_prompt(p.question, tok),
                       [p.solution] + [wrong(p.solution, p.answer, d) for d in range(1, k)])
            for p in problems]


def response_tokens(tok: Any, lists: list[RankedList]) -> int:
    return sum(len(tok(r, add_special_tokens=False)["input_ids"]) for x in lists for r in x.responses)


def run_ours(lists: list[RankedList], objective: str, lora: dict | None, lists_per_step: int,
             lr: float) -> dict[str, Any]:
    model, tok = load_policy(MODEL, device="cpu", dtype="float32")
    cfg = TrainConfig(objective=objective, lr=lr, epochs=1, lists_per_step=lists_per_step,
                      lora=lora, seed=0, show_progress=False, shuffle=False)
    t0 = time.perf_counter()
    res = train_ranking(model, tok, lists, cfg)
    wall = time.perf_counter() - t0
    tokens = response_tokens(tok, lists)
    steps = len(res.logs)
    return {"seconds": round(wall, 2), "steps": steps, "s_per_step": round(wall / steps, 2),
            "response_tokens": tokens, "tokens_per_s": round(tokens / wall, 1),
            "sequences": sum(len(x.responses) for x in lists), "final_loss": res.losses[-1]}


def run_trl(lists: list[RankedList], lists_per_step: int, lr: float, precompute: bool,
            tmp: Path) -> dict[str, Any]:
    from datasets import Dataset
    from peft import LoraConfig
    from trl import DPOConfig, DPOTrainer

    model, tok = load_policy(MODEL, device="cpu", dtype="float32")
    ds = Dataset.from_list([{"prompt": x.prompt, "chosen": x.responses[0], "rejected": x.responses[1]}
                            for x in lists])
    args = DPOConfig(output_dir=str(tmp), per_device_train_batch_size=lists_per_step,
                     num_train_epochs=1, learning_rate=lr, beta=0.1, loss_type=["sigmoid"],
                     lr_scheduler_type="linear", warmup_steps=1, max_grad_norm=1.0,
                     logging_steps=1, report_to=[], save_strategy="no", use_cpu=True,
                     bf16=False, seed=0, precompute_ref_log_probs=precompute,
                     dataloader_num_workers=0, disable_tqdm=True, max_length=512)
    trainer = DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok,
                         peft_config=LoraConfig(**LORA, task_type="CAUSAL_LM"))
    t0 = time.perf_counter()
    out = trainer.train()
    wall = time.perf_counter() - t0
    tokens = response_tokens(tok, lists)
    steps = out.global_step
    return {"seconds": round(wall, 2), "steps": steps, "s_per_step": round(wall / steps, 2),
            "response_tokens": tokens, "tokens_per_s": round(tokens / wall, 1),
            "sequences": 2 * len(lists), "final_loss": float(out.training_loss)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=32, help="DPO pairs (one epoch)")
    ap.add_argument("--lists", type=int, default=8, help="lists of K for the list-cost row")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--lists-per-step", type=int, default=8)
    ap.add_argument("--only", default=None, help="comma-separated row names")
    args = ap.parse_args()
    torch.manual_seed(0)
    _, tok = load_policy(MODEL, device="cpu", dtype="float32")
    pairs = build_lists(args.pairs, 2, tok)
    lists_k = build_lists(args.lists, args.k, tok)
    # the pairwise alternative to one list of K: DPO on each of its K(K-1)/2 ordered pairs
    all_pairs = [RankedList(x.prompt, [x.responses[i], x.responses[j]])
                 for x in lists_k for i, j in itertools.combinations(range(args.k), 2)]
    lps = args.lists_per_step
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / "larpo-bench-trl"
    rows: dict[str, Any] = {}
    plan = {
        "ours_pairwise_lora": lambda: run_ours(pairs, "pairwise", LORA, lps, 1e-4),
        "trl_dpo_lora": lambda: run_trl(pairs, lps, 1e-4, False, tmp),
        "trl_dpo_lora_precompute_ref": lambda: run_trl(pairs, lps, 1e-4, True, tmp),
        "ours_pairwise_full": lambda: run_ours(pairs, "pairwise", None, lps, 1e-5),
        f"ours_listmle_k{args.k}_lora": lambda: run_ours(lists_k, "listmle", LORA, min(lps, len(lists_k)), 1e-4),
        f"ours_all_pairs_k{args.k}_lora": lambda: run_ours(all_pairs, "pairwise", LORA, lps, 1e-4),
    }
    only = set(args.only.split(",")) if args.only else None
    for name, fn in plan.items():
        if only and name not in only:
            continue
        print(f"[bench] {name} ...", flush=True)
        rows[name] = fn()
        print(f"[bench] {name}: {json.dumps(rows[name])}", flush=True)
    k = args.k
    listk, allp = rows.get(f"ours_listmle_k{k}_lora"), rows.get(f"ours_all_pairs_k{k}_lora")
    summary: dict[str, Any] = {}
    if "ours_pairwise_lora" in rows and "trl_dpo_lora" in rows:
        summary["ours_over_trl_tokens_per_s"] = round(
            rows["ours_pairwise_lora"]["tokens_per_s"] / rows["trl_dpo_lora"]["tokens_per_s"], 3)
    if "ours_pairwise_lora" in rows and "ours_pairwise_full" in rows:
        summary["lora_over_full_tokens_per_s"] = round(
            rows["ours_pairwise_lora"]["tokens_per_s"] / rows["ours_pairwise_full"]["tokens_per_s"], 3)
    if listk and allp:
        summary["seconds_per_list_listmle"] = round(listk["seconds"] / args.lists, 2)
        summary["seconds_per_list_all_pairs_dpo"] = round(allp["seconds"] / args.lists, 2)
        summary["all_pairs_over_list_seconds"] = round(allp["seconds"] / listk["seconds"], 2)
    write_json({
        "benchmark": "training_throughput", "model": MODEL, "dtype": "float32", "device": "cpu",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "threads": torch.get_num_threads(), "pairs": args.pairs, "lists": args.lists, "k": args.k,
        "lists_per_step": lps, "lora": LORA, "environment": environment(),
        "results": rows, "summary": summary,
    }, OUT)
    print(json.dumps(summary, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
