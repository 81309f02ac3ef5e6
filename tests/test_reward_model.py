"""The Hugging Face reward-model reranker, on a tiny randomly initialised classifier saved locally."""

from __future__ import annotations

import pytest
import torch

from larpo_lite.models import ModelLoadError, tiny_reward_model_dir
from larpo_lite.rewards import RewardModelReranker, get_reranker


@pytest.fixture(scope="module")
def rm_dir():
    """``tiny-random-rm``: a 2-layer random Llama classifier (one label), saved locally."""
    return tiny_reward_model_dir()


@pytest.fixture(scope="module")
def rm(rm_dir, one_thread):
    return RewardModelReranker(str(rm_dir), device="cpu", dtype="float32", batch_size=3)


PROMPT = "Tom has 3 apples and buys 4 more. How many apples does he have?"
TEXTS = ["He has 7 apples. #### 7", "#### 12", "I do not know.",
         "Three plus four is seven, so the answer is 7.", "He has 7 apples. #### 7"]


def test_scores_match_an_unbatched_forward(rm):
    scores = rm.score(TEXTS, prompt=PROMPT)
    assert len(scores) == len(TEXTS) and all(isinstance(s, float) for s in scores)
    for text, s in zip(TEXTS, scores, strict=True):
        enc = rm.tokenizer(rm.render(PROMPT, text), return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            ref = rm.model(**enc).logits[0, 0].item()  # no padding at all
        assert s == pytest.approx(ref, abs=1e-4)
    # the same pair, scored in another batch with other padding, gets the same reward
    assert scores[4] == pytest.approx(scores[0], abs=1e-4)


def test_batch_size_does_not_change_the_scores(rm_dir, rm):
    one = RewardModelReranker(str(rm_dir), device="cpu", dtype="float32", batch_size=1)
    a, b = one.score(TEXTS, prompt=PROMPT), rm.score(TEXTS, prompt=PROMPT)
    assert a == pytest.approx(b, abs=1e-4)
    assert len(set(round(x, 5) for x in a)) > 1  # different responses, different rewards


def test_chat_template_is_used_and_prompt_matters(rm):
    text = rm.render(PROMPT, TEXTS[0])
    assert rm.tokenizer.chat_template and "<|im_start|>assistant" in text and PROMPT in text
    other = rm.score(TEXTS[:2], prompt="What is the capital of France?")
    assert other != pytest.approx(rm.score(TEXTS[:2], prompt=PROMPT), abs=1e-6)
    pairs = rm.score_pairs([PROMPT, "Other question?"], [TEXTS[0], TEXTS[0]])
    assert pairs[0] == pytest.approx(rm.score([TEXTS[0]], prompt=PROMPT)[0], abs=1e-4)


def test_registry_and_bad_input(rm_dir, rm, tmp_path):
    r = get_reranker("reward_model", model_name=str(rm_dir), device="cpu", dtype="float32")
    assert r.name == "reward_model"
    assert r.score(TEXTS[:1], prompt=PROMPT) == pytest.approx(rm.score(TEXTS[:1], prompt=PROMPT),
                                                                abs=1e-4)
    with pytest.raises(ValueError, match="prompt"):
        rm.score(TEXTS)
    with pytest.raises(ValueError, match="model_name"):
        get_reranker("reward_model")
    with pytest.raises(ValueError, match="2 prompts for 1"):
        rm.score_pairs(["a", "b"], ["x"])
    with pytest.raises(ValueError, match="label"):
        RewardModelReranker(str(rm_dir), device="cpu", label_index=1)
    missing = str(tmp_path / "no-such-reward-model")
    with pytest.raises(ModelLoadError, match="no-such-reward-model"):
        RewardModelReranker(missing, device="cpu")


def test_reranker_for_follows_the_reward_model_parameter(rm_dir):
    from larpo_lite.rewards import MajorityVoteReranker, VerifierReranker, reranker_for

    assert isinstance(reranker_for(""), VerifierReranker)
    assert isinstance(reranker_for("", fallback="majority"), MajorityVoteReranker)
    rm = reranker_for(str(rm_dir), device="cpu", dtype="float32", batch_size=2)
    assert isinstance(rm, RewardModelReranker) and rm.batch_size == 2
