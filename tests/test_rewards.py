import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from larpo_lite.lists import rank_candidates, select
from larpo_lite.rewards import (
    GradedVerifierReranker,
    MajorityVoteReranker,
    VerifierReranker,
    answer_closeness,
    best_of_n,
    get_reranker,
    has_answer_line,
)


def test_verifier():
    r = VerifierReranker()
    assert r.score(["#### 4", "#### 5", "no idea"], gold="4") == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        r.score(["#### 4"])


def test_majority_vote_needs_no_label():
    r = MajorityVoteReranker()
    texts = ["#### 7", "#### 3", "the answer is 7.0", "nothing", "#### 3", "#### 7"]
    assert r.score(texts) == [1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    assert r.score(["none", "still none"]) == [0.0, 0.0]
    # tie between answers: the one seen first wins
    assert r.score(["#### 1", "#### 2"]) == [1.0, 0.0]


def test_best_of_n_and_registry():
    assert best_of_n([0.0, 1.0, 1.0]) == 1
    assert best_of_n([0.0]) == 0
    with pytest.raises(ValueError):
        best_of_n([])
    assert get_reranker("majority").name == "majority"
    with pytest.raises(ValueError, match="verifier"):
        get_reranker("oracle")


# ---- the graded verifier

_FILLER = ["", "So", "The total is", "First add them.", "We get", "\n", "answer is"]
_response = st.builds(
    lambda pre, num, fmt, post: f"{pre} {num}" + (f"\n#### {num}" if fmt else "") + post,
    st.sampled_from(_FILLER), st.integers(-5, 15), st.booleans(), st.sampled_from(["", " done", ""]))


@settings(max_examples=200, deadline=None)
@given(st.lists(_response | st.sampled_from(["no idea", "", "#### ", "####42"]), min_size=1,
                max_size=10), st.integers(0, 10))
def test_graded_verifier_keeps_every_correct_above_every_incorrect(texts, gold):
    scores = GradedVerifierReranker().score(texts, str(gold))
    binary = VerifierReranker().score(texts, str(gold))
    right = [s for s, b in zip(scores, binary, strict=True) if b == 1.0]
    wrong = [s for s, b in zip(scores, binary, strict=True) if b == 0.0]
    assert all(0.55 <= s <= 1.0 for s in right) and all(0.0 <= s <= 0.45 for s in wrong)
    if right and wrong:
        assert min(right) > max(wrong)
    # ranked by it, the list is the verifier's order: no incorrect response above a correct one
    ranked = rank_candidates("p", texts, scores)
    flags = VerifierReranker().score(ranked.texts, str(gold))
    assert flags == sorted(flags, reverse=True)
    # a text's score does not depend on where it stands in the list
    rev = GradedVerifierReranker().score(texts[::-1], str(gold))
    assert rev == scores[::-1]


def test_graded_verifier_hand_example():
    gold = "42"
    texts = [
        "7 * 6 = 42\n#### 42",                                      # 0 correct, formatted, short
        "Seven sixes make 42, counted one by one carefully, so the answer is 42",  # 1 correct, no ####
        "#### 41",                                                  # 2 wrong, near, formatted
        "The answer is 400",                                        # 3 wrong, far, no ####
        "#### 41",                                                  # 4 the same as 2
        "I do not know",                                            # 5 no answer at all
        "#### -42",                                                 # 6 wrong sign
    ]
    r = GradedVerifierReranker()
    comps = r.components(texts, gold)
    assert [c["correct"] for c in comps] == [1, 1, 0, 0, 0, 0, 0]
    assert [c["format"] for c in comps] == [1, 0, 1, 0, 1, 0, 1]
    assert comps[0]["agreement"] == pytest.approx(1 / 6)  # one other response says 42
    assert comps[2]["agreement"] == pytest.approx(1 / 6) and comps[5]["agreement"] == 0.0
    assert comps[2]["closeness"] == pytest.approx(42 / 43)
    assert comps[3]["closeness"] == pytest.approx(43 / 401)
    assert comps[6]["closeness"] == pytest.approx(0.5) and comps[5]["closeness"] == 0.0
    s = r.score(texts, gold)
    # the exact score of the first (7 words): 0.55 + 0.45 * (0.35 + 0.30 + 0.25 / 6 + 0.10 / (1 + 7 / 20))
    assert s[0] == pytest.approx(0.55 + 0.45 * (0.35 + 0.30 + 0.25 / 6 + 0.10 / 1.35))
    # graded order: formatted correct > unformatted correct > near miss > wrong sign > far > none
    ranked = rank_candidates("p", texts, s)
    assert ranked.texts == [texts[i] for i in (0, 1, 2, 4, 6, 3, 5)]
    assert s[2] == s[4]  # identical texts tie: sampling order decides, 2 before 4
    assert r.score(texts, gold) == s  # deterministic
    # the binary verifier would leave 0/1 and 2..6 in sampling order
    assert rank_candidates("p", texts, VerifierReranker().score(texts, gold)).texts == texts
    with pytest.raises(ValueError, match="gold"):
        r.score(texts)


def test_graded_verifier_breaks_ties_deterministically():
    r = GradedVerifierReranker()
    # four correct answers differing only in format and length
    texts = ["So the total is 12 apples in all\n#### 12", "#### 12", "12", "It is 12\n#### 12"]
    s = r.score(texts, "12")
    assert len(set(s)) == 4 and all(x >= 0.55 for x in s)
    ranked = rank_candidates("p", texts, s)
    assert ranked.texts == ["#### 12", "It is 12\n#### 12", "So the total is 12 apples in all\n#### 12", "12"]
    # the same candidates in another order rank the same way
    assert rank_candidates("p", texts[::-1], r.score(texts[::-1], "12")).texts == ranked.texts
    # top2_bottom2 of a graded list carries the graded rewards to the listwise losses
    picked = select(rank_candidates("p", texts + ["#### 11"], r.score(texts + ["#### 11"], "12")),
                    "top2_bottom2")
    assert picked is not None and picked.rewards == sorted(picked.rewards, reverse=True)
    assert len(set(picked.rewards)) == 4


def test_graded_helpers_and_registry():
    assert has_answer_line("work\n#### 1,234.5\n") and has_answer_line("####  -3.")
    assert has_answer_line("#### 1e3") and has_answer_line("#### \u22125") and has_answer_line("#### .5")
    assert not has_answer_line("#### none") and not has_answer_line("the answer is 5 #### 5 words")
    assert not has_answer_line("#### 5 apples") and not has_answer_line("#### NaN")
    assert answer_closeness("5", "5") == 1.0 and answer_closeness(None, "5") == 0.0
    assert answer_closeness("5", "x") == 0.0
    assert answer_closeness("0", "9") == pytest.approx(0.1)
    assert get_reranker("graded_verifier").name == "graded_verifier"
    from larpo_lite.rewards import reranker_for

    assert isinstance(reranker_for("", "graded_verifier"), GradedVerifierReranker)


def test_graded_rewards_give_lambdarank_the_pairs_the_verifier_ties():
    import torch

    from larpo_lite.losses import lambdarank_weights

    texts = ["#### 12", "12", "#### 11", "the answer is 3000", "It is 12\n#### 12", "nothing"]
    pairs = {}
    for rr in (VerifierReranker(), GradedVerifierReranker()):
        lst = select(rank_candidates("p", texts, rr.score(texts, "12")), "top2_bottom2")
        rewards = torch.tensor([lst.rewards])  # [1, 4], best first
        pairs[rr.name] = int(lambdarank_weights(torch.zeros(1, 4), rewards=rewards).sum())
    # binary: only the 2 x 2 correct/incorrect pairs; graded: all 6 ordered pairs
    assert pairs == {"verifier": 4, "graded_verifier": 6}


def test_graded_verifier_is_selectable_by_the_reranker_parameter():
    from larpo_lite.config import Params
    from larpo_lite.loop import LoopConfig
    from larpo_lite.rewards import reranker_for

    assert Params.load("default").reranker == "verifier"
    cfg = LoopConfig.from_params(Params.load("smoke", reranker="graded_verifier"))
    assert cfg.reranker == "graded_verifier"
    assert isinstance(reranker_for(cfg.reward_model, cfg.reranker), GradedVerifierReranker)


@settings(max_examples=200, deadline=None)
@given(st.lists(_response | st.sampled_from(["no idea", "", "#### ", "####42"]), min_size=2,
                max_size=10), st.integers(0, 10))
def test_graded_lists_have_a_right_answer_on_top(texts, gold):
    """A graded list is kept only with a correct best response; its wrong answers stay below
    every right one, graded among themselves."""
    scores = GradedVerifierReranker().score(texts, str(gold))
    ranked = rank_candidates("p", texts, scores)
    right = VerifierReranker().score(ranked.texts, str(gold))
    for strategy in ("best_worst", "top1_bottom3", "top2_bottom2", "full"):
        picked = select(ranked, strategy)
        if picked is None:
            continue
        assert VerifierReranker().score(picked.responses[:1], str(gold)) == [1.0]
        negatives = {"full": [], "top2_bottom2": picked.rewards[2:]}.get(strategy,
                                                                        picked.rewards[1:])
        assert all(x < picked.rewards[0] for x in negatives)
    if not any(right):  # all wrong: no order at all, every strategy skips
        assert set(scores) == {0.0}
        assert all(select(ranked, s) is None for s in ("best_worst", "top1_bottom3", "full"))


def test_graded_verifier_skips_a_list_whose_best_is_wrong():
    r = GradedVerifierReranker()
    wrong = ["#### 41", "The answer is 400", "I do not know", "#### -42", "#### 41"]
    assert r.score(wrong, "42") == [0.0] * 5  # graded before: #### 41 was its "best"
    assert select(rank_candidates("p", wrong, r.score(wrong, "42")), "top1_bottom3") is None
    # one right answer: it tops the list, the wrong ones are graded below it
    texts = wrong + ["6 * 7 = 42\n#### 42"]
    s = r.score(texts, "42")
    assert s[-1] >= 0.55 and len({round(x, 9) for x in s[:4]}) == 4 and max(s[:5]) <= 0.45
    c = select(rank_candidates("p", texts, s), "top1_bottom3")
    assert c.responses[0] == texts[-1] and c.responses[1:] == ["#### -42", "The answer is 400",
                                                                 "I do not know"]


def test_the_strict_verifier_ignores_the_last_number_fallback():
    from larpo_lite.rewards import get_reranker

    strict = get_reranker("strict_verifier")
    texts = ["#### 13", "I count 13 coins", "the answer is 13", "#### 12"]
    assert strict.score(texts, "13") == [1.0, 0.0, 0.0, 0.0]
    assert get_reranker("verifier").score(texts, "13") == [1.0, 1.0, 1.0, 0.0]


def test_the_verifier_audit_counts_rules_and_cross_prompt_false_positives():
    from larpo_lite.rewards import verifier_audit

    responses = ["2 + 3 = 5\n#### 5", "she has 7 apples", "so 7", "the answer is 9"]
    golds = ["5", "7", "7", "9"]
    got = verifier_audit(responses, golds)
    assert got["rules"] == {"####": 1, "answer is": 1, "last number": 2, "none": 0}
    assert got["right"] == 4 and got["right_strict"] == 1
    assert got["right_by_rule"]["last number"] == 2
    # cross pairs: 0 vs 7, 1 vs 9 (2 shares its gold 7), 2 vs 9, 3 vs 5
    assert got["cross_prompt_pairs"] == 4 and got["cross_prompt_right"] == 0.0
    fooled = verifier_audit(["it is 7", "#### 4"], ["3", "7"])
    assert fooled["cross_prompt_right"] == 0.5 and fooled["cross_prompt_right_strict"] == 0.0
    with pytest.raises(ValueError, match="2 responses but 1"):
        verifier_audit(["a", "b"], ["1"])


def test_shows_answer_tells_a_derived_answer_from_a_number_that_only_ends_the_text():
    """The audit's reader check: the gold after ``####``, "answer is" or ``=`` counts; a number
    of the question that merely ends the response does not (the verifier's fallback takes it)."""
    from larpo_lite.rewards import shows_answer
    from larpo_lite.tasks import is_correct

    fooled = "There are 13 placeholders in this greeting: Dear [name], ..., 13"
    assert is_correct(fooled, "13") and not shows_answer(fooled, "13")
    for text, gold in (("6 + 7 = 13 coins in all.", "13"), ("#### 1,300", "1300"),
                       ("The answer is \u22125", "-5"), ("cost = $13.00", "13"), (" 19.", "19")):
        assert shows_answer(text, gold), text
    assert not shows_answer("6 + 7 = 12, so 13 coins", "13")  # the result shown is 12


def test_the_verifier_audit_names_its_false_positives():
    from larpo_lite.rewards import verifier_audit

    responses = ["2 + 3 = 5, so she has 5", "I see 7 cats and 7 dogs", "#### 9", "it is 9"]
    golds = ["5", "7", "9", "3"]
    got = verifier_audit(responses, golds)
    # right through the fallback: 0 (shows "= 5") and 1 (only ends on 7)
    assert got["right_by_rule"]["last number"] == 2 and got["fallback_right_shown"] == 1
    assert got["fallback_right_unshown"] == [1]
    # response 3 ("it is 9") checked against the next other gold, 5: no; response 2 ("#### 9")
    # against 3: no; response 3's own gold is 3, the cycle's next gold is 5 -> none right
    assert got["cross_prompt_hits"] == []
    fooled = verifier_audit(["it is 7", "#### 4"], ["3", "7"])
    assert fooled["cross_prompt_hits"] == [[0, 1]]
