"""Choosing the training setting on the validation split: studies of loop runs, paired
comparisons with the initial policy, shared samples, and never the test split."""

import json
from pathlib import Path

import numpy as np
import pytest

from larpo_lite import cache, cli, evaluate, loop
from larpo_lite.config import Params
from larpo_lite.metrics import paired_stats
from larpo_lite.tasks import mini_gsm
from larpo_lite.tune import choose, load_study, run

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A private candidate cache, every sampling call counted, and the test split unreadable."""
    root = tmp_path / "cache"
    root.mkdir()
    monkeypatch.setattr(cache, "cache_root", lambda: root)
    calls = []
    real_sample = cache.sample_candidates

    def counted(sampler, problems, tokenizer, **kw):
        calls.append(kw)
        return real_sample(sampler, problems, tokenizer, **kw)

    monkeypatch.setattr(cache, "sample_candidates", counted)
    real_split = mini_gsm.load_split

    def no_test(split, n=None):
        if split == "test":
            raise AssertionError("the test split was read while tuning")
        return real_split(split, n)

    monkeypatch.setattr(mini_gsm, "load_split", no_test)
    return {"root": root, "calls": calls}


def _study(tmp_path, text):
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def test_a_study_runs_every_setting_on_validation_and_shares_samples(tmp_path, sandbox):
    study = _study(tmp_path, """
n_val: 3
base: {iterations: 1, prompts_per_iter: 4, k: 4, temperatures: [0.7], epochs: 1, eval_samples: 0}
settings:
  - {objective: pairwise, lr: 1e-3}
  - {objective: pairwise, lr: 1e-2}
  - {name: gold at the chosen lr, objective: pairwise, lr: chosen, gold_in_list: false}
""")
    params = Params.load("smoke", reports_dir=str(tmp_path / "reports"))
    out = run(params, study=study, runs_dir=tmp_path / "runs")
    rows = out["rows"]
    assert [r["lr"] for r in rows] == [1e-3, 1e-2, choose(rows[:2])["lr"]]
    assert rows[2]["name"] == "gold at the chosen lr" and rows[2]["lists"] == 0  # no gold: no pair
    # one sample set and one initial evaluation served all three runs
    sampled = [c for c in sandbox["calls"] if c["k"] == 4]
    greedy = [c for c in sandbox["calls"] if c["temperature"] == 0.0]
    assert len(sampled) == 1 and len(greedy) == 1
    assert len(list(sandbox["root"].glob("*.jsonl"))) == 2
    saved = json.loads((tmp_path / "reports" / "tuning_validation.json").read_text())
    assert saved["params"]["n_val"] == 3 and saved["metrics"]["n_val"] == 3
    m = saved["metrics"]
    assert m["split"] == "validation" and m["study"] == str(study)
    for r in m["rows"]:
        assert {"diff", "se", "mde", "gained", "lost", "verdict", "seconds", "val_greedy_init",
                "val_greedy", "val_correct", "val_correct_init"} <= set(r)
        assert len(r["val_correct"]) == 3 and r["seconds"] > 0
        results = loop.read_results(r["run"])
        assert results[0]["val_correct"] == r["val_correct_init"]
        assert results[-1]["val_correct"] == r["val_correct"]
        assert json.loads((Path(r["run"]) / "config.json").read_text())[
            "eval_split"] == "validation"
    best = choose(m["rows"])
    assert set(m["chosen"]) == {"pairwise"}
    assert m["chosen"]["pairwise"]["name"] == best["name"]
    assert m["chosen"]["pairwise"]["moved_validation"] == (best["diff"] > 2 * best["se"])
    # read back, not run again
    sandbox["calls"].clear()
    again = run(params, study=study, runs_dir=tmp_path / "runs")
    assert not sandbox["calls"] and [r["val_correct"] for r in again["rows"]] == [
        r["val_correct"] for r in rows]


def test_the_recorded_paired_statistics_are_the_helpers(tmp_path, sandbox, uf_dir):
    """On a reward-scored task the per-problem scores are real numbers that differ between
    the policies, so the comparison is not trivially zero."""
    params = Params.load("smoke", reports_dir=str(tmp_path), n_val=4, alignment_task="ultrafeedback",
                         alignment_source=str(uf_dir), reward_model="tiny-random-rm")
    out = run(params, lrs=[5e-2], betas=[0.1], runs_dir=tmp_path / "runs")
    (row,) = out["rows"]
    assert out["task"] == "ultrafeedback" and row["train_steps"] > 0
    init, last = np.array(row["val_rewards_init"]), np.array(row["val_rewards"])
    assert len(init) == 4 and not np.array_equal(init, last)
    want = paired_stats(init, last)
    assert (row["diff"], row["se"], row["mde"], row["gained"], row["lost"], row["n"]) == (
        pytest.approx(want.diff), pytest.approx(want.se), pytest.approx(want.mde), want.gained,
        want.lost, 4)
    assert row["diff"] != 0 and row["se"] > 0
    # row 0 is the reward model's score of the initial policy's greedy answers
    from larpo_lite import models, sampling
    from larpo_lite.rewards import get_reranker
    from larpo_lite.tasks import load_task

    rm = get_reranker("reward_model", model_name="tiny-random-rm", device="cpu", dtype="float32")
    policy, tok = models.load_policy("tiny-random", device="cpu", dtype="float32")
    val = load_task("ultrafeedback", "validation", 4, str(uf_dir))
    got = evaluate.greedy_eval(sampling.make_sampler("hf", policy, tok, batch_size=16), val, tok,
                               params.max_new_tokens, reranker=rm)
    assert out["val_greedy_init"] == pytest.approx(got[0], abs=1e-5)
    assert init == pytest.approx(got[2], abs=1e-5)


def test_choose_prefers_the_change_then_the_cheaper_then_the_smaller_lr():
    def row(diff, lr, samples=64, epochs=2, beta=0.1):
        return {"diff": diff, "lr": lr, "beta": beta, "cost": [samples, epochs]}

    assert choose([row(0.01, 1e-4), row(0.02, 5e-4)])["lr"] == 5e-4
    assert choose([row(0.02, 5e-4), row(0.02, 1e-4)])["lr"] == 1e-4
    cheap = row(0.02, 5e-4, samples=32)
    assert choose([row(0.02, 1e-4), cheap]) is cheap
    assert choose([row(0.02, 1e-4, epochs=3), row(0.02, 2e-4, epochs=1)])["lr"] == 2e-4


def test_study_files_are_checked(tmp_path):
    good = load_study(_study(tmp_path, "n_val: 8\nbase: {k: 8, temperatures: 0.7}\n"
                             "settings:\n  - {lr: 1e-4, epochs: 3, gold_in_list: true}\n"))
    assert good["base"] == {"k": 8, "temperatures": [0.7]}
    assert good["settings"][0]["overrides"] == {"lr": 1e-4, "epochs": 3, "gold_in_list": True}
    for text, match in [
        ("settings:\n  - {lrr: 1e-4}\n", "'lrr' is not a setting; valid: .*lr"),
        ("settings:\n  - {epochs: 1.5}\n", "epochs must be int"),
        ("settings:\n  - {n_val: 10}\n", "'n_val' is not a setting"),
        ("settings:\n  - {eval_split: test}\n", "'eval_split' is not a setting"),
        ("settings: []\n", "non-empty"),
        ("base: {lr: chosen}\nsettings:\n  - {lr: 1e-4}\n", "only for settings"),
        ("n_val: 1\nsettings:\n  - {lr: 1e-4}\n", "n_val must be"),
    ]:
        with pytest.raises(ValueError, match=match):
            load_study(_study(tmp_path, text))
    with pytest.raises(ValueError, match="no such study"):
        load_study(tmp_path / "missing.yaml")


def test_the_shipped_study_loads_and_names_valid_settings():
    from larpo_lite.paths import repo_root

    study = load_study(repo_root() / "configs" / "tuning" / "default.yaml")
    assert study["n_val"] == 200
    cfg = loop.LoopConfig.from_params(Params.load("default"), alignment=True, **study["base"])
    objectives = {s["overrides"].get("objective", cfg.objective) for s in study["settings"]}
    assert objectives == set(loop.DEFAULT_STRATEGY)
    for s in study["settings"]:
        over = {k: v for k, v in s["overrides"].items() if v != "chosen"}
        loop.LoopConfig(**{**cfg.to_dict(), **over}).validate()


def test_the_command_refuses_a_study_and_a_grid_together(capsys):
    assert cli.main(["tune", "--preset", "smoke", "--study", "x.yaml", "--lrs", "1e-3"]) == 2
    assert "not both" in capsys.readouterr().err
