"""A round trained identically by another run of the same preset is loaded, not retrained:
the tuning study's first rounds serve 04 and 07 (loop.training_key, loop.find_trained)."""

import numpy as np
import pytest

from larpo_lite import loop, run_folder
from larpo_lite.loop import LoopConfig, per_problem, run_loop, training_key
from larpo_lite.trainer import RankedList

TINY = dict(model_name="tiny-random", device="cpu", dtype="float32", batch_size=16, iterations=1,
            prompts_per_iter=4, k=4, max_new_tokens=8, lr=1e-3, epochs=1, lists_per_step=2,
            lora_r=4, n_val=3, n_test=3, eval_samples=0, gold_in_list=True, show_progress=False)


def test_the_key_follows_training_and_ignores_evaluation():
    data = [RankedList("p", ["good", "bad"], [1.0, 0.0])]
    cfg = LoopConfig(**TINY)
    key = training_key(cfg, 1, data, "initial", "cpu")
    same = LoopConfig(**{**TINY, "iterations": 3, "n_val": 50, "n_test": 9, "eval_split": "validation",
                         "eval_samples": 4, "batch_size": 3})
    assert training_key(same, 1, data, "initial", "cpu") == key
    for change in ({"lr": 2e-3}, {"objective": "listmle"}, {"epochs": 2}, {"seed": 1},
                   {"beta": 0.2}, {"lora_r": 8}):
        assert training_key(LoopConfig(**{**TINY, **change}), 1, data, "initial", "cpu") != key, change
    assert training_key(cfg, 2, data, "initial", "cpu") != key
    assert training_key(cfg, 1, data, "another policy", "cpu") != key
    assert training_key(cfg, 1, data, "initial", "cuda") != key
    assert training_key(cfg, 1, [RankedList("p", ["bad", "good"], [1.0, 0.0])], "initial", "cpu") != key


@pytest.mark.slow
def test_a_later_run_loads_the_study_round_and_trains_only_what_is_new(tmp_path, monkeypatch):
    calls = []
    real = loop.train_ranking

    def counting(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(loop, "train_ranking", counting)
    study = LoopConfig(**{**TINY, "eval_split": "validation"})
    first = run_loop(study, tmp_path / "p" / "tune" / "setting")
    assert len(calls) == 1 and "train_reused_from" not in first[1]
    # a notebook's run: two rounds, evaluated on test; its round 1 is the study's
    later = LoopConfig(**{**TINY, "iterations": 2})
    rows = run_loop(later, tmp_path / "p" / "loop" / "run")
    assert rows[1]["train_reused_from"] == "tune/setting round 1"
    assert rows[1]["train_key"] == first[1]["train_key"]
    assert rows[1]["loss_last"] == first[1]["loss_last"]
    assert len(calls) == 2  # round 2 only
    # the same run with nothing to reuse (another preset's folder) ends with the same policy
    alone = run_loop(later, tmp_path / "q" / "loop" / "run", reuse=False)
    assert len(calls) == 4 and "train_reused_from" not in alone[1]
    for r, a in zip(rows, alone, strict=True):
        assert r.get("train_key") == a.get("train_key")
        for split in ("val", "test"):
            np.testing.assert_array_equal(per_problem(r, split), per_problem(a, split))
    # keys are recorded: a third run reuses both rounds
    run_loop(later, tmp_path / "p" / "loop" / "again")
    assert len(calls) == 4


@pytest.mark.slow
def test_a_first_round_recorded_without_a_key_is_still_found(tmp_path):
    import json

    out = tmp_path / "p" / "tune" / "old"
    rows = run_loop(LoopConfig(**TINY), out)
    for r in rows:  # as the rows of a run written before keys were recorded
        r.pop("train_key", None)
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    found = loop.find_trained(rows[1].get("train_key") or run_folder._row_key(out, rows[1], "cpu"),
                              tmp_path / "p")
    assert found is not None and found[0] == out / "ckpt_iter1"
    again = run_loop(LoopConfig(**{**TINY, "n_val": 2}), tmp_path / "p" / "loop" / "new")
    assert again[1]["train_reused_from"] == "tune/old round 1"
