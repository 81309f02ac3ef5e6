import pytest
import torch

from larpo_lite.sampling import Generation, HFSampler, _sample_tokens, make_sampler
from larpo_lite.tasks import build_prompt


@pytest.fixture(scope="module")
def prompts(tiny):
    _, tok = tiny
    return [build_prompt(q, tok) for q in ["What is 1 + 1?", "Tom has 3 apples.", "Count to 5."]]


def test_shapes_and_fields(tiny, prompts):
    model, tok = tiny
    s = HFSampler(model, tok, batch_size=8)
    gens = s.generate(prompts, k=4, temperature=0.7, max_new_tokens=6, seed=1)
    assert len(gens) == 3 and all(isinstance(g, Generation) for g in gens)
    for g, p in zip(gens, prompts, strict=True):
        assert g.prompt == p
        assert len(g.texts) == len(g.num_tokens) == len(g.finished) == 4
        assert all(1 <= n <= 6 for n in g.num_tokens)
        assert all(n == 6 or f for n, f in zip(g.num_tokens, g.finished, strict=True))
        assert g.temperature == 0.7 and g.model_name == "tiny-random" and g.backend == "hf"
    assert s.last_stats.tokens == sum(sum(g.num_tokens) for g in gens)


def test_same_seed_same_samples_other_seed_differs(tiny, prompts):
    model, tok = tiny
    s = HFSampler(model, tok, batch_size=8)
    a = s.generate(prompts, k=4, temperature=1.0, max_new_tokens=8, seed=3)
    b = s.generate(prompts, k=4, temperature=1.0, max_new_tokens=8, seed=3)
    c = s.generate(prompts, k=4, temperature=1.0, max_new_tokens=8, seed=4)
    assert [g.texts for g in a] == [g.texts for g in b]
    assert [g.texts for g in a] != [g.texts for g in c]


def test_greedy_is_deterministic_and_batch_independent_in_fp32(tiny, prompts):
    model, tok = tiny
    one = HFSampler(model, tok, batch_size=1).greedy(prompts, max_new_tokens=8)
    many = HFSampler(model, tok, batch_size=8).greedy(prompts, max_new_tokens=8)
    assert one == many


def test_bad_arguments(tiny, prompts):
    model, tok = tiny
    s = HFSampler(model, tok)
    with pytest.raises(ValueError, match="k=1"):
        s.generate(prompts, k=2, temperature=0.0)
    with pytest.raises(ValueError):
        s.generate(prompts, k=0)
    with pytest.raises(ValueError):
        s.generate(prompts, top_p=0.0)
    with pytest.raises(TypeError):
        s.generate("one string")
    with pytest.raises(ValueError, match="valid: hf"):
        make_sampler("vllm-typo", model, tok)


def test_shared_prefix_gives_the_samples_of_plain_generate(tiny, prompts):
    # encoding each prompt once and repeating its KV cache k times must not change the draws
    model, tok = tiny
    kw = dict(k=4, temperature=1.0, max_new_tokens=8, seed=5)
    shared = HFSampler(model, tok, batch_size=8, share_prefix=True, decode="generate").generate(
        prompts, **kw)
    plain = HFSampler(model, tok, batch_size=8, share_prefix=False, decode="generate").generate(
        prompts, **kw)
    assert [g.texts for g in shared] == [g.texts for g in plain]
    assert [g.num_tokens for g in shared] == [g.num_tokens for g in plain]


# Token-for-token comparisons across decode paths and batch sizes below hold on any CPU: on
# these prompts tiny-random's greedy choices are never nearly tied (smallest top-1 minus top-2
# logit gap 0.40 over 168 decisions) while the paths move a logit by 3.6e-7 at most (float32;
# the same at 1 and 2 threads). Measured with generate(output_scores=True).
@pytest.fixture(scope="module")
def more_prompts(tiny):
    from larpo_lite.tasks import load_split, problem_prompt

    _, tok = tiny
    return [problem_prompt(p, tok) for p in load_split("test", 11)]


@pytest.mark.parametrize("decode", ["continuous", "drop"])
@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_the_decode_loop_gives_the_greedy_answers_of_generate(tiny, more_prompts, decode, batch_size):
    # rows leave (and join) the running batch; each row's tokens must not change
    model, tok = tiny
    kw = dict(k=1, temperature=0.0, max_new_tokens=10)
    want = HFSampler(model, tok, batch_size=4, decode="generate").generate(more_prompts, **kw)
    got = HFSampler(model, tok, batch_size=batch_size, decode=decode).generate(more_prompts, **kw)
    assert [g.texts for g in got] == [g.texts for g in want]
    assert [g.num_tokens for g in got] == [g.num_tokens for g in want]
    assert [g.finished for g in got] == [g.finished for g in want]


def test_the_decode_loop_drops_finished_rows_and_keeps_the_batch_size(tiny, more_prompts):
    model, tok = tiny
    eos = tok.eos_token_id
    # a model whose logits favour EOS ends some rows early: bias the LM head towards it
    rows_per_step: list[int] = []
    hook = model.register_forward_pre_hook(
        lambda m, args, kw: rows_per_step.append(kw["input_ids"].shape[0])
        if kw["input_ids"].shape[1] == 1 else None, with_kwargs=True)
    bias = torch.zeros(model.config.vocab_size)
    bias[eos] = 9.0  # ~15% per step against ~50k near-uniform tokens
    handle = model.lm_head.register_forward_hook(lambda m, i, o: o + bias)
    try:
        s = HFSampler(model, tok, batch_size=6)
        gens = s.generate(more_prompts, k=2, temperature=1.0, max_new_tokens=12, seed=0)
    finally:
        hook.remove()
        handle.remove()
    counts = [n for g in gens for n in g.num_tokens]
    assert any(f for g in gens for f in g.finished) and max(counts) == 12
    assert all(n == 12 or f for g in gens for n, f in zip(g.num_tokens, g.finished, strict=True))
    assert max(rows_per_step) <= 6
    # one decode step per generated token after the first (drawn from the prompt's forward):
    # no step is spent on a row that has finished
    assert sum(rows_per_step) == sum(counts) - len(counts)


def test_sampled_runs_repeat_whatever_the_batch_size(tiny, more_prompts):
    model, tok = tiny
    kw = dict(k=3, temperature=1.0, max_new_tokens=8, seed=7)
    a = HFSampler(model, tok, batch_size=6).generate(more_prompts, **kw)
    b = HFSampler(model, tok, batch_size=6).generate(more_prompts, **kw)
    c = HFSampler(model, tok, batch_size=4).generate(more_prompts, **kw)
    d = HFSampler(model, tok, batch_size=9, decode="drop").generate(more_prompts, **kw)
    e = HFSampler(model, tok, batch_size=6).generate(more_prompts, **{**kw, "seed": 8})
    texts = [g.texts for g in a]
    assert texts == [g.texts for g in b] == [g.texts for g in c] == [g.texts for g in d]
    assert texts != [g.texts for g in e]
    assert all(len(set(t)) > 1 for t in texts)  # the k samples of a prompt differ


def test_inverse_cdf_draws_follow_the_distribution_and_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(20_000, 1)
    u = torch.rand(20_000, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(_sample_tokens(logits, 1.0, 1.0, u), minlength=4) / 20_000
    assert torch.allclose(freq, torch.tensor([0.5, 0.3, 0.15, 0.05]), atol=0.01)
    # temperature 0.5 squares and renormalises the probabilities
    p = torch.tensor([0.5, 0.3, 0.15, 0.05]) ** 2
    freq = torch.bincount(_sample_tokens(logits, 0.5, 1.0, u), minlength=4) / 20_000
    assert torch.allclose(freq, p / p.sum(), atol=0.01)
    # top_p 0.7 keeps the two tokens holding 0.8 of the mass (as HF's top-p warper)
    freq = torch.bincount(_sample_tokens(logits, 1.0, 0.7, u), minlength=4) / 20_000
    assert freq[2:].sum() == 0 and torch.allclose(freq[:2], torch.tensor([0.625, 0.375]), atol=0.01)
    # greedy ignores the draws; a zero-probability token is never drawn, even for u = 0
    assert _sample_tokens(logits[:2], 1.0, 1.0, None).tolist() == [0, 0]
    masked = torch.tensor([[float("-inf"), 0.0, 0.0]])
    assert _sample_tokens(masked, 1.0, 1.0, torch.tensor([0.0])).item() == 1


def test_one_new_token_and_an_unknown_decode(tiny, more_prompts):
    model, tok = tiny
    gens = HFSampler(model, tok, batch_size=4).generate(more_prompts[:5], k=2, temperature=1.0,
                                                        max_new_tokens=1)
    assert all(g.num_tokens == [1, 1] for g in gens)
    with pytest.raises(ValueError, match="continuous, drop, generate"):
        HFSampler(model, tok, decode="fast")
    assert make_sampler("hf", model, tok).decode == "continuous"
    assert make_sampler("hf", model, tok, hf_decode="generate").decode == "generate"


def test_the_decode_loop_samples_a_lora_policy_as_generate_does(tiny, more_prompts):
    import copy

    from peft import LoraConfig, get_peft_model

    model, tok = tiny
    torch.manual_seed(0)
    lora = get_peft_model(copy.deepcopy(model), LoraConfig(
        r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    kw = dict(max_new_tokens=8)
    want = HFSampler(lora, tok, batch_size=4, decode="generate").greedy(more_prompts, **kw)
    assert want != HFSampler(model, tok, batch_size=4, decode="generate").greedy(more_prompts, **kw)
    assert HFSampler(lora, tok, batch_size=4).greedy(more_prompts, **kw) == want


def test_decode_loop_samples_are_cached_apart_from_generate_samples(tiny):
    from larpo_lite.cache import candidates_key
    from larpo_lite.tasks import load_split

    model, tok = tiny
    probs = load_split("validation", 2)
    keys = {d: candidates_key(HFSampler(model, tok, batch_size=8, decode=d), probs, 2, 1.0, 5, 1.0, 0)
            for d in ("generate", "continuous", "drop")}
    assert len(set(keys.values())) == 3


def test_common_prefix_leaves_one_token_of_each_prompt():
    from larpo_lite.sampling import _common_prefix

    assert _common_prefix([[1, 2, 3]]) == []  # one prompt: nothing to share
    assert _common_prefix([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == [1, 2]
    assert _common_prefix([[1, 2, 3], [1, 2, 3, 4]]) == [1, 2]  # a prompt is never consumed whole
    assert _common_prefix([[7, 1], [8, 1]]) == []


@pytest.mark.parametrize("temperature,k", [(0.0, 1), (1.0, 3)])
def test_the_shared_chat_prefix_is_encoded_once_and_changes_no_token(tiny, more_prompts,
                                                                    temperature, k):
    from larpo_lite.sampling import _common_prefix

    model, tok = tiny
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in more_prompts]
    n0 = len(_common_prefix(ids))
    assert n0 >= 8  # chat template and system prompt
    widths: list[int] = []
    hook = model.register_forward_pre_hook(
        lambda m, args, kw: widths.append(kw["input_ids"].shape[1]), with_kwargs=True)
    kw = dict(k=k, temperature=temperature, max_new_tokens=8, seed=2)
    try:
        shared = HFSampler(model, tok, batch_size=6).generate(more_prompts, **kw)
    finally:
        hook.remove()
    plain = HFSampler(model, tok, batch_size=6, share_common_prefix=False).generate(more_prompts, **kw)
    assert [g.texts for g in shared] == [g.texts for g in plain]
    assert [g.num_tokens for g in shared] == [g.num_tokens for g in plain]
    prefills = [w for w in widths if w > 1]
    assert prefills[0] == n0  # the prefix, once
    assert max(prefills[1:]) <= max(len(i) for i in ids) - n0  # the rest of each prompt only
