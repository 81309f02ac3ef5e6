"""A sample cut at max_new_tokens did not end: it is scored and trained without an EOS."""

from __future__ import annotations

import copy

import pytest
import torch

from larpo_lite import trainer as T
from larpo_lite.logprobs import (
    ReferenceCache,
    batched_sequence_logprobs,
    encode_pairs,
    sequence_logprobs,
    tokenize_pairs,
)
from larpo_lite.models import load_policy
from larpo_lite.tasks import build_prompt
from larpo_lite.trainer import RankedList, TrainConfig, train_ranking

pytestmark = pytest.mark.usefixtures("one_thread")
RTOL = 1e-5  # log-probs across batching paths (tests/test_trainer.py: LOGPROB_RTOL)


@pytest.fixture(scope="module")
def tiny():
    return load_policy("tiny-random", device="cpu", dtype="float32")


def _pairs(tok):
    p = build_prompt("What is 2 + 3?", tok)
    return [p, p, p], ["2 + 3 = 5\n#### 5", "2 + 3 = 6 and then we add the", "#### 5"]


def test_encode_pairs_appends_eos_per_pair(tiny):
    _, tok = tiny
    prompts, responses = _pairs(tok)
    eos = tok.eos_token_id
    every = encode_pairs(tok, prompts, responses)
    some = encode_pairs(tok, prompts, responses, add_eos=[True, False, True])
    assert [ids[-1] == eos for ids, _, _ in every] == [True, True, True]
    assert some[0] == every[0] and some[2] == every[2]
    assert some[1][0] == every[1][0][:-1]  # the cut one: the same tokens, no EOS
    with pytest.raises(ValueError, match="2 flags for 3 responses"):
        encode_pairs(tok, prompts, responses, add_eos=[True, False])


@pytest.mark.parametrize("share_prompt", [True, False])
def test_a_cut_response_is_scored_without_eos_by_every_path(tiny, share_prompt):
    model, tok = tiny
    prompts, responses = _pairs(tok)
    flags = [True, False, True]
    want = sequence_logprobs(model, tokenize_pairs(tok, prompts, responses, add_eos=flags))
    with_eos = sequence_logprobs(model, tokenize_pairs(tok, prompts, responses))
    # log p(y + EOS) = log p(y) + log p(EOS | y) < log p(y): the EOS term is gone
    assert want[1] > with_eos[1]
    torch.testing.assert_close(want[[0, 2]], with_eos[[0, 2]], rtol=RTOL, atol=0)
    got = batched_sequence_logprobs(model, tok, prompts, responses, batch_size=2,
                                    share_prompt=share_prompt, add_eos=flags)
    torch.testing.assert_close(got, want, rtol=RTOL, atol=0)
    cache = ReferenceCache(batch_size=2)
    cache.compute(model, tok, list(zip(prompts, responses, strict=True)),
                  share_prompt=share_prompt, cut={(prompts[1], responses[1])})
    torch.testing.assert_close(cache.get(prompts, responses), want, rtol=RTOL, atol=0)


@pytest.mark.parametrize("share_prompt", [True, False])
def test_the_trainer_scores_flagged_responses_without_eos(tiny, share_prompt):
    model, tok = tiny
    prompts, responses = _pairs(tok)
    lists = [RankedList(prompts[0], responses[:2], [1.0, 0.0], [False, True]),
             RankedList(prompts[0], [responses[2], responses[1]], [1.0, 0.0], [False, True])]
    cfg = TrainConfig(share_prompt=share_prompt, max_length=128)
    with torch.no_grad():
        pol, _ = T._policy_logprobs(model, tok, lists, cfg, torch.device("cpu"))
    want = batched_sequence_logprobs(model, tok, [prompts[0]] * 4,
                                     [responses[0], responses[1], responses[2], responses[1]],
                                     add_eos=[True, False, True, False], share_prompt=False)
    torch.testing.assert_close(pol, want, rtol=RTOL, atol=0)
    # training: the reference cache holds the cut response's log-prob without EOS too
    res = train_ranking(copy.deepcopy(model), tok, lists,
                        TrainConfig(objective="pairwise", lists_per_step=2, show_progress=False,
                                    max_length=128, share_prompt=share_prompt, lr=1e-3))
    torch.testing.assert_close(res.reference.get([prompts[0]], [responses[1]]), want[1:2],
                               rtol=RTOL, atol=0)
    assert res.logs[0]["loss"] == pytest.approx(0.6931471805599453, abs=1e-4)  # gamma 0: ln 2
    with pytest.raises(ValueError, match="list 0: 1 truncated flags for 2 responses"):
        train_ranking(model, tok, [RankedList(prompts[0], responses[:2], None, [True])] * 2,
                      TrainConfig(lists_per_step=2, show_progress=False))

