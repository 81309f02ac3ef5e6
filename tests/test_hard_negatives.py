"""Notebook 05's steps (larpo_lite.hard_negatives): the tier runs' set-up and the audit of the
verifier on a run's samples (false positives, and the pairs a lenient or strict verifier makes)."""

import pytest

from larpo_lite import hard_negatives as hn
from larpo_lite.config import Params

SAMPLES = {  # two problems, four samples each, grouped by problem
    "questions": ["Ann has 6 coins and finds 7 more. How many coins?", "Bo has 9 pens and loses 4."],
    "golds": ["13", "5"],
    "texts": [["6 + 7 = 13 coins.", "There are 13 placeholders in this greeting", "6 + 7 = 12", "#### 13"],
              ["9 - 4 = 5", "I think 7", "Bo has 9 pens. 9 - 4 = 13", "no idea"]],
}


def test_a_tier_run_is_one_round_of_the_sweeps_size():
    params = Params.load("default")
    cfg = hn.tier_config(params, "incorrect_low_t", 0.3)
    assert (cfg.negative_tier, cfg.objective, cfg.iterations) == ("incorrect_low_t", "pairwise", hn.ROUNDS)
    assert (cfg.prompts_per_iter, cfg.n_test, cfg.temperatures) == (
        params.sweep_prompts_per_iter, params.n_eval_sweep, [0.3])


def test_the_audit_finds_the_false_positives_a_reader_would():
    a = hn.audit(SAMPLES)
    assert a["n"] == 8 and a["problems"] == 2
    # lenient right: "= 13", "13 placeholders", "#### 13", "= 5", and "= 13" of problem 2
    # is against gold 5, so wrong; the placeholders one is right by the fallback only
    assert a["right"] == 4 and a["right_strict"] == 1
    assert a["fallback_right_unshown"] == 1
    assert a["example_own"]["response"] == "There are 13 placeholders in this greeting"
    # "9 - 4 = 13" (problem 2) against problem 1's gold 13: a cross-problem false positive
    assert a["cross_prompt_hits"] >= 1 and a["example_other"]["other_gold"] == "13"
    assert a["cross_prompt_right"] > a["cross_prompt_right_strict"] == 0.0
    assert "placeholders" in hn.false_positives(a)


def test_the_strict_verifier_trains_right_answers_as_negatives():
    lenient, strict = hn.list_quality(SAMPLES, strict=False), hn.list_quality(SAMPLES, strict=True)
    # lenient: problem 1's first right sample "6 + 7 = 13 coins." against its last wrong one,
    # "6 + 7 = 12"; problem 2's "9 - 4 = 5" against "no idea"
    assert lenient == {"lists": 2, "marked_right": 4, "top_shown": 1.0, "bottom_unshown": 1.0}
    # strict: only "#### 13" is right; its negative is the last sample marked wrong, "6 + 7 = 12";
    # problem 2 has nothing right under it: no pair
    assert strict["lists"] == 1 and strict["marked_right"] == 1
    words = " ".join(hn.audit_sentences(hn.audit(SAMPLES)))
    assert "can be gamed" in words and "fewer pairs (1 against 2)" in words


def test_a_negative_that_shows_the_gold_counts_against_the_strict_pairs():
    samples = {"questions": ["q"], "golds": ["13"], "texts": [["#### 13", "6 + 7 = 13"]]}
    assert hn.list_quality(samples, strict=True) == {"lists": 1, "marked_right": 1, "top_shown": 1.0,
                                                     "bottom_unshown": 0.0}
    assert hn.list_quality(samples, strict=False)["lists"] == 0  # both right: no pair


@pytest.mark.parametrize("n_lists", [0, 3])
def test_the_pairs_sentence_reads_with_or_without_pairs(n_lists):
    q = {"lists": n_lists, "top_shown": 1.0 if n_lists else None, "bottom_unshown": 0.5 if n_lists else None}
    text = hn._pairs_sentence("strict", q)
    assert ("no problem gives a pair" in text) == (n_lists == 0)
