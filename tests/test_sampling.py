import pytest

from larpo_lite.sampling import Generation, HFSampler, make_sampler
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
    shared = HFSampler(model, tok, batch_size=8, share_prefix=True).generate(prompts, **kw)
    plain = HFSampler(model, tok, batch_size=8, share_prefix=False).generate(prompts, **kw)
    assert [g.texts for g in shared] == [g.texts for g in plain]
    assert [g.num_tokens for g in shared] == [g.num_tokens for g in plain]
