"""The reproduction report: verdicts computed from the numbers and their noise, paired where the
metrics files carry per-problem scores, rows for runs not done yet."""

import json

import numpy as np
import pytest

from larpo_lite import reproduction as R
from larpo_lite.metrics import paired_stats


def _write(folder, name, metrics, n_test=32, **params):
    (folder / f"{name}.json").write_text(json.dumps(
        {"params": {"n_test": n_test, **params}, "metrics": metrics}))


def _rows(folder):
    return {r["finding"]: r for r in R.findings(folder)}


def _flip(base, gained, lost):
    """A copy of the 0/1 vector ``base`` with ``gained`` wrong and ``lost`` right answers flipped."""
    out = list(base)
    wrong = [i for i, x in enumerate(base) if x == 0]
    right = [i for i, x in enumerate(base) if x == 1]
    for i in wrong[:gained]:
        out[i] = 1
    for i in right[:lost]:
        out[i] = 0
    return out


def test_verdict_rule_in_all_three_regions():
    se = R.binomial_se(0.5, 100)
    assert abs(se - 0.05) < 1e-12
    assert R.verdict(0.11, se) == R.REPRODUCED
    assert R.verdict(0.10, se) == R.INCONCLUSIVE  # exactly 2 SE is not beyond it
    assert R.verdict(0.05, se) == R.INCONCLUSIVE
    assert R.verdict(0.0, se) == R.INCONCLUSIVE
    assert R.verdict(-0.05, se) == R.INCONCLUSIVE
    assert R.verdict(-0.11, se) == R.CONTRADICTED
    assert R.verdict(0.0, 0.0) == R.INCONCLUSIVE
    assert R.verdict(0.01, None) == R.DIRECTION and R.verdict(-0.01, None) == R.OPPOSITE


@pytest.mark.parametrize(("gained", "lost", "want"), [
    (40, 5, R.REPRODUCED),     # +0.117, SE about 0.026
    (20, 16, R.INCONCLUSIVE),  # +0.013
    (6, 45, R.CONTRADICTED),   # -0.130
])
def test_paired_verdicts_from_per_problem_scores(tmp_path, gained, lost, want):
    rng = np.random.default_rng(0)
    n = 300
    dpo = (rng.random(n) < 0.35).astype(int).tolist()
    best = _flip(dpo, gained, lost)
    acc = {"init": 0.3, "iterative DPO": float(np.mean(dpo)), "listmle": float(np.mean(best))}
    _write(tmp_path, "07_larpo_loop", {"test_greedy": acc, "per_problem": {
        "iterative DPO": dpo, "listmle": best}}, n_test=n)
    row = _rows(tmp_path)["LARPO beats iterative DPO: listmle"]
    s = paired_stats(dpo, best)
    assert row["verdict"] == want == {"better": R.REPRODUCED, "worse": R.CONTRADICTED,
                                      "inconclusive": R.INCONCLUSIVE}[s.verdict]
    assert row["diff"] == f"{s.diff:+.3f}"
    assert row["se"] == f"{s.se:.3f} (paired)" and row["mde"] == f"{2 * s.se:.3f}"
    # the same accuracies without per-problem scores: the wider, unpaired error, labelled
    _write(tmp_path, "07_larpo_loop", {"test_greedy": acc}, n_test=n)
    unpaired = _rows(tmp_path)["LARPO beats iterative DPO: listmle"]
    assert unpaired["se"].endswith("(binomial, unpaired)")
    assert float(unpaired["se"].split()[0]) > s.se
    assert unpaired["diff"] == row["diff"]


def test_a_one_problem_change_is_inconclusive_either_way(tmp_path):
    # the committed default's situation: 32 problems, one problem apart
    base = [1] * 9 + [0] * 23
    for new, want_diff in ((_flip(base, 1, 0), "+0.031"), (_flip(base, 0, 1), "-0.031")):
        _write(tmp_path, "03_training_stage", {"table": [
            {"stage": "init", "greedy": float(np.mean(base))},
            {"stage": "SFT", "greedy": float(np.mean(new))}],
            "per_problem": {"init": base, "SFT": new}})
        row = _rows(tmp_path)["SFT raises greedy accuracy"]
        assert row["diff"] == want_diff and row["verdict"] == R.INCONCLUSIVE


def test_comparisons_rows_are_used_when_vectors_are_missing(tmp_path):
    table = [{"stage": "init", "greedy": 0.31}, {"stage": "SFT", "greedy": 0.44},
             {"stage": "SFT -> DPO", "greedy": 0.40}]
    _write(tmp_path, "03_training_stage", {"table": table, "comparisons": [
        {"a": "SFT", "b": "init", "diff": 0.13, "se": 0.03, "n": 300},
        {"a": "SFT", "b": "SFT -> DPO", "diff": 0.04, "se": 0.015, "n": 300}]}, n_test=300)
    rows = _rows(tmp_path)
    assert rows["SFT raises greedy accuracy"]["verdict"] == R.REPRODUCED
    assert rows["SFT raises greedy accuracy"]["se"] == "0.030 (paired, from the metrics file)"
    # stored as SFT minus DPO: read back as DPO minus SFT, beyond 2 SE the other way
    dpo = rows["DPO after SFT raises it further"]
    assert dpo["diff"] == "-0.040" and dpo["verdict"] == R.CONTRADICTED and dpo["mde"] == "0.030"


def test_seeds_compare_per_problem_means(tmp_path):
    rng = np.random.default_rng(1)
    n = 200
    pair = [(rng.random(n) < 0.3).astype(int).tolist() for _ in range(3)]
    lmle = [_flip(p, 30, 3) for p in pair]
    results = [{"objective": "init", "seed": 0, "greedy": 0.3}]
    for name, runs in (("pairwise", pair), ("listmle", lmle)):
        results += [{"objective": name, "seed": s, "greedy": float(np.mean(v))} for s, v in enumerate(runs)]
    _write(tmp_path, "04_ranking_losses", {"results": results, "per_problem": {
        "pairwise": pair, "listmle": lmle}}, n_test=n)
    row = _rows(tmp_path)["Listwise beats pairwise: listmle (one round, 04)"]
    s = paired_stats(np.mean(pair, axis=0), np.mean(lmle, axis=0))
    assert row["se"] == f"{s.se:.3f} (paired)" and row["verdict"] == R.REPRODUCED
    assert "mean of 3 seeds" in row["ours"]


def test_recall_and_crossover_paired(tmp_path):
    from larpo_lite.metrics import pass_at_k

    rng = np.random.default_rng(2)
    n, k = 100, 16
    p_correct = {"0.3": 0.30, "1.0": 0.12}
    correct = {t: rng.random((n, k)) < np.where(rng.random((n, 1)) < 0.6, p, 0.0) for t, p in p_correct.items()}
    # T=0.3: the same few problems right every time; T=1.0 spreads its hits over more problems
    correct["0.3"] = np.repeat(rng.random((n, 1)) < 0.3, k, axis=1)
    per = {t: {str(m): pass_at_k(k, c.sum(axis=1), m).tolist() for m in (1, 16)}
           for t, c in correct.items()}
    recall = {t: {m: float(np.mean(v)) for m, v in d.items()} for t, d in per.items()}
    assert recall["0.3"]["1"] > recall["1.0"]["1"] and recall["1.0"]["16"] > recall["0.3"]["16"]
    ci = {t: {m: [v - 0.1, v + 0.1] for m, v in d.items()} for t, d in recall.items()}
    metrics = {"recall": recall, "recall_ci90": ci, "best_temperature_by_n": {"1": 0.3, "16": 1.0},
               "crossover": True, "per_problem_recall": per}
    _write(tmp_path, "02_recall_at_n", metrics, n_test=n)
    rows = _rows(tmp_path)
    cross = rows["Temperature crossover"]
    s = paired_stats(per["0.3"]["16"], per["1.0"]["16"])
    assert cross["se"] == f"{s.se:.3f} (paired)" and cross["diff"] == f"{s.diff:+.3f}"
    assert cross["verdict"] == R.REPRODUCED
    assert rows["Recall@N rises steeply with N"]["se"].endswith("(paired)")
    # without the per-problem terms the unpaired error of 100 problems leaves it open
    del metrics["per_problem_recall"]
    _write(tmp_path, "02_recall_at_n", metrics, n_test=n)
    assert _rows(tmp_path)["Temperature crossover"]["se"].endswith("(binomial, unpaired)")
    # the reverse crossover (higher T best at N=1, lower at N=16), beyond noise: contradicted
    swapped = {"0.3": per["1.0"], "1.0": per["0.3"]}
    rec2 = {t: {m: float(np.mean(v)) for m, v in d.items()} for t, d in swapped.items()}
    _write(tmp_path, "02_recall_at_n", {**metrics, "recall": rec2, "per_problem_recall": swapped,
                                        "best_temperature_by_n": {"1": 1.0, "16": 0.3}}, n_test=n)
    cross = _rows(tmp_path)["Temperature crossover"]
    assert cross["verdict"] == R.CONTRADICTED and cross["diff"].startswith("-")
    # one temperature best at both ends: tested against its strongest rival, not against itself
    # (which would be a difference of 0 with SE 0)
    _write(tmp_path, "02_recall_at_n", {**metrics, "recall": rec2, "per_problem_recall": swapped,
                                        "best_temperature_by_n": {"1": 1.0, "16": 1.0}}, n_test=n)
    cross = _rows(tmp_path)["Temperature crossover"]
    s = paired_stats(swapped["0.3"]["16"], swapped["1.0"]["16"])
    assert cross["diff"] == f"{s.diff:+.3f}" and cross["se"] == f"{s.se:.3f} (paired)" and s.se > 0


def test_candidate_list_gains_use_their_runs(tmp_path):
    base = [1] * 30 + [0] * 70
    runs = {"list_size": {"2": [{"test_greedy": 0.3}], "8": [{"test_greedy": 0.42}]},
            "memory": {"current": [{"test_greedy": 0.3}], "all": [{"test_greedy": 0.3}]},
            "temperatures": {"single [0.7]": [{"test_greedy": 0.3}],
                             "mix [1.0, 0.5]": [{"test_greedy": 0.25}]}}
    per = {"list_size/2": base, "list_size/8": _flip(base, 13, 1),
           "memory/current": base, "memory/all": base,
           "temperatures/single [0.7]": base, "temperatures/mix [1.0, 0.5]": _flip(base, 0, 5)}
    gains = {"k_largest_vs_smallest": 0.12, "memory_all_vs_current": 0.0, "mix_vs_single": -0.05}
    _write(tmp_path, "06_candidate_lists", {**runs, "gains": gains, "per_problem": per}, n_test=100)
    rows = _rows(tmp_path)
    assert rows["More responses per prompt help"]["verdict"] == R.REPRODUCED
    assert rows["Memorizing earlier lists helps"]["verdict"] == R.INCONCLUSIVE
    assert rows["Memorizing earlier lists helps"]["se"] == "0.000 (paired)"
    # five problems lost and none gained: beyond 2 paired SE the other way
    assert rows["A temperature mix helps"]["verdict"] == R.CONTRADICTED
    # without per-problem scores: the runs' accuracies, unpaired, and +0.12 is within 2 SE
    _write(tmp_path, "06_candidate_lists", {**runs, "gains": gains}, n_test=100)
    row = _rows(tmp_path)["More responses per prompt help"]
    assert row["se"] == f"{R._diff_se(0.42, 0.3, 100):.3f} (binomial, unpaired)"
    assert row["verdict"] == R.INCONCLUSIVE


def test_report_from_metrics_files(tmp_path):
    _write(tmp_path, "03_training_stage", {"table": [
        {"stage": "init", "greedy": 0.10}, {"stage": "SFT", "greedy": 0.60}, {"stage": "SFT -> DPO", "greedy": 0.55}]})
    _write(tmp_path, "04_ranking_losses", {"results": [
        {"objective": "init", "seed": 0, "greedy": 0.1},
        *[{"objective": "pairwise", "seed": s, "greedy": 0.30} for s in range(3)],
        *[{"objective": "listmle", "seed": s, "greedy": 0.35} for s in range(3)]]})
    _write(tmp_path, "05_hard_negatives", {"test_greedy": {
        "unrelated": 0.5, "other_prompt": 0.4, "incorrect_high_t": 0.3, "incorrect_low_t": 0.2},
        "order_reproduced": False})
    rows = _rows(tmp_path)
    assert rows["SFT raises greedy accuracy"]["verdict"] == R.REPRODUCED
    assert rows["DPO after SFT raises it further"]["verdict"] == R.INCONCLUSIVE
    assert rows["Listwise beats pairwise: listmle (one round, 04)"]["verdict"] == R.INCONCLUSIVE
    assert "listmle 0.350" in rows["Listwise beats pairwise: listmle (one round, 04)"]["ours"]
    assert rows["Harder negatives help more"]["verdict"] == R.CONTRADICTED  # -0.3, SE about 0.12
    assert rows["LARPO beats iterative DPO"]["verdict"] == R.NOT_RUN
    # every listwise objective gets its own row: none is picked on the test numbers
    assert [k for k in rows if k.startswith("Listwise beats pairwise")] == [
        "Listwise beats pairwise: listmle (one round, 04)"]
    assert rows["LARPO beats iterative DPO"]["diff"] == "-"
    text = R.write_report(tmp_path).read_text()
    assert "| finding | paper | ours | diff | SE | MDE | verdict |" in text
    assert "| SFT raises greedy accuracy |" in text and "not run" in text
    assert "binomial, unpaired" in text and "1 contradicted" in text
    assert "03_training_stage.json" in text


def test_mean_rewards_get_a_direction_unless_paired(tmp_path):
    params = {"alignment_task": "ultrafeedback", "task": "gsm8k", "model_name": "m", "preset": "p"}
    runs = {"listmle": [{"test_greedy": 0.0}], "iterative DPO": [{"test_greedy": 0.0}]}
    for gap, want in ((0.01, R.DIRECTION), (-0.01, R.OPPOSITE)):
        acc = {"init": -0.2, "listmle": -0.1 + gap, "iterative DPO": -0.1, "offline DPO": -0.3}
        _write(tmp_path, "07_larpo_loop", {"test_greedy": acc, "runs": runs}, **params)
        row = _rows(tmp_path)["LARPO beats iterative DPO: listmle"]
        assert row["verdict"] == want and row["se"] == "-" and row["mde"] == "-"
    # per-problem rewards give a paired error on real-valued scores
    rng = np.random.default_rng(3)
    dpo = rng.normal(-0.1, 1.0, 64)
    best = dpo + rng.normal(0.5, 0.2, 64)
    acc = {"listmle": float(best.mean()), "iterative DPO": float(dpo.mean())}
    _write(tmp_path, "07_larpo_loop", {"test_greedy": acc, "runs": runs, "per_problem": {
        "listmle": best.tolist(), "iterative DPO": dpo.tolist()}}, n_test=64, **params)
    row = _rows(tmp_path)["LARPO beats iterative DPO: listmle"]
    assert row["verdict"] == R.REPRODUCED and row["se"].endswith("(paired)")
    # the same gap in accuracy is within binomial noise
    _write(tmp_path, "07_larpo_loop", {"test_greedy": {"listmle": 0.51, "iterative DPO": 0.50},
                                       "runs": runs}, **{**params, "alignment_task": ""})
    assert _rows(tmp_path)["LARPO beats iterative DPO: listmle"]["verdict"] == R.INCONCLUSIVE
    text = R.write_report(tmp_path).read_text()
    assert "m on gsm8k (preset p)" in text  # alignment_task "" here: the report names the task
