"""memory_iterations: the rounds of notebook 06's memorization runs."""

import pytest

from larpo_lite.config import Params, ParamsError


def test_memory_runs_reach_the_round_where_memory_modes_differ():
    # "previous" and "all" train on the same lists until round 3
    for preset in ("default", "smoke"):
        assert Params.load(preset).memory_iterations >= 3, preset


@pytest.mark.parametrize("bad", [0, -1, 2.5, "3"])
def test_memory_iterations_must_be_a_positive_int(bad):
    with pytest.raises(ParamsError, match="memory_iterations"):
        Params.load("smoke", memory_iterations=bad)
