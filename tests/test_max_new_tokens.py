"""max_new_tokens cannot run past the model's positions: refused before generating."""

from __future__ import annotations

import pytest

from larpo_lite.evaluate import prompts_for
from larpo_lite.sampling import HFSampler
from larpo_lite.tasks import load_split


@pytest.mark.parametrize("decode", ["continuous", "generate"])
def test_prompt_plus_max_new_tokens_past_the_positions_is_refused(tiny, monkeypatch, decode):
    model, tok = tiny
    assert model.config.max_position_embeddings == 2048
    prompts = prompts_for(load_split("validation", 3), tok)
    longest = max(len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts)
    # a model with few positions: the longest prompt plus 4 new tokens fill them exactly
    monkeypatch.setattr(model.config, "max_position_embeddings", longest + 4)
    sampler = HFSampler(model, tok, batch_size=8, decode=decode)
    with pytest.raises(ValueError, match=rf"has {longest} tokens; with max_new_tokens=5 it needs "
                                         rf"{longest + 5} positions, more than the {longest + 4} "
                                         r"of .*lower max_new_tokens \(at most 4\)"):
        sampler.generate(prompts, k=2, temperature=1.0, max_new_tokens=5)
    gens = sampler.generate(prompts, k=2, temperature=1.0, max_new_tokens=4)  # fits
    assert all(n <= 4 for g in gens for n in g.num_tokens)


def test_the_default_model_length_refuses_a_hundred_million_tokens(tiny, monkeypatch):
    from larpo_lite import sampling

    def generating(*args, **kwargs):
        raise AssertionError("it started generating")

    monkeypatch.setattr(sampling, "_continuous_decode", generating)
    model, tok = tiny
    prompts = prompts_for(load_split("validation", 1), tok)
    with pytest.raises(ValueError, match=r"more than the 2048 of tiny-random"):
        HFSampler(model, tok).greedy(prompts, max_new_tokens=100_000_000)
