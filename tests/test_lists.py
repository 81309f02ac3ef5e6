import random

import pytest

from larpo_lite.lists import STRATEGIES, rank_candidates, select, select_lists


def ranked(rewards):
    return rank_candidates("p", [f"r{i}" for i in range(len(rewards))], rewards)


def test_rank_is_best_first_and_ties_keep_sampling_order():
    r = ranked([0.0, 1.0, 0.0, 1.0, 0.5])
    assert r.texts == ["r1", "r3", "r4", "r0", "r2"]
    assert r.rewards == [1.0, 1.0, 0.5, 0.0, 0.0]
    with pytest.raises(ValueError):
        rank_candidates("p", ["a"], [1.0, 0.0])


def test_strategies_pick_the_documented_entries():
    r = ranked([1.0, 0.9, 0.5, 0.2, 0.1, 0.0])
    assert select(r, "best_worst").responses == ["r0", "r5"]
    assert select(r, "top1_bottom3").responses == ["r0", "r3", "r4", "r5"]
    assert select(r, "top2_bottom2").responses == ["r0", "r1", "r4", "r5"]
    assert select(r, "full").responses == r.texts
    assert select(r, "top2_bottom2").rewards == [1.0, 0.9, 0.1, 0.0]


def test_random_pair_is_a_correct_vs_an_incorrect_response():
    r = ranked([1.0, 0.0, 1.0, 0.0, 1.0])
    seen = set()
    rng = random.Random(0)
    for _ in range(50):
        pair = select(r, "random_pair", rng)
        assert pair.rewards == [1.0, 0.0]
        seen.add(tuple(pair.responses))
    assert len(seen) > 1


def test_prompts_without_a_better_and_worse_response_are_skipped_and_counted():
    lists, skipped = select_lists([ranked([1.0, 1.0]), ranked([0.0, 0.0, 0.0, 0.0]),
                                   ranked([1.0, 0.0, 0.0, 0.0]), ranked([1.0, 0.0])],
                                  "top2_bottom2")
    assert skipped == 3 and len(lists) == 1
    assert select(ranked([1.0, 0.0]), "top1_bottom3") is None


def test_unknown_strategy_lists_valid_ones():
    with pytest.raises(ValueError, match="valid: " + ", ".join(STRATEGIES)):
        select(ranked([1.0, 0.0]), "best_of_both")


# ---------------------------------------------------------------- hard negatives, memory, mixes
from larpo_lite.lists import TIERS, TierItem, hard_negative_pairs, merge_memory, split_k  # noqa: E402
from larpo_lite.trainer import RankedList  # noqa: E402


def _items():
    return [
        TierItem("p0", correct=["c0"], incorrect_high=["h0"], incorrect_low=["l0"], responses=["c0", "h0", "l0"]),
        TierItem("p1", correct=[], incorrect_high=["h1"], incorrect_low=["l1"], responses=["h1", "l1"]),
        TierItem("p2", correct=["c2a", "c2b"], incorrect_high=[], incorrect_low=["l2"], responses=["c2a", "c2b", "l2"]),
    ]


def test_each_tier_picks_its_own_negative_and_counts_skips():
    items = _items()
    got = {t: hard_negative_pairs(items, t, unrelated=["poem"], seed=0) for t in TIERS}
    # p1 has no correct response: skipped everywhere; p2 has no T=1.0 error: skipped by tier 3
    assert got["unrelated"][1] == 1 and [x.responses[1] for x in got["unrelated"][0]] == ["poem", "poem"]
    assert [x.responses[1] for x in got["incorrect_high_t"][0]] == ["h0"] and got["incorrect_high_t"][1] == 2
    assert [x.responses[1] for x in got["incorrect_low_t"][0]] == ["l0", "l2"]
    other = got["other_prompt"][0]
    assert other[0].responses[1] in items[1].responses and other[1].responses[1] in items[0].responses
    # the positive of a prompt is the same in every tier that keeps it
    pos = {t: {x.prompt: x.responses[0] for x in got[t][0]} for t in TIERS}
    assert len({p["p2"] for t, p in pos.items() if "p2" in p}) == 1
    assert all(x.rewards == [1.0, 0.0] for t in TIERS for x in got[t][0])


def test_bad_tier_and_missing_unrelated_responses():
    with pytest.raises(ValueError, match="incorrect_low_t"):
        hard_negative_pairs(_items(), "hardest")
    with pytest.raises(ValueError, match="unrelated"):
        hard_negative_pairs(_items(), "unrelated")


def test_memory_modes():
    h = [[RankedList("a", ["1", "2"])], [RankedList("b", ["1", "2"])], [RankedList("c", ["1", "2"])]]
    assert [x.prompt for x in merge_memory(h, "current")] == ["c"]
    assert [x.prompt for x in merge_memory(h, "previous")] == ["b", "c"]
    assert [x.prompt for x in merge_memory(h, "all")] == ["a", "b", "c"]
    assert merge_memory([], "all") == []
    with pytest.raises(ValueError, match="previous"):
        merge_memory(h, "some")


def test_split_k():
    assert split_k(4, [0.7]) == [4]
    assert split_k(5, [1.0, 0.5]) == [3, 2]
    with pytest.raises(ValueError):
        split_k(1, [1.0, 0.5])


# ---------------------------------------------------------------- no label noise in the lists
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from larpo_lite.lists import select_counted  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0]), min_size=1, max_size=10), st.integers(0, 99))
def test_binary_lists_train_the_best_only_against_strictly_worse_responses(labels, seed):
    r = rank_candidates("p", [f"r{i}" for i in range(len(labels))], labels)
    c = select(r, "top1_bottom3")
    if c is not None:  # the contrastive softmax: a right answer vs wrong answers only
        assert 2 <= len(c.responses) <= 4 and c.rewards[0] == 1.0
        assert all(x < c.rewards[0] for x in c.rewards[1:])
    t = select(r, "top2_bottom2")
    if t is not None:  # a right answer on top, the bottom two strictly worse
        assert 3 <= len(t.responses) <= 4 and t.rewards[0] == 1.0
        assert all(x < t.rewards[0] for x in t.rewards[2:])
        assert t.rewards == sorted(t.rewards, reverse=True)
    for strategy in ("best_worst", "random_pair"):
        pair = select(r, strategy, random.Random(seed))
        assert pair is None or pair.rewards == [1.0, 0.0]
    got = (c is not None, t is not None)
    assert got == ((len(labels) >= 4 and 0 < sum(labels) < len(labels)),) * 2


def test_bottom3_holds_wrong_answers_only_when_most_are_right():
    # 6 of 8 right: the old bottom 3 held a right answer; now the best vs the two wrong ones
    r = ranked([1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    c = select(r, "top1_bottom3")
    assert c.responses == ["r0", "r1", "r5"] and c.rewards == [1.0, 0.0, 0.0]
    t = select(r, "top2_bottom2")
    assert t.responses == ["r0", "r2", "r1", "r5"] and t.rewards == [1.0, 1.0, 0.0, 0.0]
    # 7 of 8 right: one negative each
    r7 = ranked([1.0] * 7 + [0.0])
    assert select(r7, "top1_bottom3").responses == ["r0", "r7"]
    assert select(r7, "top2_bottom2").responses == ["r0", "r1", "r7"]
    # 1 of 8 right: top2's second entry is a wrong answer, tied with the bottom two
    r1 = ranked([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    assert select(r1, "top2_bottom2").rewards == [1.0, 0.0, 0.0, 0.0]
    assert select(r1, "top1_bottom3").responses == ["r3", "r5", "r6", "r7"]


def test_select_counted_counts_skipped_and_shortened_lists():
    rk = [ranked([1.0] * 7 + [0.0]), ranked([1.0] * 4 + [0.0] * 4), ranked([0.0] * 8),
          ranked([1.0, 1.0, 1.0, 0.0, 0.0]), ranked([1.0, 0.0])]
    lists, counts = select_counted(rk, "top1_bottom3")
    assert counts == {"skipped": 2, "shortened": 2, "lists": 3}
    assert [len(x.responses) for x in lists] == [2, 4, 3]
    assert select_lists(rk, "top1_bottom3") == (lists, 2)  # the old two-value form
    assert select_counted(rk, "top2_bottom2")[1] == {"skipped": 2, "shortened": 1, "lists": 3}
    assert select_counted(rk, "full")[1] == {"skipped": 1, "shortened": 0, "lists": 4}
