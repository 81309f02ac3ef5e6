"""Train tiny-random on fixed lists and dump the per-step logs to a json file.

Run by tests/test_trainer.py both as ``python tests/_accel_train.py OUT`` and as
``accelerate launch --cpu --num_processes 2 tests/_accel_train.py OUT``: the loss curves must
match. ``--runs objective:grad_accum,...`` trains several configurations in one process (each
from a fresh model); ``--lora`` adds LoRA adapters; ``--threads N`` sets torch's intra-op
threads (default 1: a different count changes the reduction order, which is how the tests'
tolerances were sized).
"""

from __future__ import annotations

import argparse
import json
import os

import torch

from larpo_lite.models import load_policy
from larpo_lite.trainer import RankedList, TrainConfig, train_ranking


def make_lists(tokenizer) -> list[RankedList]:
    from larpo_lite.tasks import build_prompt

    lists = []
    for i in range(8):
        a, b = 3 + i, 5 + 2 * i
        good = f"{a} plus {b} is {a + b}.\n#### {a + b}"
        bad = [f"{a} plus {b} is {a + b + 1}.\n#### {a + b + 1}", "I do not know.",
               f"#### {a * b}"]
        k = 2 + i % 3  # lists of 2, 3 and 4 candidates
        lists.append(RankedList(build_prompt(f"What is {a} + {b}?", tokenizer),
                                [good, *bad][:k]))
    return lists


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--runs", default="listmle:1,pairwise:2")
    ap.add_argument("--lora", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = {}
    for run in args.runs.split(","):
        objective, accum = run.split(":")
        model, tok = load_policy("tiny-random", device="cpu", dtype="float32")
        lora = ({"r": 4, "lora_alpha": 8, "lora_dropout": 0.0,
                 "target_modules": ["q_proj", "v_proj"]} if args.lora else None)
        cfg = TrainConfig(objective=objective, beta=0.5, lr=1e-3, epochs=2, lists_per_step=4,
                          grad_accum=int(accum), warmup_ratio=0.25, seed=0, lora=lora,
                          show_progress=False)
        result = train_ranking(model, tok, make_lists(tok), cfg)
        out[run] = {"logs": result.logs, "meta": result.meta}
    if int(os.environ.get("RANK", "0")) == 0:
        with open(args.out, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
