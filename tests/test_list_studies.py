"""Notebook 06's studies (larpo_lite.list_studies): which runs are 07's, what the others cost,
and the comparisons, usable-list counts and metrics built from their rows."""

import dataclasses
import math

import numpy as np
import pytest

from larpo_lite import arms
from larpo_lite import list_studies as L
from larpo_lite.config import Params


@pytest.fixture(scope="module")
def default():
    P = Params.load("default")
    arm_list, _ = arms.for_params(P)
    return P, arm_list


def test_the_plan_reads_07s_runs_where_the_config_is_one_of_them(default):
    P, arm_list = default
    studies = {s.name: s for s in L.plan(P, arm_list, L.MEMORY_COMPARED)}
    dpo = next(a for a in arm_list if a.name == "iterative DPO").configs()[0]
    head = next(a for a in arm_list if a.headline and a.name != "iterative DPO")
    assert studies[f"list_size/{P.k_train}"].config == dpo
    assert studies[f"list_size/{P.k_train}"].shared == "iterative DPO, seed 0"
    assert studies["memory/current"].config == head.configs()[0]  # 07's headline run, seed 0
    assert studies["memory/current"].shared == f"{head.name}, seed 0"
    assert studies["temperatures/single [0.7]"].shared and studies["temperatures/single [0.7]"].stop_after == 1
    own = [s for s in studies.values() if not s.shared]
    assert {s.name for s in own} == {"list_size/2", "list_size/4", "memory/all", "temperatures/mix [1.0, 0.5]"}
    assert all(s.config.n_val == 0 for s in own) and studies["memory/all"].round1_reused
    assert studies["memory/all"].config.n_test == dpo.n_test  # paired on 07's test problems


def test_the_plan_refuses_what_it_cannot_build(default):
    P, arm_list = default
    with pytest.raises(ValueError, match="two or more of"):
        L.plan(P, arm_list, ["current"])
    with pytest.raises(ValueError, match="iterative DPO and headline LARPO"):
        L.plan(P, [a for a in arm_list if a.name == "iterative DPO"], L.MEMORY_COMPARED)


def test_estimates_charge_only_what_runs_here(default):
    P, arm_list = default
    studies = {s.name: s for s in L.plan(P, arm_list, L.MEMORY_COMPARED)}
    assert L.estimate_seconds(studies["memory/current"]) == 0.0
    mem = studies["memory/all"]
    cfg = mem.config
    evaluate = L.EVAL_S * cfg.n_test
    rounds = [evaluate] + [L.SAMPLE_S * cfg.prompts_per_iter + L.TRAIN_S * cfg.prompts_per_iter * s + evaluate
                           for s in range(2, mem.rounds + 1)]
    assert math.isclose(L.estimate_seconds(mem), sum(rounds), rel_tol=1e-12)
    fresh = dataclasses.replace(mem, round1_reused=False)
    assert L.estimate_seconds(fresh) > L.estimate_seconds(mem)


def test_on_the_default_reading_07s_runs_costs_less_than_an_own_sweep(default):
    """The premise of 06's design: if a preset change flips it, 06's generated text says so."""
    P, arm_list = default
    here = sum(map(L.estimate_seconds, L.plan(P, arm_list, L.MEMORY_COMPARED)))
    sweep = sum(map(L.estimate_seconds, L.own_sweep(P)))
    assert here < sweep
    text = L.cost_text(P, arm_list, L.MEMORY_COMPARED)
    assert "costs less than a sweep of its own" in text and "Memory previous is priced but not run" in text


def _rows(init, after):
    out = [{"iteration": 0, "test_greedy": float(np.mean(init)), "test_correct": "".join(map(str, init))}]
    for i, a in enumerate(after, 1):
        out.append({"iteration": i, "test_greedy": float(np.mean(a)), "test_correct": "".join(map(str, a)),
                    "lists": 2 + i, "train_lists": 2 * i, "seconds": 1.0})
    return out


def _studies_and_runs(default):
    P, arm_list = default
    studies = L.plan(P, arm_list, L.MEMORY_COMPARED)
    init = [0, 1, 0, 0, 1, 0]
    after = {"list_size/2": [[0, 1, 0, 0, 1, 1]], "list_size/4": [[1, 1, 0, 0, 1, 1]],
             "list_size/8": [[1, 1, 1, 0, 1, 1]], "memory/current": [[1, 1, 0, 0, 1, 0]] * 3,
             "memory/all": [[1, 1, 1, 1, 1, 0]] * 3, "temperatures/single [0.7]": [[1, 1, 0, 0, 1, 0]],
             "temperatures/mix [1.0, 0.5]": [[0, 1, 0, 0, 1, 0]]}
    return studies, {name: _rows(init, a) for name, a in after.items()}


def test_comparisons_pair_each_claim_and_label_every_row_single_seed(default):
    studies, runs = _studies_and_runs(default)
    rows = L.comparisons(studies, runs)
    pairs = [(r["a"], r["b"]) for r in rows]
    assert ("list_size/8", "list_size/2") in pairs and ("memory/all", "memory/current") in pairs
    assert ("temperatures/mix [1.0, 0.5]", "temperatures/single [0.7]") in pairs
    assert all(r["label"] == "single-seed" and r["se_kind"] == "paired over problems" for r in rows)
    assert all(math.isclose(r["mde"], 2.8 * r["se"], rel_tol=1e-12) for r in rows)
    heads = L.headline_rows(studies, rows)
    assert heads["list_size"]["diff"] == pytest.approx(2 / 6) and heads["memory"]["diff"] == pytest.approx(2 / 6)
    text = L.findings_text(studies, runs, rows, None)
    assert text.count("Single-seed: ") == 3 and "k=8 minus k=2" in text
    m = L.metrics_06(studies, runs, rows, None, Params.load("default"), text, "cost")
    assert set(m["gains"]) == {"k_largest_vs_smallest", "memory_all_vs_current", "mix_vs_single"}
    assert m["memory"]["all"] == runs["memory/all"] and len(m["per_problem"]["init"]) == 6


def test_usable_lists_observed_and_predicted():
    # prompt 0 always right, 1 never, 2 right in half its samples
    correct = np.array([[1] * 4, [0] * 4, [1, 0, 1, 0]], dtype=float)
    assert np.allclose(L.usable_per_prompt(correct, 1), 0.0)
    assert np.allclose(L.usable_per_prompt(correct, 4), [0, 0, 1])  # k = n: observed itself
    assert math.isclose(L.usable_per_prompt(correct, 2)[2], 1 - 2 * (1 / 6), rel_tol=1e-12)
    runs = {"list_size/2": [{}, {"lists": 1}], "list_size/4": [{}, {"lists": 1}]}
    table = L.usable_table({"2": [[1, 1], [0, 0], [1, 0]], "4": correct.astype(int).tolist()}, runs)
    assert table.loc[4, "observed"] == pytest.approx(1 / 3)
    assert table.loc[4, "predicted, overall p"] > table.loc[4, "observed"]  # one p over-predicts
    assert "with k=4, 0.33" in L.usable_text(table)
