"""The ``rerankers`` parameter (notebooks 04 and 07 run the objectives under each)."""

import pytest

from larpo_lite import config, rewards
from larpo_lite.config import Params, ParamsError


def test_rerankers_are_rerankers_that_need_no_model():
    assert set(config.RERANKERS) <= set(rewards.RERANKERS)
    assert "reward_model" not in config.RERANKERS  # that one comes from the reward_model parameter
    assert Params.load("smoke").rerankers == ["verifier", "graded_verifier"]


@pytest.mark.parametrize(("value", "message"), [
    (["verifier", "graded"], "unknown reranker 'graded'; valid: verifier, graded_verifier, strict_verifier"),
    ([], "must be a non-empty list"),
    ("verifier", "must be a list of str"),
])
def test_bad_rerankers_are_errors_naming_the_valid_ones(value, message):
    with pytest.raises(ParamsError, match=message):
        Params.load("smoke", rerankers=value)
