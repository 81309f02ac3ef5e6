"""Masked grouped-query attention through SDPA (``models.use_sdpa_gqa``): the CPU default of
``load_policy``, with the same logits, gradients and greedy tokens as transformers' ``"sdpa"``."""

import pytest
import torch

from larpo_lite import models
from larpo_lite.sampling import HFSampler

# Largest |difference| / largest |value| between the two paths, measured on this CPU (fp32) on
# the padded batch below: logits 0 (bit-identical) on tiny-random and SmolLM2; gradients
# 2.5e-7 on tiny-random (1.3e-5 on SmolLM2: the backward sums over each group's query heads in
# another order). 1e-5 leaves room for other CPUs on tiny-random, far below any real change.
RTOL = 1e-5

PROMPTS = ["What is 2 + 3?", "Tom has 12 apples and gives away 5. How many are left?"]


@pytest.fixture
def model_tok(one_thread, monkeypatch):
    monkeypatch.delenv("LARPO_LITE_SDPA_GQA", raising=False)
    return models.load_policy("tiny-random", device="cpu", dtype="float32")


def padded_batch(tok):
    """input_ids, attention_mask [2, L]: left-padded, so attention gets a mask."""
    enc = tok([tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                       add_generation_prompt=True) for p in PROMPTS],
              return_tensors="pt", padding=True, add_special_tokens=False)
    assert (enc["attention_mask"] == 0).any()
    return enc


def logits_and_grads(model, enc):
    model.zero_grad()
    out = model(**enc)
    (out.logits.float().pow(2).mean()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.logits.detach(), grads


def assert_close(a, b):
    scale = a.abs().max()
    assert (a - b).abs().max() <= RTOL * scale, float((a - b).abs().max() / scale)


def test_load_policy_on_cpu_shares_the_key_value_heads(model_tok, monkeypatch):
    model, _ = model_tok
    assert model.config.num_key_value_heads < model.config.num_attention_heads
    assert model.config._attn_implementation == models.SDPA_GQA
    monkeypatch.setenv("LARPO_LITE_SDPA_GQA", "0")
    off, _ = models.load_policy("tiny-random", device="cpu", dtype="float32")
    assert off.config._attn_implementation == "sdpa"


def test_env_value_other_than_0_or_1_is_an_error(model_tok, monkeypatch):
    model, _ = model_tok
    monkeypatch.setenv("LARPO_LITE_SDPA_GQA", "yes")
    with pytest.raises(ValueError, match="LARPO_LITE_SDPA_GQA='yes'.*0 \\(off\\), 1 \\(on\\)"):
        models.use_sdpa_gqa(model)


def test_eager_attention_is_left_alone(model_tok):
    model, _ = model_tok
    model.set_attn_implementation("eager")
    assert models.use_sdpa_gqa(model, enable=True) is False
    assert model.config._attn_implementation == "eager"


def test_masked_attention_makes_no_key_value_copies(model_tok, monkeypatch):
    """With a padding mask, transformers' sdpa copies heads with repeat_kv; sdpa_gqa does not."""
    from transformers.integrations import sdpa_attention

    model, tok = model_tok
    enc = padded_batch(tok)

    def no_copies(*args):
        raise AssertionError("repeat_kv called")

    monkeypatch.setattr(sdpa_attention, "repeat_kv", no_copies)
    with torch.no_grad():
        model(**enc)  # sdpa_gqa: no copies
        models.use_sdpa_gqa(model, enable=False)
        with pytest.raises(AssertionError, match="repeat_kv called"):
            model(**enc)


def test_logits_and_gradients_equal_transformers_sdpa(model_tok):
    model, tok = model_tok
    enc = padded_batch(tok)
    gqa_logits, gqa_grads = logits_and_grads(model, enc)
    models.use_sdpa_gqa(model, enable=False)
    assert model.config._attn_implementation == "sdpa"
    ref_logits, ref_grads = logits_and_grads(model, enc)
    assert_close(ref_logits, gqa_logits)
    assert ref_grads.keys() == gqa_grads.keys() and ref_grads
    for name, g in ref_grads.items():
        assert_close(g, gqa_grads[name])


def test_lora_model_keeps_it_and_trains_alike():
    model, tok = models.load_policy("tiny-random", device="cpu", dtype="float32",
                                    lora={"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]})
    assert model.config._attn_implementation == models.SDPA_GQA
    enc = padded_batch(tok)
    gqa_logits, gqa_grads = logits_and_grads(model, enc)
    models.use_sdpa_gqa(model, enable=False)
    ref_logits, ref_grads = logits_and_grads(model, enc)
    assert_close(ref_logits, gqa_logits)
    for name, g in ref_grads.items():
        assert_close(g, gqa_grads[name])


def greedy_and_samples(model, tok):
    prompts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                       add_generation_prompt=True) for p in PROMPTS]
    sampler = HFSampler(model, tok, batch_size=4)
    greedy = sampler.generate(prompts, k=1, temperature=0.0, max_new_tokens=12)
    sampled = sampler.generate(prompts, k=3, temperature=0.7, max_new_tokens=12, seed=1)
    return [(g.texts, g.num_tokens) for g in greedy + sampled]


def test_greedy_and_sampled_tokens_are_unchanged(model_tok):
    model, tok = model_tok
    gqa = greedy_and_samples(model, tok)
    models.use_sdpa_gqa(model, enable=False)
    assert greedy_and_samples(model, tok) == gqa


@pytest.mark.slow
def test_smollm2_logits_and_greedy_tokens_unchanged(one_thread, monkeypatch):
    monkeypatch.delenv("LARPO_LITE_SDPA_GQA", raising=False)
    model, tok = models.load_policy("smollm2-135m-instruct", device="cpu", dtype="float32")
    assert model.config._attn_implementation == models.SDPA_GQA
    enc = padded_batch(tok)
    with torch.no_grad():
        gqa = model(**enc).logits
        gqa_tokens = greedy_and_samples(model, tok)
        models.use_sdpa_gqa(model, enable=False)
        ref = model(**enc).logits
    assert_close(ref, gqa)
    assert greedy_and_samples(model, tok) == gqa_tokens


def test_shared_prompt_list_forward_takes_it(model_tok):
    """The list forward passes its own 4D mask; under sdpa_gqa it equals transformers' sdpa."""
    from larpo_lite.logprobs import list_logprobs, tokenize_lists

    model, tok = model_tok
    batch = tokenize_lists(tok, PROMPTS, [["4", "5 apples", "#### 5"], ["7", "#### 7"]])
    with torch.no_grad():
        gqa = list_logprobs(model, batch)
        models.use_sdpa_gqa(model, enable=False)
        ref = list_logprobs(model, batch)
    assert_close(ref, gqa)
