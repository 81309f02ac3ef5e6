import numpy as np
import pytest

from larpo_lite import cache
from larpo_lite.jsonl import CorruptFileError
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


@pytest.mark.parametrize("damage", ["cut_mid_line", "garbage", "lost_a_line"])
def test_a_corrupt_cache_entry_is_moved_aside_and_sampled_again(tiny, tmp_path, monkeypatch, damage):
    model, tok = tiny
    sampler = HFSampler(model, tok, batch_size=8)
    probs = load_split("validation", 3)
    kw = dict(k=2, temperature=1.0, max_new_tokens=5, seed=1, root=tmp_path)
    a = cache.cached_candidates(sampler, probs, tok, **kw)
    (path,) = tmp_path.glob("*.jsonl")
    good = path.read_bytes()
    if damage == "cut_mid_line":
        path.write_bytes(good[: len(good) - 25])
    elif damage == "garbage":
        path.write_bytes(b"\x00\x17not json at all\n")
    else:
        path.write_bytes(b"".join(good.splitlines(keepends=True)[:-1]))
    damaged = path.read_bytes()
    with pytest.raises(CorruptFileError, match=path.name):
        cache.load_candidates(path, probs)
    calls = []
    sample = cache.sample_candidates
    monkeypatch.setattr(cache, "sample_candidates", lambda *a, **k: calls.append(1) or sample(*a, **k))
    with pytest.warns(UserWarning, match=r"moved aside to .*\.corrupt"):
        b = cache.cached_candidates(sampler, probs, tok, **kw)
    assert calls == [1]  # sampled again ...
    assert [g.texts for g in b.generations] == [g.texts for g in a.generations]
    assert path.read_bytes() == good  # ... and cached again
    assert path.with_name(path.name + ".corrupt").read_bytes() == damaged  # kept for a look
