"""Tests for larpo_lite.logprobs: tokenising pairs, sequence log-probs, the reference cache."""

from __future__ import annotations

import copy

import pytest
import torch

from larpo_lite.logprobs import (
    PairBatch,
    ReferenceCache,
    batched_sequence_logprobs,
    encode_pairs,
    is_peft_model,
    sequence_logprobs,
    tokenize_pairs,
)
from larpo_lite.tasks import build_prompt

pytestmark = pytest.mark.usefixtures("one_thread")

# Sequence log-probs (up to ~260 nats here, where one float32 step is 3e-5) compared across
# code paths (batch sizes, padding, a cache, a peft wrapper): relative. Measured here at most
# 7.5e-8 relative (the naive loop vs one batch), the same at 1 and 2 threads; ~100x that.
RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module")
def pairs(tiny):
    _, tok = tiny
    p1 = build_prompt("What is 2 + 2?", tok)
    p2 = build_prompt("Tom has 3 apples and buys 4 more. How many apples does he have now?", tok)
    prompts = [p1, p2, p1, p2]
    responses = ["2 + 2 = 4.\n#### 4", "7", "", "He has 3 + 4 = 7 apples, so the answer is 7.\n#### 7"]
    return prompts, responses


def naive_logprob(model, tok, prompt: str, response: str) -> float:
    """One unpadded sequence at a time, full log-softmax: the reference implementation."""
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    r = tok(response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ids = torch.tensor([p + r])
    with torch.no_grad():
        logp = model(input_ids=ids).logits[0].double().log_softmax(-1)  # [L, V]
    return sum(float(logp[len(p) + j - 1, t]) for j, t in enumerate(r))


def test_batch_layout(tiny, pairs):
    _, tok = tiny
    prompts, responses = pairs
    b = tokenize_pairs(tok, prompts, responses)
    n, length = b.input_ids.shape
    assert n == 4 and b.attention_mask.shape == b.response_mask.shape == (n, length)
    for i, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        plen = len(tok(p, add_special_tokens=False)["input_ids"])
        rids = tok(r, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        real = int(b.attention_mask[i].sum())
        assert real == plen + len(rids)
        assert b.attention_mask[i, :real].all() and not b.attention_mask[i, real:].any()  # right pad
        assert b.response_mask[i].nonzero().flatten().tolist() == list(range(plen, real))
        assert b.input_ids[i, plen:real].tolist() == rids  # EOS appended, even to ""
        assert (b.input_ids[i, real:] == tok.pad_token_id).all()
    assert not b.truncated.any()


def test_truncation_cuts_the_response_never_the_prompt(tiny, pairs):
    _, tok = tiny
    prompts, responses = pairs
    plen = len(tok(prompts[1], add_special_tokens=False)["input_ids"])
    enc = encode_pairs(tok, prompts[3:], responses[3:], max_length=plen + 5)
    ids, got_plen, cut = enc[0]
    assert got_plen == plen and len(ids) == plen + 5 and cut
    assert ids[:plen] == tok(prompts[3], add_special_tokens=False)["input_ids"]
    with pytest.raises(ValueError, match="prompts are never truncated"):
        encode_pairs(tok, prompts[3:], responses[3:], max_length=plen)
    b = tokenize_pairs(tok, prompts, responses, max_length=plen + 5)
    assert b.input_ids.shape[1] == plen + 5 and bool(b.truncated[3]) and not b.truncated[1]
    assert int(b.response_mask[3].sum()) == 5


def test_sequence_logprobs_match_naive_loop(tiny, pairs):
    model, tok = tiny
    prompts, responses = pairs
    want = torch.tensor([naive_logprob(model, tok, p, r) for p, r in zip(prompts, responses,
                                                                         strict=True)],
                        dtype=torch.float64)
    with torch.no_grad():
        got = sequence_logprobs(model, tokenize_pairs(tok, prompts, responses))
    assert got.shape == (4,) and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want, rtol=RTOL, atol=ATOL)
    for bs in (1, 3):
        torch.testing.assert_close(
            batched_sequence_logprobs(model, tok, prompts, responses, batch_size=bs).double(),
            want, rtol=RTOL, atol=ATOL)
    # mean = sum / number of response tokens (EOS included)
    b = tokenize_pairs(tok, prompts, responses)
    with torch.no_grad():
        mean = sequence_logprobs(model, b, reduction="mean")
    torch.testing.assert_close(mean, got / b.response_mask.sum(1), rtol=RTOL, atol=ATOL)


def test_padding_and_prompt_side_padding_do_not_change_results(tiny, pairs):
    model, tok = tiny
    prompts, responses = pairs
    b = tokenize_pairs(tok, prompts, responses)
    with torch.no_grad():
        base = sequence_logprobs(model, b)
        # other values in the padded positions
        ids = b.input_ids.masked_fill(b.attention_mask == 0, 12345)
        other_pad = sequence_logprobs(model, PairBatch(ids, b.attention_mask, b.response_mask,
                                                       b.truncated))
        # more padding: a much longer companion in the batch
        longer = tokenize_pairs(tok, [*prompts, prompts[0]], [*responses, "x " * 60])
        more_pad = sequence_logprobs(model, longer)[:4]
        # left padding (padding on the prompt side) of 7 extra tokens
        n, length = b.input_ids.shape
        extra = 7
        lids = torch.full((n, length + extra), tok.pad_token_id)
        lattn = torch.zeros((n, length + extra), dtype=torch.long)
        lresp = torch.zeros((n, length + extra), dtype=torch.bool)
        for i in range(n):
            k = int(b.attention_mask[i].sum())
            lids[i, -k:] = b.input_ids[i, :k]
            lattn[i, -k:] = 1
            lresp[i, -k:] = b.response_mask[i, :k]
        left = sequence_logprobs(model, PairBatch(lids, lattn, lresp, b.truncated))
    torch.testing.assert_close(other_pad, base, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(more_pad, base, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(left, base, rtol=RTOL, atol=ATOL)


def test_prompt_tokens_are_not_scored(tiny, pairs):
    """Scoring the prompt as well would add its log-prob: the difference must be large."""
    model, tok = tiny
    prompts, responses = pairs
    b = tokenize_pairs(tok, prompts[:1], responses[:1])
    everything = b.attention_mask.bool().clone()
    everything[:, 0] = False  # the first token has no context
    with torch.no_grad():
        resp_only = sequence_logprobs(model, b)
        whole = sequence_logprobs(model, PairBatch(b.input_ids, b.attention_mask, everything,
                                                   b.truncated))
    assert float(whole - resp_only) < -10.0


def test_gradients_flow(tiny, pairs):
    model, tok = tiny
    m = copy.deepcopy(model)
    lp = sequence_logprobs(m, tokenize_pairs(tok, *pairs)).sum()
    lp.backward()
    assert m.model.embed_tokens.weight.grad is not None
    assert float(m.model.embed_tokens.weight.grad.abs().sum()) > 0


def test_reference_cache_computes_each_pair_once(tiny, pairs, tmp_path):
    model, tok = tiny
    prompts, responses = pairs
    calls = []
    handle = model.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        cache = ReferenceCache(batch_size=3)
        keys = list(zip(prompts, responses, strict=True))
        assert cache.compute(model, tok, keys + keys[:2]) == 4  # duplicates skipped
        assert len(calls) == 2 == cache.n_forward  # ceil(4 / 3)
        assert cache.compute(model, tok, keys) == 0  # nothing recomputed
        assert len(calls) == 2 and len(cache) == 4
    finally:
        handle.remove()
    want = batched_sequence_logprobs(model, tok, prompts, responses)
    torch.testing.assert_close(cache.get(prompts, responses), want, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(cache.get(prompts[::-1], responses[::-1]), want.flip(0),
                               rtol=RTOL, atol=ATOL)
    with pytest.raises(KeyError, match="no reference log-prob"):
        cache.get([prompts[0]], ["never seen"])
    cache.save(tmp_path / "ref.json")
    back = ReferenceCache.load(tmp_path / "ref.json")
    assert back.values == cache.values and back.batch_size == 3


def test_reference_of_a_lora_model_is_the_base_with_adapters_disabled(tiny, pairs):
    model, tok = tiny
    prompts, responses = pairs
    base = copy.deepcopy(model)
    want = batched_sequence_logprobs(base, tok, prompts, responses)
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, task_type="CAUSAL_LM",
                                                 target_modules=["q_proj", "v_proj"]))
    assert is_peft_model(peft_model)
    with torch.no_grad():  # make the adapters do something (lora_B starts at 0)
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    with_adapters = batched_sequence_logprobs(peft_model, tok, prompts, responses)
    assert float((with_adapters - want).abs().max()) > 1e-3
    cache = ReferenceCache()
    cache.compute(peft_model, tok, list(zip(prompts, responses, strict=True)))
    torch.testing.assert_close(cache.get(prompts, responses), want, rtol=RTOL, atol=ATOL)
    # adapters are enabled again afterwards
    torch.testing.assert_close(batched_sequence_logprobs(peft_model, tok, prompts, responses),
                               with_adapters, rtol=RTOL, atol=ATOL)
