"""The default run's budget, planned before running it from measured unit costs.

Unit costs come from the validation study's run folders (``runs/<preset>/tune/*/results.jsonl``:
the default model, M prompts x k samples, one thread per process with two processes busy, as
the default run runs): sampling a round, training on a round's lists, a greedy pass over the
validation problems. Notebooks without loop runs (01-03, 05, 06, 08) are planned at their last
measured default-run time (``reports/timing.json``). The plan counts thread-seconds of work
and divides by the two job slots; a notebook whose work is split over worker processes
(``loop_workers``) does not hold the critical path alone.

    .venv/bin/python benchmarks/default_run_plan.py [--runs runs/default/tune]

writes ``benchmarks/results/default_run_plan.json`` and prints the table; the scheduler of
``larpo-lite notebooks --jobs 2`` starts the longest planned work first until a default run has
measured it (``larpo_lite.notebooks.recorded_seconds``)."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from larpo_lite import arms, reports  # noqa: E402
from larpo_lite.config import Params  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "default_run_plan.json"


def unit_costs(folder: Path) -> dict[str, float]:
    """Median seconds per unit over the study's finished rounds: ``sample_per_seq`` (one
    sampled response, from rounds >= 2, whose samples are not cached), ``train_per_list``
    (one list, all its epochs), ``greedy_per_problem`` (validation greedy of round 0)."""
    sample, train, greedy = [], [], []
    for results in sorted(folder.glob("*/results.jsonl")):
        cfg = json.loads((results.parent / "config.json").read_text())
        rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
        n_val = cfg.get("n_val") or 0
        for r in rows:
            if r["iteration"] == 0 and n_val and r.get("seconds", 0) > 1:
                greedy.append(r["seconds"] / n_val)
            if r["iteration"] >= 1 and r.get("train_lists"):
                train.append(r["train_seconds"] / r["train_lists"])
            if r["iteration"] >= 2 and r.get("train_seconds") and n_val:
                seqs = cfg["prompts_per_iter"] * cfg["k"]
                rest = r["seconds"] - r["train_seconds"] - n_val * statistics.median(greedy or [0.28])
                sample.append(max(rest, 0.0) / seqs)
    if not (sample and train and greedy):
        raise SystemExit(f"no finished study rounds under {folder}: run larpo-lite tune first")
    return {"sample_per_seq": statistics.median(sample), "train_per_list": statistics.median(train),
            "greedy_per_problem": statistics.median(greedy), "rounds_measured": len(train)}


def plan(p: Params, u: dict[str, float], lists_per_round: float, measured: dict[str, float]
         ) -> dict[str, object]:
    """Thread-seconds per notebook of the default run and the wall time on two slots."""
    arm_list, _ = arms.for_params(p)
    seqs = p.prompts_per_iter * p.k_train
    test, val = p.n_eval * u["greedy_per_problem"], p.n_val * u["greedy_per_problem"]
    train = lists_per_round * u["train_per_list"]
    rows, loop_s = [], 0.0
    seeds = sorted({s for a in arm_list for s in a.seeds})
    for a in arm_list:
        for i, _seed in enumerate(a.seeds):
            rounds = p.iterations if a.looping else 1
            if a.looping:
                own_samples = (rounds - 1) * seqs * u["sample_per_seq"]  # round 1 shared per seed
                t = own_samples + rounds * (train + test + (val if i == 0 else 0.0))
            else:
                t = (p.iterations - 1) * seqs * u["sample_per_seq"] + p.iterations * train + test + val
            rows.append({"work": f"{a.name}, seed {_seed}", "seconds": round(t)})
            loop_s += t
    shared = len(seeds) * (seqs * u["sample_per_seq"] + test) + val
    rows.append({"work": "round 1 samples and round-0 evaluation, once per seed", "seconds": round(shared)})
    recall = (1 + sum(a.headline for a in arm_list)) * p.n_eval_sweep * p.n_samples * u["sample_per_seq"]
    rows.append({"work": "07: Recall@N after training", "seconds": round(recall)})
    loop_s += shared + recall
    other = {k: v for k, v in measured.items() if k not in ("04", "07")}
    for k, v in sorted(other.items()):
        rows.append({"work": f"notebook {k} (last measured default run)", "seconds": round(v)})
    total = loop_s + sum(other.values())
    return {"unit_costs": u, "lists_per_round": lists_per_round, "prompts_per_iter": p.prompts_per_iter,
            "k": p.k_train, "rows": rows,
            # 04 runs round 1 of every run (about a third of the rounds), 07 the rest
            "notebooks": {"04": round(loop_s / p.iterations), "07": round(loop_s * (1 - 1 / p.iterations)),
                          **{k: round(v) for k, v in other.items()}},
            "thread_seconds": round(total), "two_slot_minutes": round(total / 2 / 60, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=str(ROOT / "runs" / "default" / "tune"))
    args = ap.parse_args()
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    p = Params.load("default")
    u = unit_costs(Path(args.runs))
    lists = []
    for results in Path(args.runs).glob("*/results.jsonl"):
        lists += [json.loads(x).get("train_lists") for x in results.read_text().splitlines() if x.strip()]
    per_round = statistics.median([x for x in lists if x])
    timing = json.loads((ROOT / "reports" / "timing.json").read_text())["notebooks"]
    measured = {k[:2]: float(v["seconds"]) for k, v in timing.items()}
    out = plan(p, u, per_round, measured)
    out.update(reports.benchmark_context("benchmarks/default_run_plan.py", sys.argv[1:], started,
                                         os.getloadavg()[0]))
    OUT.write_text(json.dumps(out, indent=2) + "\n")
    print("| work | thread-seconds |\n|---|---|")
    for r in out["rows"]:
        print(f"| {r['work']} | {r['seconds']} |")
    print(f"\n{out['thread_seconds']} thread-seconds: about {out['two_slot_minutes']} minutes on two slots")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
