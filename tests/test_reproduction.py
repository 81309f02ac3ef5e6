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
