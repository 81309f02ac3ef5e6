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
    # the MDE column is the 80%-power one, 2.8 SE, as the metrics' own mde
    assert row["se"] == f"{s.se:.3f} (paired)" and row["mde"] == f"{2.8 * s.se:.3f}"
    assert abs(s.mde - 2.8 * s.se) <= 1e-12 * max(s.se, 1.0)
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
    assert dpo["diff"] == "-0.040" and dpo["verdict"] == R.CONTRADICTED and dpo["mde"] == "0.042"


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


def test_a_single_seed_04_row_is_never_reproduced(tmp_path):
    # 04's one-seed objectives (the non-headline listwise arms): beyond 2 SE is an anecdote
    results = [{"objective": "init", "seed": 0, "greedy": 0.3},
               {"objective": "pairwise", "seed": 0, "greedy": 0.30},
               {"objective": "pairwise", "seed": 1, "greedy": 0.31},
               {"objective": "listmle", "seed": 0, "greedy": 0.45}]
    comps = [{"a": "listmle", "b": "pairwise", "diff": 0.145, "se": 0.03}]
    _write(tmp_path, "04_ranking_losses", {"results": results, "comparisons": comps}, n_test=300)
    row = _rows(tmp_path)["Listwise beats pairwise: listmle (one round, 04)"]
    assert row["verdict"] == R.SINGLE_SEED and row["se"].startswith("0.030")


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
    header = next(line for line in text.splitlines() if line.startswith("| finding"))
    assert header == R.TABLE_HEADER and "| MDE (80% power, 2.8 SE) | verdict (2 SE) |" in header
    assert "within 2 paired SE either way: inconclusive" in text
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


def test_holm_on_hand_computed_examples():
    # sorted: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, then max(0.06, 0.04 x1) = 0.06: the
    # step-down stops at 0.03, so 0.04 is not rejected although it is below 0.05 on its own
    adjusted, rejected = R.holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02], rel=1e-12)
    assert rejected == [True, False, False, True]
    # 0.001 x3 = 0.003, 0.012 x2 = 0.024, 0.02 x1 = 0.02 -> 0.024: all three rejected, where
    # Bonferroni (0.02 x 3 = 0.06) would keep the last
    adjusted, rejected = R.holm([0.02, 0.001, 0.012])
    assert adjusted == pytest.approx([0.024, 0.003, 0.024], rel=1e-12)
    assert rejected == [True, True, True]
    assert R.holm([0.9, 0.8]) == ([1.0, 1.0], [False, False])  # 0.8 x 2 capped at 1, kept as the running max
    assert R.holm([0.9, 0.3]) == ([0.9, 0.6], [False, False])
    with pytest.raises(ValueError, match="1.5"):
        R.holm([0.01, 1.5])


def test_two_sided_p_normal_approximation():
    assert R.two_sided_p(1.959964, 1.0) == pytest.approx(0.05, rel=1e-5)
    assert R.two_sided_p(-1.959964, 1.0) == pytest.approx(0.05, rel=1e-5)
    assert R.two_sided_p(2.0, 1.0) == pytest.approx(0.0455003, rel=1e-5)  # the 2-SE rule's level
    assert R.two_sided_p(0.0, 0.0) == 1.0 and R.two_sided_p(0.1, 0.0) == 0.0


def test_holm_verdict_column(tmp_path):
    # three LARPO rows against iterative DPO: 5 SE, 2.1 SE, 0 SE
    acc = {"init": 0.3, "iterative DPO": 0.40, "contrastive": 0.50, "lambdarank": 0.442, "listmle": 0.40}
    comps = [{"a": "contrastive", "b": "iterative DPO", "diff": 0.10, "se": 0.02, "n": 300},
             {"a": "lambdarank", "b": "iterative DPO", "diff": 0.042, "se": 0.02, "n": 300},
             {"a": "listmle", "b": "iterative DPO", "diff": 0.0, "se": 0.02, "n": 300}]
    _write(tmp_path, "07_larpo_loop", {"test_greedy": acc, "comparisons": comps}, n_test=300)
    rows = _rows(tmp_path)
    a, b, c = (rows[f"LARPO beats iterative DPO: {o}"] for o in ("contrastive", "lambdarank", "listmle"))
    assert a["verdict"] == b["verdict"] == R.REPRODUCED and c["verdict"] == R.INCONCLUSIVE
    assert b["mde"] == f"{2.8 * 0.02:.3f}"
    p = [R.two_sided_p(x["diff"], x["se"]) for x in comps]
    adjusted, _ = R.holm(p)
    assert adjusted[1] == pytest.approx(2 * p[1], rel=1e-12) and 0.05 < adjusted[1] < 0.1
    assert (a["holm"], b["holm"], c["holm"]) == (R.REPRODUCED, R.AFTER_HOLM, R.INCONCLUSIVE)
    assert b["p_holm"] == f"{adjusted[1]:.2g}" and a["p_holm"] == "<0.0001"
    assert rows["SFT, then DPO, raise greedy accuracy"]["holm"] == "-"  # not run: outside the family
    text = R.write_report(tmp_path).read_text()
    assert "over the 3 rows with a standard error" in text
    assert "After Holm, 1 of the 2 conclusive rows keep their verdict: 1 of the 2 reproduced" in text
    assert f"| {R.REPRODUCED} | {R.AFTER_HOLM} ({b['p_holm']}) |" in text


def _loop_rows(*rounds):
    """A run's rows: the initial policy, then one trained round per (train_seconds, lists)."""
    out = [{"iteration": 0, "test_greedy": 0.3}]
    out += [{"iteration": i + 1, "train_seconds": t, "lists": n, "test_greedy": 0.4}
            for i, (t, n) in enumerate(rounds)]
    return out


def _shared_04_07(tmp_path):
    """04 and 07 metrics whose runs overlap as the default run's do: 07's contrastive is 04's run
    (same training statistics), its offline DPO loaded 04's pairwise training, its lambdarank
    adds a second round to 04's, its listmle is a run of its own."""
    stats = {"pairwise": 455.7, "contrastive": 658.4, "lambdarank": 588.2, "listmle": 601.2}
    results = [{"objective": "init", "seed": 0, "greedy": 0.31}]
    results += [{"objective": o, "seed": 0, "greedy": 0.4, "lists": 110, "train_seconds": t,
                 "train_reused_from": None} for o, t in stats.items()]
    _write(tmp_path, "04_ranking_losses", {"results": results}, n_test=300)
    runs = {"contrastive": _loop_rows((658.4446, 110)), "lambdarank": _loop_rows((588.2, 110), (500.0, 120)),
            "listmle": _loop_rows((612.0, 110)), "iterative DPO": _loop_rows((177.6, 43)),
            "offline DPO": _loop_rows((455.6934, 110))}
    runs["offline DPO"][1]["train_reused_from"] = "loop/pairwise-abc round 1"
    acc = {"init": 0.31, "contrastive": 0.49, "lambdarank": 0.46, "listmle": 0.39,
           "iterative DPO": 0.38, "offline DPO": 0.41}
    _write(tmp_path, "07_larpo_loop", {"test_greedy": acc, "runs": runs}, n_test=300)


def test_rows_that_share_runs_say_so(tmp_path):
    _shared_04_07(tmp_path)
    rows = _rows(tmp_path)
    c04 = rows["Listwise beats pairwise: contrastive (one round, 04)"]["shared"]
    assert "04's contrastive run also in *LARPO beats iterative DPO: contrastive* (as 07's contrastive run)" in c04
    assert "04's pairwise run also in *Listwise beats pairwise: lambdarank (one round, 04)*" in c04
    c07 = rows["LARPO beats iterative DPO: contrastive"]["shared"]
    assert "*Listwise beats pairwise: contrastive (one round, 04)* (as 04's contrastive run)" in c07
    assert "07's iterative DPO run also in *LARPO beats iterative DPO: lambdarank*" in c07
    # 07's lambdarank continues 04's: the first round is shared, the run is not the same
    lam = rows["Listwise beats pairwise: lambdarank (one round, 04)"]["shared"]
    assert ("04's lambdarank run shares its round 1 with 07's lambdarank run "
            "(*LARPO beats iterative DPO: lambdarank*)") in lam
    # 07's listmle trained on its own: its row names no 04 row
    assert "04)" not in rows["LARPO beats iterative DPO: listmle"]["shared"]
    text = R.write_report(tmp_path).read_text()
    assert "## Runs under several names" in text
    assert ("- 04's pairwise run = 07's offline DPO run (one training: 07's offline DPO run loaded "
            "round 1 from loop/pairwise-abc round 1)") in text
    assert "- 04's contrastive run = 07's contrastive run (one training)" in text
    assert "04's listmle run = 07's listmle run" not in text


def test_a_row_on_the_same_runs_repeats_that_comparison(tmp_path):
    # "LARPO beats offline DPO" on 07's runs: the same two runs as 04's contrastive vs pairwise
    _shared_04_07(tmp_path)
    rows = [{"finding": "listwise vs pairwise (04)"}, {"finding": "LARPO vs offline DPO (07)"},
            {"finding": "LARPO vs iterative DPO (07)"}]
    tests = [R._RowTest(0.01, (("04", "contrastive"), ("04", "pairwise"))),
             R._RowTest(0.01, (("07", "contrastive"), ("07", "offline DPO"))),
             R._RowTest(0.01, (("07", "contrastive"), ("07", "iterative DPO")))]
    notes = R.shared_runs(rows, tests, R._RunIndex(tmp_path))
    assert notes[1].startswith("repeats the comparison of *listwise vs pairwise (04)*")
    assert "07's offline DPO run also in *listwise vs pairwise (04)* (as 04's pairwise run)" in notes[1]
    assert notes[0].startswith("repeats the comparison of *LARPO vs offline DPO (07)*")
    assert "repeats" not in notes[2]  # one run in common is not the same comparison


def test_choices_that_saw_the_test_split(tmp_path):
    recall = {"0.3": {"1": 0.2, "16": 0.5}, "1.0": {"1": 0.1, "16": 0.6}}
    _write(tmp_path, "02_recall_at_n", {"recall": recall, "best_temperature_by_n": {"1": 0.3, "16": 1.0},
                                        "recall_ci90": {t: {n: [0, 1] for n in r} for t, r in recall.items()}})
    sweep = {t: _loop_rows((50.0, 10)) for t in ("0.3", "0.7", "1.0")}
    for rows, acc in zip(sweep.values(), (0.35, 0.37, 0.36), strict=True):
        rows[-1]["test_greedy"] = acc
    _write(tmp_path, "05_hard_negatives", {"test_greedy": {"unrelated": 0.39, "incorrect_low_t": 0.37},
                                           "temperature_sweep": sweep}, n_eval_sweep=100)
    study = tmp_path / "study.yaml"
    study.write_text("# A study on validation. The test split is never read (test greedy is not\n"
                     "# looked at).\n#\n# Grid, from a probe (one round at T=0.7, 3 epochs moved test\n"
                     "# greedy 0.31 -> 0.44). Then more.\nbase:\n  epochs: 3\n")
    _write(tmp_path, "tuning_validation", {"study": str(study), "split": "validation", "n_val": 200,
                                           "base": {"epochs": 3, "k": 8},
                                           "chosen": {"pairwise": {"lr": 5e-4}, "listmle": {"lr": 1e-4}}})
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "p.yaml").write_text(
        "lr: 0.1                # chosen on validation\n"
        "k_train: 8             # from the pilot's test accuracy 0.41 (k=4: 0.38)\n")
    _write(tmp_path, "07_larpo_loop", {"test_greedy": {"init": 0.3}, "best_larpo_on_validation": "listmle"},
           preset="p", epochs=3, k_train=4)
    items, not_listed = R.choices_that_saw_test(tmp_path, root=tmp_path)
    assert items[0].startswith("02's best temperature at each N is picked by pass@N on its 32 test problems "
                               "(N=1: T=0.3, N=16: T=1.0)")
    assert "*Temperature crossover* tests T=0.3 against T=1.0" in items[0]
    assert items[1].startswith("05 names T=0.7 the best of its 2 lower negative temperatures by test greedy")
    assert ('takes its base and grid from a result on the test split: "Grid, from a probe (one round at '
            'T=0.7, 3 epochs moved test greedy 0.31 -> 0.44)"') in items[2]
    assert "never" not in items[2] and "The preset p keeps epochs 3." in items[2]  # k_train 4 is not the base's 8
    assert items[3] == "`params/p.yaml`: `k_train: 8`: from the pilot's test accuracy 0.41 (k=4: 0.38)"
    assert len(items) == 4  # the lr chosen on validation is not listed ...
    assert not_listed.startswith("Not listed, chosen on validation: each objective's lr (pairwise 0.0005, "
                                 "listmle 0.0001) by the validation study on 200 validation problems")
    assert "07's best LARPO objective (listmle), by validation greedy" in not_listed  # ... but named here
    text = R.render(R.findings(tmp_path), tmp_path, root=tmp_path)
    section = text.split("## Choices that saw the test split\n", 1)[1]
    assert section.startswith("\n- 02's best temperature") and not_listed in section
    # without those reports the section is still there and says so
    empty = tmp_path / "empty"
    empty.mkdir()
    text = R.write_report(empty).read_text()
    assert "## Choices that saw the test split\n\n- none found in the metrics files." in text


def test_the_loop_rows_carry_the_seeds_spread_and_a_single_seed_row_is_never_reproduced(tmp_path):
    arms = [{"arm": "iterative DPO", "test_greedy": [0.3, 0.35, 0.36, 0.37], "rounds": 3, "k": 8},
            {"arm": "LARPO listmle", "test_greedy": [0.3, 0.4, 0.42, 0.45], "rounds": 3, "k": 8},
            {"arm": "LARPO contrastive", "test_greedy": [0.3, 0.4, 0.45, 0.47], "rounds": 3, "k": 8}]
    comps = [{"a": "LARPO listmle", "b": "iterative DPO", "diff": 0.08, "se": 0.03,
              "se_kind": "bootstrap over seeds and problems", "seeds": [3, 3], "n": 300, "mde": 0.084},
             {"a": "LARPO contrastive", "b": "iterative DPO", "diff": 0.10, "se": 0.02,
              "se_kind": "bootstrap over seeds and problems", "seeds": [1, 3], "n": 300, "mde": 0.056}]
    _write(tmp_path, "07_larpo_loop", {"arms": arms, "comparisons": comps, "test_greedy": {}})
    rows = _rows(tmp_path)
    head = rows["LARPO beats iterative DPO: listmle"]
    assert head["verdict"] == R.REPRODUCED and "bootstrap over seeds and problems" in head["se"]
    assert head["mde"] == f"{2.8 * 0.03:.3f}"
    single = rows["LARPO beats iterative DPO: contrastive (single seed)"]
    assert single["verdict"] == R.SINGLE_SEED != R.REPRODUCED
