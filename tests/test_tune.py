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


# --------------------------------------------------------------------------- staged studies
from larpo_lite import tune as tune_mod  # noqa: E402
from larpo_lite.loop import LoopConfig  # noqa: E402

_STAGED = {"n_val": 40, "base": {"iterations": 2, "k": 4},
           "round_size": {"objective": "pairwise", "lr": 2e-4,
                          "options": [{"prompts_per_iter": 8, "epochs": 1},
                                      {"prompts_per_iter": 16, "epochs": 1}]},
           "grids": {"pairwise": [1e-4, 2e-4, 4e-4]},
           "extend": {"factor": 2.0, "max": 2}}


def _fake_row(cfg, n_right):
    """A finished setting's row with the first ``n_right`` of 40 validation problems right (or
    ``n_right`` the per-problem string itself; the initial policy: the first 10)."""
    init = "1" * 10 + "0" * 30
    got = n_right if isinstance(n_right, str) else "1" * n_right + "0" * (40 - n_right)
    stats = paired_stats(np.array(list(init), float), np.array(list(got), float))
    return {"name": f"lr={cfg.lr} M={cfg.prompts_per_iter}", "phase": "", "grid": None,
            "objective": cfg.objective, "lr": cfg.lr, "beta": cfg.beta, "start": "initial",
            "cost": list(tune_mod._cost(cfg)), "val_correct_init": init, "val_correct": got,
            "val_correct_round1": got, "diff": stats.diff, "se": stats.se, "mde": stats.mde,
            "verdict": stats.verdict, "config_hash": tune_mod._config_hash(cfg)}


def _state(spec=None):
    spec = tune_mod.load_staged(spec or _STAGED, "study.yaml")
    base = LoopConfig(eval_split="validation", n_val=40, iterations=2, k=4)
    return tune_mod._Staged(spec, base, Path("runs"), {})


def _fill(state, right_by_lr):
    """Give every listed setting a row (``right_by_lr(lr)`` of 40 right); returns the settings
    and whether the list is final."""
    for _ in range(10):
        settings, final = state.settings()
        missing = [c for *_, c in settings if tune_mod._config_hash(c) not in state.rows]
        if not missing:
            return settings, final
        for c in missing:
            state.rows[tune_mod._config_hash(c)] = _fake_row(c, right_by_lr(c.lr))
    raise AssertionError("the settings never settled")


def test_a_staged_study_chooses_the_round_size_first_then_each_lr_at_it():
    state = _state()
    settings, final = state.settings()
    assert [s[1] for s in settings] == ["round_size", "round_size"] and not final
    for c in [s[3] for s in settings]:
        state.rows[tune_mod._config_hash(c)] = _fake_row(c, 20 if c.prompts_per_iter == 16 else 12)
    settings, _ = state.settings()
    grid = [s[3] for s in settings if s[1] == "lr"]
    assert [c.lr for c in grid] == [1e-4, 2e-4, 4e-4]
    assert {c.prompts_per_iter for c in grid} == {16}  # the chosen round size
    assert state.chosen()["round_size"]["prompts_per_iter"] == 16


def test_an_interior_choice_needs_no_extension():
    state = _state(dict(_STAGED, round_size=None))
    _, final = _fill(state, lambda lr: {1e-4: 12, 2e-4: 20, 4e-4: 14}[lr])
    c = state.chosen()["pairwise"]
    assert final and c["lr"] == 2e-4 and c["extensions"] == [] and "edge_reason" not in c


def test_an_edge_choice_extends_the_grid_until_two_extensions_gain_nothing():
    state = _state(dict(_STAGED, round_size=None))
    # the top edge wins, and each step further gains one problem net (loses one, gains two):
    # no more than 1 paired SE
    r20 = "1" * 20 + "0" * 20
    r21 = "0" + "1" * 21 + "0" * 18
    r22 = "1" + "0" + "1" * 21 + "0" * 17
    _, final = _fill(state, lambda lr: {1e-4: 12, 2e-4: 12, 4e-4: r20, 8e-4: r21, 1.6e-3: r22}[lr])
    c = state.chosen()["pairwise"]
    assert final and c["extensions"] == [8e-4, 1.6e-3] and c["lr"] == 1.6e-3
    assert "edge_reason" in c and "top edge" in c["edge_reason"]


def test_a_tie_beyond_the_edge_brackets_the_choice():
    state = _state(dict(_STAGED, round_size=None))
    _, final = _fill(state, lambda lr: 12 if lr < 4e-4 else 20)
    c = state.chosen()["pairwise"]  # ties go to the smaller lr: 4e-4, inside [2e-4, 8e-4]
    assert final and c["lr"] == 4e-4 and c["extensions"] == [8e-4] and "edge_reason" not in c


def test_an_extension_that_wins_moves_the_choice_inside_the_grid():
    state = _state(dict(_STAGED, round_size=None))
    _, final = _fill(state, lambda lr: {1e-4: 12, 2e-4: 14, 4e-4: 18, 8e-4: 30}.get(lr, 16))
    c = state.chosen()["pairwise"]
    assert final and c["lr"] == 8e-4 and c["extensions"] == [8e-4, 1.6e-3]
    assert "edge_reason" not in c  # 1.6e-3 is worse: 8e-4 is bracketed


def test_graded_vs_binary_compares_one_graded_round_with_the_binary_round_one():
    spec = dict(_STAGED, round_size=None, graded_vs_binary={"objectives": ["pairwise"]})
    state = _state(spec)
    _fill(state, lambda lr: {1e-4: 12, 2e-4: 20, 4e-4: 14}.get(lr, 12))
    settings, final = state.settings()
    graded = [s for s in settings if s[1] == "graded_vs_binary"]
    assert len(graded) == 1 and graded[0][3].reranker == "graded_verifier"
    assert graded[0][3].iterations == 1 and graded[0][3].lr == 2e-4
    row = _fake_row(graded[0][3], 25)
    row.update(phase="graded_vs_binary", grid="pairwise", reranker="graded_verifier",
               val_greedy=25 / 40)
    state.rows[row["config_hash"]] = row
    got = state.graded_vs_binary()["pairwise"]
    assert got["diff"] == pytest.approx((25 - 20) / 40) and got["se"] > 0


def test_staged_study_files_are_checked(tmp_path):
    for text, msg in [("grids: {pairwise: []}\n", "non-empty list of lrs"),
                      ("grids: {pairwise: [0.0]}\n", "finite and > 0"),
                      ("grids: {pairwise: [1e-4]}\nextend: {factor: 1.0}\n", "factor > 1"),
                      ("grids: {pairwise: [1e-4]}\nrounds: 2\n", "unknown keys"),
                      ("grids: {pairwise: [1e-4]}\ngraded_vs_binary: {objectives: [listmle]}\n",
                       "must name grids")]:
        with pytest.raises(ValueError, match=msg):
            load_study(_study(tmp_path, text))


def test_a_staged_study_runs_reads_back_and_takes_rows_from_an_earlier_report(tmp_path, sandbox):
    study = _study(tmp_path, """
n_val: 3
base: {iterations: 2, k: 4, temperatures: [0.7], eval_samples: 0, prompts_per_iter: 4}
grids:
  pairwise: [1e-3, 1e-2]
extend: {max: 0}
""")
    params = Params.load("smoke", reports_dir=str(tmp_path / "reports"))
    out = run(params, study=study, runs_dir=tmp_path / "runs")
    m = json.loads((tmp_path / "reports" / "tuning_validation.json").read_text())["metrics"]
    assert m["complete"] and [r["lr"] for r in m["rows"]] == [1e-3, 1e-2]
    assert not (tmp_path / "reports" / "tuning_validation.partial.json").exists()
    for r in m["rows"]:
        assert {"objective", "lr", "start", "reranker", "prompts_per_iter"} <= set(r)
        assert len(r["val_greedy_per_round"]) == 3 and "diff_round1" in r
    assert out["chosen"]["pairwise"]["lr"] == choose(out["rows"])["lr"]
    # the run folders are gone (a new session): the committed report's rows are taken
    import shutil

    shutil.rmtree(tmp_path / "runs")
    sandbox["calls"].clear()
    again = run(params, study=study, runs_dir=tmp_path / "runs")
    assert not sandbox["calls"] and all(r.get("read_back") for r in again["rows"])
    assert [r["val_correct"] for r in again["rows"]] == [r["val_correct"] for r in out["rows"]]


def test_an_unfinished_staged_study_reports_apart_and_carries_its_rows_over(tmp_path, sandbox,
                                                                             monkeypatch):
    """Killed after its first setting: the rows go to tuning_validation.partial.json (the
    notebooks keep reading the last finished study), and the next start takes them from there."""
    study = _study(tmp_path, """
n_val: 3
base: {iterations: 1, k: 4, temperatures: [0.7], eval_samples: 0, prompts_per_iter: 4}
grids:
  pairwise: [1e-3, 1e-2]
extend: {max: 0}
""")
    params = Params.load("smoke", reports_dir=str(tmp_path / "reports"))
    real = tune_mod.run_locked
    calls = []

    def killed_after_one(cfg, folder, **kw):
        if calls:
            raise KeyboardInterrupt
        calls.append(cfg.lr)
        return real(cfg, folder, **kw)

    monkeypatch.setattr(tune_mod, "run_locked", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        run(params, study=study, runs_dir=tmp_path / "runs")
    partial = tmp_path / "reports" / "tuning_validation.partial.json"
    m = json.loads(partial.read_text())["metrics"]
    assert not m["complete"] and [r["lr"] for r in m["rows"]] == [1e-3] and m["pending"]
    assert not (tmp_path / "reports" / "tuning_validation.json").exists()
    import shutil

    shutil.rmtree(tmp_path / "runs")  # a new session: only the committed partial report
    monkeypatch.setattr(tune_mod, "run_locked", real)
    out = run(params, study=study, runs_dir=tmp_path / "runs")
    assert [r.get("read_back", False) for r in out["rows"]] == [True, False]
    assert not partial.exists() and (tmp_path / "reports" / "tuning_validation.json").is_file()
