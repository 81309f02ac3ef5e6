"""The validation study's per-objective choices as notebooks 04 and 07 read them
(``tune.chosen_settings``) and apply them to a loop config (``tune.apply_choice``)."""

import dataclasses
import json

from larpo_lite.loop import LoopConfig
from larpo_lite.tune import apply_choice, chosen_settings

CHOSEN = {"pairwise": {"name": "lr=0.0001", "lr": 1e-4, "beta": 0.3, "diff": 0.02},
          "contrastive": {"name": "lr=3e-05", "lr": 3e-5},  # no beta: the config's stays
          "listmle": {"name": "broken"}}  # no lr: ignored


def _write(path, preset="smoke", chosen=None):
    path.write_text(json.dumps({"notebook": "tuning_validation", "params": {"preset": preset},
                                "metrics": {"n_val": 4, "chosen": CHOSEN if chosen is None else chosen}}))
    return path


def test_the_choices_of_this_preset_with_an_lr(tmp_path):
    got = chosen_settings(_write(tmp_path / "tuning_validation.json"), "smoke")
    assert set(got) == {"pairwise", "contrastive"}  # listmle's choice has no lr
    assert got["pairwise"]["lr"] == 1e-4 and got["pairwise"]["beta"] == 0.3


def test_another_presets_study_gives_nothing(tmp_path):
    assert chosen_settings(_write(tmp_path / "t.json", preset="default"), "smoke") == {}


def test_a_missing_file_gives_nothing(tmp_path):
    assert chosen_settings(tmp_path / "tuning_validation.json", "smoke") == {}


def test_an_older_file_with_one_choice_for_all_gives_nothing(tmp_path):
    path = _write(tmp_path / "t.json", chosen={"lr": 3e-5, "beta": 0.1})
    assert chosen_settings(path, "smoke") == {}


def test_apply_choice_changes_lr_and_beta_of_the_chosen_objective_only(tmp_path):
    chosen = chosen_settings(_write(tmp_path / "t.json"), "smoke")
    base = LoopConfig(lr=1e-3, beta=0.1, k=4, prompts_per_iter=8)
    pw = apply_choice(dataclasses.replace(base, objective="pairwise"), chosen)
    assert (pw.lr, pw.beta) == (1e-4, 0.3)
    assert dataclasses.replace(pw, lr=base.lr, beta=base.beta) == dataclasses.replace(base, objective="pairwise")
    con = apply_choice(dataclasses.replace(base, objective="contrastive"), chosen)
    assert (con.lr, con.beta) == (3e-5, 0.1)  # beta: the config's
    for objective in ("lambdarank", "listmle"):  # no choice, or one without lr
        cfg = dataclasses.replace(base, objective=objective)
        assert apply_choice(cfg, chosen) == cfg
    assert apply_choice(base, {}) == base
