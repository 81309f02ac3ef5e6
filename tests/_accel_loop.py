"""Run a tiny LARPO loop into a folder; tests/test_loop.py runs it as one process and under
``accelerate launch --multi_gpu --num_processes 2`` (CPU, gloo) and compares the two."""

from __future__ import annotations

import sys

import torch

from larpo_lite.loop import LoopConfig, run_loop


def main() -> None:
    torch.set_num_threads(1)
    cfg = LoopConfig(model_name="tiny-random", device="cpu", dtype="float32", batch_size=16,
                     iterations=2, prompts_per_iter=4, k=4, max_new_tokens=8, epochs=1,
                     lists_per_step=4, lora_r=4, lr=1e-3, n_val=2, n_test=2, eval_samples=2,
                     gold_in_list=True, objective="listmle", show_progress=False)
    run_loop(cfg, sys.argv[1])


if __name__ == "__main__":
    main()
