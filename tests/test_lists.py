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
