"""The reward-scored side: UltraFeedback prompts, best-of-N reward, and the loop ranked and
evaluated by a reward model (a random tiny one: the numbers mean nothing, the plumbing does)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from larpo_lite import evaluate, loop, metrics
from larpo_lite.config import Params, ParamsError
from larpo_lite.models import TINY_RM
from larpo_lite.rewards import get_reranker
from larpo_lite.tasks import (
    INSTRUCTION,
    has_verifier,
    load_split,
    load_task,
    problem_prompt,
)


def test_ultrafeedback_splits_from_a_local_folder(uf_dir, tiny):
    train = load_task("ultrafeedback", "train", None, str(uf_dir))
    val = load_task("ultrafeedback", "validation", None, str(uf_dir))
    test = load_task("ultrafeedback", "test", 3, str(uf_dir))
    assert (len(train), len(val), len(test)) == (32, 8, 3)
    assert not {p.question for p in train} & {p.question for p in val}
    assert all(p.answer == "" and p.template == "ultrafeedback" for p in train + val + test)
    assert train[0].solution.startswith("A careful answer to: ")
    assert train[0].id == "uf-train-train_prefs-0"
    _, tok = tiny
    prompt = problem_prompt(test[0], tok)
    assert test[0].question in prompt and INSTRUCTION not in prompt and "####" not in prompt
    math = load_split("test", 1)[0]
    assert INSTRUCTION in problem_prompt(math, tok)  # math prompts are unchanged
    assert not has_verifier("ultrafeedback") and has_verifier("gsm8k")


def test_ultrafeedback_bad_sources(uf_dir, tmp_path):
    with pytest.raises(RuntimeError, match="is a file"):
        load_task("ultrafeedback", "test", 1, str(uf_dir / "test_prefs.jsonl"))
    (tmp_path / "train_prefs.jsonl").write_text(json.dumps({"question": "x"}) + "\n")
    with pytest.raises(RuntimeError, match="no test_prefs.jsonl"):
        load_task("ultrafeedback", "test", 1, str(tmp_path))
    (tmp_path / "test_prefs.jsonl").write_text(json.dumps({"question": "x"}) + "\n")
    with pytest.raises(ValueError, match="no 'prompt' text"):
        load_task("ultrafeedback", "test", 1, str(tmp_path))
    with pytest.raises(ValueError, match="at least 5"):
        load_task("ultrafeedback", "train", 1, str(tmp_path))
    with pytest.raises(ValueError, match="takes no source"):
        load_task("mini_gsm", "test", 1, str(tmp_path))


def test_best_of_n_reward_is_the_mean_max_over_subsets():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(5, 6))
    for n in range(1, 7):
        brute = [np.mean([max(row[list(s)]) for s in itertools.combinations(range(6), n)]) for row in r]
        np.testing.assert_allclose(metrics.best_of_n_reward(r, n), brute, rtol=1e-12)
    # on 0/1 rewards it is pass@N
    b = rng.random((7, 8)) < 0.3
    for n in (1, 3, 8):
        np.testing.assert_allclose(metrics.best_of_n_reward(b.astype(float), n),
                                   metrics.pass_at_k(8, b.sum(1), n), rtol=1e-12)
    with pytest.raises(ValueError, match="outside"):
        metrics.best_of_n_reward(r, 7)


def test_scores_come_from_the_verifier_or_the_reward_model(uf_dir, one_thread):
    math = load_split("test", 2)
    texts = [[f"#### {math[0].answer}", "#### -1"], ["#### -1", "nothing"]]
    np.testing.assert_array_equal(evaluate.score_responses(math, texts), [[1, 0], [0, 0]])
    uf = load_task("ultrafeedback", "test", 2, str(uf_dir))
    with pytest.raises(ValueError, match="reward model"):
        evaluate.score_responses(uf, texts)
    with pytest.raises(ValueError, match="reward model"):
        evaluate.score_responses(uf, texts, get_reranker("verifier"))
    rm = get_reranker("reward_model", model_name=TINY_RM, device="cpu", dtype="float32")
    got = evaluate.score_responses(uf, texts, rm)
    want = [rm.score(ts, prompt=p.question) for p, ts in zip(uf, texts, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="gold answer and some do not"):
        evaluate.score_responses([math[0], uf[0]], texts, rm)


def test_task_setting_splits_math_and_alignment():
    p = Params.load("gpu-7b")
    assert p.task_setting() == ("gsm8k", "", "")  # math: the verifier
    assert p.task_setting(alignment=True) == ("ultrafeedback", "", p.reward_model)
    both = Params(task="gsm8k", reward_model="rm")  # no alignment task: the reward model ranks all
    assert both.task_setting() == both.task_setting(alignment=True) == ("gsm8k", "", "rm")
    with pytest.raises(ParamsError, match="has no verifier"):
        Params(task="ultrafeedback", reward_model="rm").task_setting()
    with pytest.raises(ValueError, match="unknown task"):
        Params(alignment_task="alpaca").task_setting(alignment=True)
    cfg = loop.LoopConfig.from_params(p, alignment=True)
    assert (cfg.task, cfg.reward_model) == ("ultrafeedback", p.reward_model)


def test_reward_tasks_need_a_reward_model_and_no_tiers():
    with pytest.raises(ValueError, match="set reward_model"):
        loop.LoopConfig(task="ultrafeedback").validate()
    with pytest.raises(ValueError, match="need a task with a verifier"):
        loop.LoopConfig(task="ultrafeedback", reward_model=TINY_RM, negative_tier="other_prompt").validate()
    # task_source is recorded only when set: earlier run folders keep their names
    assert "task_source" not in loop.LoopConfig().to_dict()
    assert loop.LoopConfig(task_source="x").to_dict()["task_source"] == "x"


def test_loop_on_ultrafeedback_is_ranked_and_scored_by_the_reward_model(uf_dir, tmp_path, one_thread):
    cfg = loop.LoopConfig(model_name="tiny-random", task="ultrafeedback", task_source=str(uf_dir),
                          reward_model=TINY_RM, device="cpu", dtype="float32", batch_size=16,
                          iterations=2, prompts_per_iter=4, k=4, max_new_tokens=8, epochs=1,
                          lists_per_step=2, lora_r=4, lr=1e-3, n_val=4, n_test=4, eval_samples=2,
                          objective="listmle", show_progress=False)
    rows = loop.run_loop(cfg, tmp_path / "run")
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    for r in (rows[0], rows[-1]):
        assert {"val_greedy", "test_greedy", "test_reward@1", "test_reward@2"} <= set(r)
        assert not any(k.startswith("test_pass@") for k in r)
        assert r["test_reward@2"] >= r["test_reward@1"] - 1e-9
    assert "sample_reward" in rows[1] and "sample_accuracy" not in rows[1]
    # the lists carry the reward model's scores, best first
    rm = get_reranker("reward_model", model_name=TINY_RM, device="cpu", dtype="float32")
    lists = [json.loads(x) for x in (tmp_path / "run" / "lists_iter1.jsonl").read_text().splitlines()]
    problems = load_task("ultrafeedback", "train", 4, str(uf_dir))
    assert lists
    first = lists[0]
    assert first["rewards"] == sorted(first["rewards"], reverse=True)
    q = next(p.question for p in problems if p.question in first["prompt"])
    np.testing.assert_allclose(rm.score(first["responses"], prompt=q), first["rewards"], rtol=1e-4, atol=1e-5)
    # the initial policy's test greedy score is the reward model's mean reward on its responses
    from larpo_lite.models import load_policy
    from larpo_lite.sampling import make_sampler

    model, tok = load_policy("tiny-random", device="cpu", dtype="float32")
    test = load_task("ultrafeedback", "test", 4, str(uf_dir))
    score, texts, rewards = evaluate.greedy_eval(make_sampler("hf", model, tok, batch_size=16),
                                                 test, tok, 8, reranker=rm)
    assert rewards.shape == (4,) and len(set(np.round(rewards, 6))) > 1
    assert rows[0]["test_greedy"] == pytest.approx(score, abs=1e-5)
