"""Tuning lr and beta on the validation split."""

import json

import pytest

from larpo_lite.config import Params
from larpo_lite.tune import run

pytestmark = pytest.mark.usefixtures("one_thread")


def test_tune_scores_every_setting_on_validation(tmp_path):
    params = Params.load("smoke", reports_dir=str(tmp_path), n_val=3)
    out = run(params, lrs=[1e-3, 1e-2], betas=[0.1])
    assert [(r["lr"], r["beta"]) for r in out["rows"]] == [(1e-3, 0.1), (1e-2, 0.1)]
    assert out["split"] == "validation" and out["n_val"] == 3
    best = max(r["val_greedy"] for r in out["rows"])
    assert out["chosen"]["lr"] == min(r["lr"] for r in out["rows"] if r["val_greedy"] == best)
    saved = json.loads((tmp_path / "tuning_validation.json").read_text())["metrics"]
    assert saved["chosen"] == out["chosen"] and saved["pairs"] > 0
    with pytest.raises(ValueError, match="at least one"):
        run(params, lrs=[], betas=[0.1])
