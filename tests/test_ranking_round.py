"""Notebook 04's views (larpo_lite.ranking_round): the toy lists' closed forms and pushes, the
arms it runs, its comparisons' labels and names, and the graded-vs-binary sentence."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from larpo_lite import ranking_round as rr
from larpo_lite.arms import Arm
from larpo_lite.loop_config import LoopConfig


def test_start_values_match_their_closed_forms_with_and_without_labels():
    t = rr.start_values(4, [1.0, 1.0, 0.0, 0.0])
    assert np.allclose(t["strict order"], t["closed form"], rtol=1e-9)
    assert np.allclose(t["labels [1.0, 1.0, 0.0, 0.0]"], t["closed form, labels"], rtol=1e-9)
    assert math.isclose(t.loc["listmle", "strict order"], math.log(24), rel_tol=1e-9)
    assert math.isclose(t.loc["listmle", "closed form, labels"], 2 * math.log(3), rel_tol=1e-9)
    with pytest.raises(ValueError, match="3 labels for a list of 4"):
        rr.start_values(4, [1.0, 0.0, 0.0])


def test_push_findings_name_the_unpushed_ranks_and_the_push_left():
    zero = rr.push_table([0.0] * 4)
    labelled = rr.push_table([0.0] * 4, labels=[1.0, 1.0, 0.0, 0.0])
    ranked = rr.push_table([3.0, 1.0, -1.0, -3.0])
    assert rr.push_finding(zero).startswith("pairwise leaves ranks 2 and 3 unpushed")
    assert "contrastive leaves rank 2 unpushed" in rr.push_finding(labelled)
    # binary labels: ListMLE pushes the two right answers alike (no order trained between them)
    assert math.isclose(labelled.loc["listmle", "rank 1"], labelled.loc["listmle", "rank 2"], rel_tol=1e-9)
    left = rr.push_left(zero, ranked)
    assert all(0 < v < 1 for v in left.values()) and min(left, key=left.get) == "pairwise"
    titles = rr.push_titles({"a": zero, "b": labelled, "c": ranked})
    assert titles["c"].startswith("of its push at zero scores each keeps pairwise")


def _rows(greedy0, greedy1):
    """A run's rows 0 and 1 on the same four test problems."""
    return [{"iteration": 0, "test_greedy": np.mean(greedy0), "test_correct": "".join(map(str, greedy0))},
            {"iteration": 1, "test_greedy": np.mean(greedy1), "test_correct": "".join(map(str, greedy1)),
             "lists": 3, "skipped_prompts": 1, "train_steps": 2, "loss_first": 0.7, "loss_last": 0.6,
             "train_seconds": 1.0, "train_key": "k", "losses": [0.7, 0.6], "seconds": 2.0}]


def _arms_and_runs():
    base = LoopConfig(n_test=4)
    arm_list = [Arm("iterative DPO", base, (0, 1), headline=True),
                Arm("LARPO contrastive", LoopConfig(n_test=4, objective="contrastive"), (0, 1), headline=True),
                Arm("LARPO listmle", LoopConfig(n_test=4, objective="listmle"), (0,)),
                Arm("offline DPO", base, (0,), looping=False),
                Arm("iterative DPO, k=2 (paper)", base, (0,), unequal_budget=True)]
    init = [0, 1, 0, 0]
    runs = {"iterative DPO": [_rows(init, [1, 1, 0, 0]), _rows(init, [0, 1, 1, 0])],
            "LARPO contrastive": [_rows(init, [1, 1, 1, 0]), _rows(init, [1, 1, 0, 1])],
            "LARPO listmle": [_rows(init, [0, 1, 0, 0])]}
    return rr.looping(arm_list), runs


def test_04_runs_the_looping_arms_on_the_shared_budget_only():
    compared, _ = _arms_and_runs()
    assert [a.name for a in compared] == ["iterative DPO", "LARPO contrastive", "LARPO listmle"]


def test_comparisons_put_the_headline_first_and_label_single_seed_rows():
    compared, runs = _arms_and_runs()
    rows = rr.comparisons(compared, runs)
    vs_pair = [r for r in rows if r["b"] == "iterative DPO"]
    assert [r["a"] for r in vs_pair] == ["LARPO contrastive", "LARPO listmle"]
    assert [r["label"] for r in vs_pair] == ["seeded", "single-seed"]
    assert vs_pair[0]["se_kind"] == "bootstrap over seeds and problems"
    assert all(math.isclose(r["mde"], 2.8 * r["se"], rel_tol=1e-12) for r in rows)
    assert {r["a"] for r in rows if r["b"] == "init"} == {a.name for a in compared}
    text = rr.findings_text(compared, runs, rows, iterations=3)
    assert "Single-seed: listmle minus pairwise" in text and "round 3" in text


def test_metrics_name_comparisons_by_objective_and_keep_per_problem_by_arm():
    compared, runs = _arms_and_runs()
    rows = rr.comparisons(compared, runs)
    m = rr.metrics_04(compared, runs, rows, tuned={"contrastive": {"lr": 1e-4}}, gvb={}, what_we_saw="")
    assert m["results"][0]["objective"] == "init"
    assert [r["objective"] for r in m["results"][1:]] == ["pairwise", "pairwise", "contrastive", "contrastive", "listmle"]
    assert ("contrastive", "pairwise") in {(c["a"], c["b"]) for c in m["comparisons"]}
    assert "pairwise" not in m["per_problem"] and np.shape(m["per_problem"]["iterative DPO"]) == (2, 4)
    assert m["settings"]["contrastive"]["from"] == "validation study"
    assert m["settings"]["listmle"]["from"].startswith("preset")


def test_graded_vs_binary_is_read_for_the_preset_or_said_not_measured(tmp_path):
    params = SimpleNamespace(preset="mine", out_dir=lambda kind, create=True: tmp_path)
    assert rr.graded_vs_binary(params) == {}
    assert rr.graded_text({}).startswith("Not measured yet")
    row = {"diff": 0.01, "se": 0.02, "n": 200, "verdict": "inconclusive", "graded_lists": 60,
           "binary_lists": 38}
    (tmp_path / "tuning_validation.json").write_text(json.dumps(
        {"params": {"preset": "mine"}, "metrics": {"graded_vs_binary": {"listmle": row}}}))
    got = rr.graded_vs_binary(params)
    assert got == {"listmle": {**row, "mde": pytest.approx(2.8 * 0.02)}}
    (tmp_path / "tuning_validation.json").write_text(json.dumps(  # written with MDE = 2 SE
        {"params": {"preset": "mine"}, "metrics": {"graded_vs_binary": {"listmle": {**row, "mde": 0.04}}}}))
    assert rr.graded_vs_binary(params)["listmle"]["mde"] == pytest.approx(0.056)
    text = rr.graded_text(got)
    assert "MDE 0.056" in text and "inconclusive (within 2 SE)" in text
    params.preset = "other"  # another preset's study is not this run's
    assert rr.graded_vs_binary(params) == {}
