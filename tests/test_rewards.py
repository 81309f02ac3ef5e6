import pytest

from larpo_lite.rewards import MajorityVoteReranker, VerifierReranker, best_of_n, get_reranker


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
