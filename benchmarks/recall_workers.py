"""07's Recall@N after training (``arms.recall_after_arms``) one policy after the other in one
one-thread process (as the default run of 2026-12-07 ran it, the other core idle) against two
one-thread worker processes (``workers=2``), on the default preset's finished loop runs.

    OMP_NUM_THREADS=1 LARPO_LITE_RUNS=<a finished default run's runs/> \\
        .venv/bin/python benchmarks/recall_workers.py [--problems 12] [--samples 8]

It needs the run folders of a finished default run (``runs/default/loop``). The initial policy
is sampled by both ways (the cache files the first way writes are removed before the second). Writes benchmarks/results/recall_workers.json: wall seconds of each way, the speedup
and whether the per-problem pass@N are identical.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from larpo_lite import arms
from larpo_lite.cache import cache_root
from larpo_lite.config import Params
from larpo_lite.reports import benchmark_context, write_json

RESULTS = Path(__file__).parent / "results"


def timed(arm_list: list, params: Params, n: int, k: int, workers: int) -> tuple[dict, float]:
    """One measurement: (per-problem pass@N, wall seconds). The candidate-cache files it wrote
    (the initial policy's samples) are removed after it, so the next way samples them too."""
    before = set(cache_root().glob("*"))
    t0 = time.perf_counter()
    got = arms.recall_after_arms(arm_list, params.preset, n, k, [m for m in params.n_grid if m <= k],
                                 params.temperature, workers=workers)
    seconds = time.perf_counter() - t0
    for path in set(cache_root().glob("*")) - before:
        path.unlink()
    return got, seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", type=int, default=12)
    ap.add_argument("--samples", type=int, default=8)
    args = ap.parse_args(argv)
    started, load = datetime.now(UTC).isoformat(timespec="seconds"), os.getloadavg()[0]
    torch.set_num_threads(1)
    params = Params.load("default")
    arm_list, _ = arms.for_params(params)
    serial, t_serial = timed(arm_list, params, args.problems, args.samples, workers=1)
    pooled, t_pooled = timed(arm_list, params, args.problems, args.samples, workers=2)
    record = {"policies": list(serial), "problems": args.problems, "samples": args.samples,
              "seconds": {"one_process": round(t_serial, 1), "two_workers": round(t_pooled, 1)},
              "speedup": round(t_serial / t_pooled, 2), "identical": serial == pooled,
              **benchmark_context(Path(__file__).name, sys.argv[1:] if argv is None else argv,
                                  started, load)}
    print(write_json(record, RESULTS / "recall_workers.json"))
    print(record["seconds"], "speedup", record["speedup"], "identical", record["identical"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
