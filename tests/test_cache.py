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


def _counting(monkeypatch):
    """Count the calls that sample (cache misses), still sampling."""
    calls = []
    sample = cache.sample_candidates
    monkeypatch.setattr(cache, "sample_candidates", lambda *a, **k: calls.append(1) or sample(*a, **k))
    return calls


@pytest.mark.parametrize("change", ["gold", "verifier_version", "instruction"])
def test_a_changed_gold_verifier_or_instruction_is_sampled_and_checked_again(
        tiny, tmp_path, monkeypatch, change):
    import dataclasses

    from larpo_lite.tasks import answers, prompts

    model, tok = tiny
    sampler = HFSampler(model, tok, batch_size=8)
    probs = load_split("validation", 3)
    kw = dict(k=2, temperature=1.0, max_new_tokens=5, seed=1, root=tmp_path)
    cache.cached_candidates(sampler, probs, tok, **kw)
    calls = _counting(monkeypatch)
    cache.cached_candidates(sampler, probs, tok, **kw)
    assert calls == []  # the same everything: read back
    if change == "gold":  # 13 -> 14
        probs = [dataclasses.replace(probs[0], answer=str(int(probs[0].answer) + 1)), *probs[1:]]
    elif change == "verifier_version":
        monkeypatch.setattr(answers, "VERIFIER_VERSION", answers.VERIFIER_VERSION + 1)
    else:
        monkeypatch.setattr(prompts, "INSTRUCTION", "Give the final answer after '####'.")
    cache.cached_candidates(sampler, probs, tok, **kw)
    assert calls == [1]  # another entry: sampled (and checked) again, not trusted
    assert len(list(tmp_path.glob("*.jsonl"))) == 2


def test_the_key_covers_gold_verifier_and_instruction_beside_the_prompts(tiny, monkeypatch):
    import dataclasses

    from larpo_lite.tasks import answers, prompts

    model, tok = tiny
    sampler = HFSampler(model, tok, batch_size=8)
    probs = load_split("validation", 3)
    base = cache.candidates_key(sampler, probs, 2, 1.0, 5, 1.0, 1, ["p1"])
    regold = [dataclasses.replace(probs[0], answer="-1"), *probs[1:]]
    assert base != cache.candidates_key(sampler, regold, 2, 1.0, 5, 1.0, 1, ["p1"])
    monkeypatch.setattr(answers, "VERIFIER_VERSION", answers.VERIFIER_VERSION + 1)
    bumped = cache.candidates_key(sampler, probs, 2, 1.0, 5, 1.0, 1, ["p1"])
    assert bumped != base
    monkeypatch.setattr(prompts, "INSTRUCTION", "Another instruction.")
    assert cache.candidates_key(sampler, probs, 2, 1.0, 5, 1.0, 1, ["p1"]) not in (base, bumped)


def test_loaded_flags_are_checked_again_not_read_from_the_file(tmp_path):
    """A flipped ``correct`` flag in a cache file, or a gold that changed (13 -> 14) under the
    same file, gives the flags of the current verifier and gold."""
    import dataclasses
    import json

    from larpo_lite.evaluate import CandidateSet
    from larpo_lite.sampling import Generation

    (p,) = load_split("validation", 1)
    p = dataclasses.replace(p, answer="13")
    texts = ["So 6 + 7 = 13.\n#### 13", "#### 12"]
    gen = Generation(prompt="q", texts=texts, num_tokens=[5, 2], finished=[True, True],
                     temperature=1.0, top_p=1.0, model_name="m", backend="hf", seed=0)
    path = cache.save_candidates(CandidateSet([p], [gen], np.array([[True, False]])),
                                 tmp_path / "c.jsonl")
    row = json.loads(path.read_text())
    row["correct"] = [False, True]  # a hand edit (or a file from another verifier)
    path.write_text(json.dumps(row) + "\n")
    assert cache.load_candidates(path, [p]).correct.tolist() == [[True, False]]
    regold = dataclasses.replace(p, answer="12")
    assert cache.load_candidates(path, [regold]).correct.tolist() == [[False, True]]


def test_a_failed_save_leaves_no_temp_file_and_no_entry(tmp_path):
    from larpo_lite.evaluate import CandidateSet
    from larpo_lite.sampling import Generation

    probs = load_split("validation", 2)
    gens = [Generation(prompt="q", texts=[t], num_tokens=[1], finished=[True], temperature=1.0,
                       top_p=1.0, model_name="m", backend="hf", seed=0)
            for t in ("#### 1", object())]  # the second row cannot be written (part way)
    with pytest.raises(TypeError):
        cache.save_candidates(CandidateSet(probs, gens, np.zeros((2, 1), bool)), tmp_path / "c.jsonl")
    assert list(tmp_path.iterdir()) == []


def test_two_callers_of_one_key_at_once_sample_it_once(tiny, tmp_path, monkeypatch):
    """Two loop runs of one seed start together: the second waits on the key's lock and reads
    the first's file instead of sampling the same responses again."""
    import threading
    import time

    model, tok = tiny
    sampler = HFSampler(model, tok, batch_size=8)
    probs = load_split("validation", 2)
    real, calls = cache.sample_candidates, []

    def slow(*a, **k):
        calls.append(1)
        time.sleep(0.5)  # long enough for the other caller to arrive while this one samples
        return real(*a, **k)

    monkeypatch.setattr(cache, "sample_candidates", slow)
    got = []

    def ask():
        got.append(cache.cached_candidates(sampler, probs, tok, k=2, temperature=1.0,
                                           max_new_tokens=4, seed=3, root=tmp_path))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(got) == 2
    assert [g.texts for g in got[0].generations] == [g.texts for g in got[1].generations]
