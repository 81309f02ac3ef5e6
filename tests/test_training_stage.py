"""Notebook 03's steps (larpo_lite.training_stage): DPO after SFT at the study's step size or,
said so, the preset's; the curves read in words; a collapse named from the run's numbers."""

import numpy as np
import pytest

from larpo_lite import training_stage as ts
from larpo_lite.config import Params
from larpo_lite.metrics import paired_stats


def test_dpo_after_sft_takes_the_studys_choice_else_says_it_falls_back(monkeypatch):
    params = Params.load("default")
    monkeypatch.setattr(ts.tune, "read_choices", lambda p: {})
    fallback = ts.dpo_setting(params)
    assert not fallback["from_study"] and fallback["lr"] == params.lr
    assert "no choice for DPO after SFT yet" in fallback["source"]
    choice = {"lr": 5e-5, "beta": 0.2, "diff": 0.04, "se": 0.02, "name": "pairwise_after_sft: lr=5e-05"}
    monkeypatch.setattr(ts.tune, "read_choices", lambda p: {ts.GRID: choice})
    chosen = ts.dpo_setting(params)
    assert chosen["from_study"] and (chosen["lr"], chosen["beta"]) == (5e-5, 0.2)
    assert "validation study's choice" in chosen["source"]
    cfg = ts.loop_config(params, chosen)
    assert (cfg.start, cfg.objective, cfg.strategy, cfg.iterations) == ("sft", "pairwise", "random_pair", 1)
    assert (cfg.lr, cfg.beta, cfg.prompts_per_iter, cfg.k) == (5e-5, 0.2, params.n_train_prompts, params.k_train)
    assert (cfg.n_val, cfg.n_test, cfg.eval_samples) == (0, 0, 0)  # the notebook evaluates each stage
    # the study's grid (configs/tuning/loop.yaml) is this run on the default preset, but for beta
    assert ts.differs_from_study(cfg, chosen) == {"beta": (0.1, 0.2)}
    assert ts.differs_from_study(ts.loop_config(params, fallback), fallback) == {}


def _rows(chosen, rejected, epochs=2):
    steps = len(chosen)
    beta = 0.1
    margin = [beta * (c - r) for c, r in zip(chosen, rejected, strict=True)]
    return [{"iteration": 0, "sft_losses": [2.0, 1.5]},
            {"iteration": 1, "train_steps": steps, "losses": list(np.linspace(0.69, 0.2, steps)),
             "margins": margin, "chosen_logps": [-40.0 + c for c in chosen],
             "rejected_logps": [-60.0 + r for r in rejected],
             "chosen_ref_logps": [-40.0] * steps, "rejected_ref_logps": [-60.0] * steps}]


def test_both_log_probs_falling_while_the_margin_grows_is_named():
    """The collapse's signature: loss down, margin up, chosen AND rejected log-probs down."""
    c = ts.curves(_rows([0, -2, -5, -8], [0, -10, -25, -40]), epochs=2)
    assert c["steps_per_epoch"] == 2 and c["sft_loss"] == [2.0, 1.5]
    d = ts.drift(c)
    assert d["chosen"] == pytest.approx(-6.5) and d["rejected"] == pytest.approx(-32.5)
    assert d["margin"] == pytest.approx(0.1 * 26) and d["loss"] < d["loss_first"]
    assert ts.movement(d).startswith("both fell")
    worse = paired_stats([1.0] * 30 + [0.0] * 70, [0.0] * 100)  # 30 of 100 lost
    evals = {k: {"greedy_tokens": [t] * 100, "greedy_cut": [cut] * 100}
             for k, t, cut in (("SFT", 30, False), ("SFT -> DPO", 45, True))}
    setting = {"lr": 5e-4, "beta": 0.1, "from_study": False, "source": "the preset's lr 0.0005"}
    text = ts.diagnosis(worse, d, ts.shares(evals), setting, 4, 48)
    assert "the collapse remains" in text and "both fell" in text
    assert "from 30.0 to 45.0 tokens" in text and "from 0% to 100%" in text
    assert "collapse remains" in ts.in_short(worse, d, setting)
    better = paired_stats([0.0] * 100, [1.0] * 30 + [0.0] * 70)
    assert "no collapse" in ts.diagnosis(better, d, ts.shares(evals), setting, 4, 48)


def test_a_margin_grown_the_way_dpo_intends_is_told_apart():
    d = ts.drift(ts.curves(_rows([0, 1, 2, 3], [0, -2, -4, -6]), epochs=2))
    assert d["chosen"] > 0 > d["rejected"]
    assert "the way DPO intends" in ts.movement(d)


def test_no_pairs_means_no_diagnosis_but_a_sentence():
    rows = [{"iteration": 0}, {"iteration": 1, "lists": 0, "note": "no list"}]
    c = ts.curves(rows, epochs=3)
    assert c["loss"] == [] and c["sft_loss"] == []
    setting = {"lr": 1e-3, "beta": 0.1, "from_study": False, "source": "the preset's lr 0.001"}
    assert "did not train" in ts.diagnosis(None, None, {}, setting, 0, 8)
