"""The arms of notebook 07: equal sampling budgets, seeds on the headline arms, and
comparisons whose standard error carries the seeds' spread."""

import dataclasses

import numpy as np
import pytest

from larpo_lite import arms
from larpo_lite.loop import LoopConfig
from larpo_lite.metrics import paired_stats

TUNED = {"pairwise": {"lr": 5e-4, "diff": 0.10}, "contrastive": {"lr": 2e-4, "diff": 0.12},
         "lambdarank": {"lr": 1e-4, "diff": 0.16}, "listmle": {"lr": 1e-4, "diff": 0.05}}
BASE = LoopConfig(iterations=3, prompts_per_iter=32, k=8)


def _arms():
    return arms.equal_budget_arms(BASE, TUNED, ["pairwise", "contrastive", "lambdarank", "listmle"],
                                  seeds=[0, 1, 2])


def test_looping_arms_share_one_sampling_budget_and_the_headlines_get_every_seed():
    got = {a.name: a for a in _arms()}
    looping = [a for a in got.values() if a.looping and not a.unequal_budget]
    assert {a.config.k for a in looping} == {8}
    assert {(a.config.iterations, a.config.prompts_per_iter) for a in looping} == {(3, 32)}
    assert {a.config.reference for a in got.values()} == {BASE.reference}
    dpo = got["iterative DPO"]
    assert dpo.config.objective == "pairwise" and dpo.config.selection == "best_worst"
    assert dpo.config.lr == 5e-4 and dpo.headline and dpo.seeds == (0, 1, 2)
    # the listwise objective with the largest validation change is the other headline arm
    assert [a.name for a in got.values() if a.headline] == ["iterative DPO", "LARPO lambdarank"]
    assert got["LARPO lambdarank"].seeds == (0, 1, 2) and got["LARPO listmle"].seeds == (0,)
    assert got["LARPO contrastive"].config.lr == 2e-4
    off = got["offline DPO"]
    assert not off.looping and off.config.iterations == 1 and off.config.prompts_per_iter == 96
    k2 = got["iterative DPO, k=2 (paper)"]
    assert k2.unequal_budget and k2.config.k == 2
    assert [c.seed for c in dpo.configs()] == [0, 1, 2]


def test_without_a_study_the_first_listwise_objective_is_the_headline():
    assert arms.headline_objective({}, ["pairwise", "listmle", "contrastive"]) == "listmle"
    with pytest.raises(ValueError, match="no listwise"):
        arms.headline_objective({}, ["pairwise"])


def test_one_seed_each_is_the_paired_comparison_over_problems():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 2, 300), rng.integers(0, 2, 300)
    got = arms.seeded_comparison(a[None], b[None])
    want = paired_stats(b, a)
    assert got["se_kind"] == "paired over problems"
    assert got["diff"] == pytest.approx(want.diff) and got["se"] == pytest.approx(want.se)
    assert got["mde"] == pytest.approx(2.8 * want.se)


def test_the_seeds_spread_enters_the_standard_error():
    """Three seeds that disagree by a whole shift give a larger SE than the per-problem mean
    over seeds compared paired (which hides the seed-level spread)."""
    rng = np.random.default_rng(1)
    truth = rng.random(300)
    b = (rng.random((3, 300)) < truth).astype(float)
    shifts = [-0.15, 0.0, 0.15]  # seeds that train to different accuracies
    a = np.stack([(rng.random(300) < np.clip(truth + s, 0, 1)).astype(float) for s in shifts])
    got = arms.seeded_comparison(a, b, n_boot=1000)
    naive = paired_stats(b.mean(axis=0), a.mean(axis=0))
    assert got["se_kind"] == "bootstrap over seeds and problems" and got["seeds"] == [3, 3]
    assert got["diff"] == pytest.approx(a.mean() - b.mean())
    assert got["se"] > 1.5 * naive.se


def _runs(per_round, n=40, seeds=1):
    """Fake loop rows: round r has the first ``per_round[r]`` problems right."""
    return [[{"iteration": r, "test_correct": "1" * c + "0" * (n - c),
              "val_correct": "1" * c + "0" * (n - c), "val_greedy": c / n, "lists": 5}
             for r, c in enumerate(per_round)] for _ in range(seeds)]


def test_rows_curves_and_over_optimization():
    arm_list = [arms.Arm("iterative DPO", BASE, (0,), headline=True),
                arms.Arm("LARPO listmle", BASE, (0, 1), headline=True)]
    runs = {"iterative DPO": _runs([10, 14, 18, 4]), "LARPO listmle": _runs([10, 20, 24, 26], seeds=2)}
    rows = {r["arm"]: r for r in arms.arm_rows(arm_list, runs)}
    assert rows["LARPO listmle"]["test_greedy"] == [0.25, 0.5, 0.6, 0.65]
    assert rows["LARPO listmle"]["rounds"] == 3 and rows["LARPO listmle"]["seeds"] == 2
    assert "unequal_budget" not in rows["LARPO listmle"]
    drop = rows["iterative DPO"]["over_optimized_seed0"]
    assert [d["round"] for d in drop] == [3] and drop[0]["diff"] == pytest.approx(-14 / 40)
    assert rows["LARPO listmle"]["over_optimized_seed0"] == []
    c = arms.compare(arm_list, runs, "LARPO listmle", "iterative DPO")
    assert c["diff"] == pytest.approx(26 / 40 - 4 / 40) and c["verdict"] == "better"
    assert {"a", "b", "diff", "se", "se_kind", "mde", "n", "seeds"} <= set(c)
    init = arms.compare(arm_list, runs, "iterative DPO", "init")
    assert init["diff"] == pytest.approx(-6 / 40) and init["seeds"] == [1, 1]
    with pytest.raises(ValueError, match="no arm"):
        arms.compare(arm_list, runs, "LARPO ranknet", "init")
    assert arms.last_vs_first(runs["LARPO listmle"])["diff"] == pytest.approx(6 / 40)


def test_for_params_builds_the_arms_at_the_study_choices_of_its_preset(tmp_path, monkeypatch):
    import json

    from larpo_lite import tune
    from larpo_lite.config import Params

    p = Params.load("smoke", reports_dir=str(tmp_path), train_seeds=[0, 1, 2])
    found, tuned = arms.for_params(p)
    assert tuned == {} and {a.config.lr for a in found} == {p.lr}
    study = {"params": {"preset": "smoke"},
             "metrics": {"chosen": {"pairwise": {"lr": 3e-4, "diff": 0.1},
                                    "listmle": {"lr": 7e-5, "diff": 0.2},
                                    "contrastive": {"lr": 1e-4, "diff": 0.05}}}}
    monkeypatch.setattr(p.__class__, "out_dir", lambda self, kind, create=True: tmp_path)
    (tmp_path / "tuning_validation.json").write_text(json.dumps(study))
    assert tune.read_choices(p)["listmle"]["lr"] == 7e-5
    found, _ = arms.for_params(p)
    by = {a.name: a for a in found}
    assert by["iterative DPO"].config.lr == 3e-4 and by["LARPO listmle"].config.lr == 7e-5
    assert by["LARPO listmle"].headline and by["LARPO listmle"].seeds == (0, 1, 2)
    assert by["LARPO contrastive"].seeds == (0,) and not by["LARPO contrastive"].headline


def test_run_parallel_runs_every_seed_of_every_arm_in_worker_processes(tmp_path, monkeypatch):
    from larpo_lite.loop import run_dir

    monkeypatch.setenv("LARPO_LITE_RUNS", str(tmp_path))  # inherited by the spawned workers
    base = LoopConfig(model_name="tiny-random", device="cpu", dtype="float32", batch_size=16,
                      iterations=1, prompts_per_iter=4, k=4, max_new_tokens=8, lr=1e-3, epochs=1,
                      lists_per_step=2, lora_r=4, n_val=2, n_test=2, eval_samples=0,
                      show_progress=False)
    two = [arms.Arm("a", base, (0, 1)), arms.Arm("b", dataclasses.replace(base, objective="listmle"), (0,))]
    got = arms.run_parallel(two, "smoke", workers=2)
    assert {k: len(v) for k, v in got.items()} == {"a": 2, "b": 1}
    assert [[r["iteration"] for r in rows] for rows in got["a"]] == [[0, 1], [0, 1]]
    for a in two:
        for cfg in a.configs():  # each run in its own folder under the workers' runs/
            assert (run_dir(cfg, "smoke") / "results.jsonl").is_file()
    # the same runs asked again (another notebook) are read back, not run: same rows
    again = arms.run_parallel(two, "smoke", workers=1, stop_after=1)
    assert [r["test_correct"] for r in again["b"][0]] == [r["test_correct"] for r in got["b"][0]]
    with pytest.raises(ValueError, match="workers"):
        arms.run_parallel(two, "smoke", workers=0)
    # Recall@N after training, one policy after the other or two at a time: the same numbers
    head = [dataclasses.replace(a, headline=True) for a in two]
    serial = arms.recall_after_arms(head, "smoke", 2, 2, [1, 2], 1.0, workers=1)
    assert list(serial) == ["initial policy", "a", "b"] and set(serial["a"]) == {1, 2}
    assert arms.recall_after_arms(head, "smoke", 2, 2, [1, 2], 1.0, workers=2) == serial
