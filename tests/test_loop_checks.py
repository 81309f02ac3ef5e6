"""LoopConfig's numbers are checked before a run starts: finite, in range, named."""

from __future__ import annotations

import pytest

from larpo_lite.loop import LoopConfig, finished_rows, run_loop

INF, NAN = float("inf"), float("nan")


@pytest.mark.parametrize(("change", "named"), [
    ({"lr": INF}, "lr must be a finite number, got inf"),
    ({"lr": 1e400}, "lr must be a finite number"),  # what YAML reads 1e400 as
    ({"lr": NAN}, "lr must be a finite number, got nan"),
    ({"lr": 0.0}, "lr must be > 0"),
    ({"beta": INF}, "beta must be a finite number"),
    ({"beta": -0.1}, "beta must be > 0"),
    ({"temperatures": [0.7, INF]}, "temperatures[1] must be a finite number"),
    ({"temperatures": [-0.5]}, "temperatures and eval_temperature must be >= 0"),
    ({"eval_temperature": INF}, "eval_temperature must be a finite number"),
    ({"top_p": 1.5}, "top_p must be in (0, 1]"),
    ({"top_p": NAN}, "top_p must be a finite number"),
    ({"max_new_tokens": 100_000_000}, "max_new_tokens must be in 1..131072, got 100000000"),
    ({"max_new_tokens": 0}, "max_new_tokens must be in 1..131072"),
    ({"batch_size": 0}, "batch_size must be >= 1"),
    ({"n_val": -1}, "n_val must be >= 0"),
])
def test_bad_numbers_are_refused_before_any_file_or_model(change, named, tmp_path):
    cfg = LoopConfig(model_name="tiny-random", **change)
    with pytest.raises(ValueError) as e:
        cfg.validate()
    assert named in str(e.value)
    with pytest.raises(ValueError, match="must be"):
        run_loop(cfg, tmp_path / "run")
    with pytest.raises(ValueError, match="must be"):
        finished_rows(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_good_numbers_pass():
    LoopConfig(model_name="tiny-random", temperatures=[1.0, 0.0], eval_temperature=0.0,
               top_p=1.0, lr=1e-4, beta=0.1, max_new_tokens=48).validate()
