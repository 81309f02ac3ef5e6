"""The reproduction report: verdicts computed from the numbers, rows for runs not done yet."""

import json

from larpo_lite import reproduction as R


def _write(folder, name, metrics, n_test=32):
    (folder / f"{name}.json").write_text(json.dumps({"params": {"n_test": n_test}, "metrics": metrics}))


def test_verdict_rule():
    se = R.binomial_se(0.5, 100)
    assert abs(se - 0.05) < 1e-12
    assert R.verdict(0.2, se) == R.REPRODUCED
    assert R.verdict(0.05, se) == R.PARTLY
    assert R.verdict(0.0, se) == R.NOT
    assert R.verdict(-0.3, se) == R.NOT


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
    rows = {r["finding"]: r for r in R.findings(tmp_path)}
    assert rows["SFT raises greedy accuracy"]["verdict"] == R.REPRODUCED
    assert rows["DPO after SFT raises it further"]["verdict"] == R.NOT
    assert rows["Listwise beats pairwise (one round, 04)"]["verdict"] == R.PARTLY
    assert "listmle 0.350" in rows["Listwise beats pairwise (one round, 04)"]["ours"]
    assert rows["Harder negatives help more"]["verdict"] == R.NOT
    assert rows["LARPO beats iterative DPO"]["verdict"] == R.NOT_RUN
    path = R.write_report(tmp_path)
    text = path.read_text()
    assert "| SFT raises greedy accuracy |" in text and "not run" in text
    assert "03_training_stage.json" in text


def test_mean_rewards_get_a_direction_not_a_binomial_verdict(tmp_path):
    params = {"n_test": 32, "alignment_task": "ultrafeedback", "task": "gsm8k",
              "model_name": "m", "preset": "p"}
    runs = {"listmle": [{"test_greedy": 0.0}], "iterative DPO": [{"test_greedy": 0.0}]}
    for gap, want in ((0.01, R.DIRECTION), (-0.01, R.NOT)):
        acc = {"init": -0.2, "listmle": -0.1 + gap, "iterative DPO": -0.1, "offline DPO": -0.3}
        (tmp_path / "07_larpo_loop.json").write_text(json.dumps(
            {"params": params, "metrics": {"test_greedy": acc, "runs": runs}}))
        rows = {r["finding"]: r for r in R.findings(tmp_path)}
        assert rows["LARPO beats iterative DPO"]["verdict"] == want
    # the same gap in accuracy is within binomial noise
    (tmp_path / "07_larpo_loop.json").write_text(json.dumps(
        {"params": {**params, "alignment_task": ""}, "metrics": {"test_greedy": {
            "listmle": 0.51, "iterative DPO": 0.50}, "runs": runs}}))
    assert {r["finding"]: r for r in R.findings(tmp_path)}["LARPO beats iterative DPO"]["verdict"] == R.PARTLY
    text = R.write_report(tmp_path).read_text()
    assert "m on gsm8k (preset p)" in text  # alignment_task "" here: the report names the task
