"""Tuning lr and beta on the validation split."""

import json

import pytest

from larpo_lite.config import Params
from larpo_lite.tune import run

pytestmark = pytest.mark.usefixtures("one_thread")


def test_tune_scores_every_setting_on_validation(tmp_path):
    params = Params.load("smoke", reports_dir=str(tmp_path), n_val=3)
    out = run(params, lrs=[1e-3, 1e-2], betas=[0.1])
    assert [(r["lr"], r["beta"]) for r in out["rows"]] == [(1e-3, 0.1), (1e-2, 0.1)]
    assert out["split"] == "validation" and out["n_val"] == 3
    best = max(r["val_greedy"] for r in out["rows"])
    assert out["chosen"]["lr"] == min(r["lr"] for r in out["rows"] if r["val_greedy"] == best)
    saved = json.loads((tmp_path / "tuning_validation.json").read_text())["metrics"]
    assert saved["chosen"] == out["chosen"] and saved["pairs"] > 0
    with pytest.raises(ValueError, match="at least one"):
        run(params, lrs=[], betas=[0.1])


def test_tune_on_a_reward_scored_alignment_task(tmp_path, uf_dir):
    """With alignment_task ultrafeedback the reward model ranks the lists and scores validation."""
    from larpo_lite.rewards import get_reranker
    from larpo_lite.tasks import load_task

    params = Params.load("smoke", reports_dir=str(tmp_path), n_val=3, alignment_task="ultrafeedback",
                         alignment_source=str(uf_dir), reward_model="tiny-random-rm")
    out = run(params, lrs=[1e-3], betas=[0.1])
    assert out["task"] == "ultrafeedback" and out["pairs"] > 0
    # val_greedy_init is the reward model's mean reward on the initial policy's greedy answers
    from larpo_lite import evaluate, models, sampling

    rm = get_reranker("reward_model", model_name="tiny-random-rm", device="cpu", dtype="float32")
    policy, tok = models.load_policy("tiny-random", device="cpu", dtype="float32")
    val = load_task("ultrafeedback", "validation", 3, str(uf_dir))
    want = evaluate.greedy_eval(sampling.make_sampler("hf", policy, tok, batch_size=16), val, tok,
                                params.max_new_tokens, reranker=rm)[0]
    assert out["val_greedy_init"] == pytest.approx(want, abs=1e-5)
    assert want not in (0.0, 1.0)  # a reward, not an accuracy
