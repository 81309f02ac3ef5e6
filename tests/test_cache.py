import numpy as np

from larpo_lite import cache
from larpo_lite.sampling import HFSampler
from larpo_lite.tasks import load_split


def test_cached_candidates_round_trip_and_key(tiny, tmp_path, monkeypatch):
    model, tok = tiny
    sampler = HFSampler(model, tok, batch_size=8)
    probs = load_split("validation", 3)
    a = cache.cached_candidates(sampler, probs, tok, k=2, temperature=1.0, max_new_tokens=5,
                                seed=1, root=tmp_path)
    files = list(tmp_path.glob("*.jsonl"))
    assert len(files) == 1
    calls = []
    monkeypatch.setattr(cache, "sample_candidates", lambda *a, **k: calls.append(1))
    b = cache.cached_candidates(sampler, probs, tok, k=2, temperature=1.0, max_new_tokens=5,
                                seed=1, root=tmp_path)
    assert not calls  # read back, not sampled again
    assert [g.texts for g in a.generations] == [g.texts for g in b.generations]
    assert np.array_equal(a.correct, b.correct)
    # another seed, temperature or prompt wording is another file
    base = cache.candidates_key(sampler, probs, 2, 1.0, 5, 1.0, 1, ["p1"])
    assert base != cache.candidates_key(sampler, probs, 2, 1.0, 5, 1.0, 2, ["p1"])
    assert base != cache.candidates_key(sampler, probs, 2, 0.7, 5, 1.0, 1, ["p1"])
    assert base != cache.candidates_key(sampler, probs, 2, 1.0, 5, 1.0, 1, ["p2"])
