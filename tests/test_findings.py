import pytest

from larpo_lite import findings
from larpo_lite.metrics import paired_stats


def _vectors(gained: int, lost: int, same_right: int, same_wrong: int):
    base = [0] * gained + [1] * lost + [1] * same_right + [0] * same_wrong
    treat = [1] * gained + [0] * lost + [1] * same_right + [0] * same_wrong
    return base, treat


def test_a_clear_gain_reproduces_and_states_the_numbers():
    base, treat = _vectors(gained=58, lost=20, same_right=73, same_wrong=149)
    st = paired_stats(base, treat)
    text = findings.finding("SFT -> DPO", "init", st, sum(base) / 300, sum(treat) / 300,
                            "DPO improves greedy accuracy")
    assert "from 0.310 (init) to 0.437 (+0.127" in text
    assert f"paired SE {st.se:.3f}" in text and f"minimum detectable effect {st.mde:.3f}" in text
    assert "58 problems gained, 20 lost" in text
    assert "is reproduced here" in text


def test_within_two_se_is_inconclusive_and_a_drop_contradicts():
    base, treat = _vectors(gained=34, lost=30, same_right=59, same_wrong=177)
    st = paired_stats(base, treat)
    assert findings.claim_verdict(st) == "inconclusive"
    assert "inconclusive here" in findings.verdict_sentence(st, "x helps")
    base, treat = _vectors(gained=24, lost=63, same_right=30, same_wrong=183)
    st = paired_stats(base, treat)
    assert findings.claim_verdict(st) == "contradicted"
    assert "(-0.130" in findings.comparison_sentence("gold", "init", st, 0.31, 0.18)
    # the same drop is a reproduction of a claim that the treatment is worse
    assert findings.claim_verdict(st, paper_direction=-1) == "reproduced"


def test_no_change_and_bad_direction():
    st = paired_stats([1, 0, 1, 0], [1, 0, 1, 0])
    assert "left greedy accuracy" in findings.comparison_sentence("a", "b", st, 0.5, 0.5)
    # the treatment's name opens the sentence, so it starts with a capital; the rest is kept
    assert findings.comparison_sentence("a list of 16 samples", "iterative DPO", st, 0.5,
                                        0.5).startswith("A list of 16 samples left")
    assert findings.claim_verdict(st) == "inconclusive"
    assert "No problem changed" in findings.verdict_sentence(st, "x helps")
    with pytest.raises(ValueError, match="paper_direction"):
        findings.claim_verdict(st, paper_direction=0)
    assert findings.paragraph(["One.", "", " Two. "]) == "One. Two."


def test_flipped_examples_lists_gains_then_losses():
    text = findings.flipped_examples(
        ["q0", "q1", "q2", "q3"], ["1", "2", "3", "4"],
        ["a0", "b1", "c2", "d3"], ["A0", "B1", "C2", "D3"],
        [False, True, False, True], [True, False, True, True], n=1)
    assert "-- 2 problems gained; the first 1:" in text
    assert "[0] q0  (gold 1)\n    before: a0\n    after:  A0" in text
    assert "[2]" not in text  # only n=1 per direction
    assert "-- 1 problems lost; the first 1:" in text and "[1] q1" in text
    with pytest.raises(ValueError, match="one length"):
        findings.flipped_examples(["q"], [], [], [], [], [])


def test_rows_and_findings_from_per_problem_scores():
    scores = {"init": [0, 0, 1, 1, 0, 1], "run": [1, 1, 1, 0, 0, 1]}
    (row,) = findings.comparison_rows(scores, [("run", "init")])
    st = paired_stats(scores["init"], scores["run"])
    assert row == st.row("run", "init") and row["gained"] == 2 and row["lost"] == 1
    s, text = findings.finding_from_scores(scores, "run", "init", "x helps",
                                           names={"init": "the initial policy"})
    assert s == st
    assert text.startswith("Run moved greedy accuracy on 6 problems from 0.500 (the initial policy) to 0.667")
