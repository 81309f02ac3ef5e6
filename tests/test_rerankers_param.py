"""The rerankers a preset can name without a model (``reranker``): each is one of the
package's rerankers, and a reward model comes from ``reward_model`` instead."""

import pytest

from larpo_lite import config, rewards
from larpo_lite.config import Params, ParamsError


def test_rerankers_are_rerankers_that_need_no_model():
    assert set(config.RERANKERS) <= set(rewards.RERANKERS)
    assert "reward_model" not in config.RERANKERS  # that one comes from the reward_model parameter


def test_a_bad_reranker_is_an_error_naming_the_valid_ones():
    with pytest.raises(ParamsError, match="unknown reranker 'graded'; valid: verifier, graded_verifier, strict_verifier"):
        Params.load("smoke", reranker="graded")
