"""The replay mechanism (larpo_lite/replay.py): a recorded step replays as the same data, a
real run hands the notebook the same types replay would, and replay never calls the step."""

import numpy as np
import pytest

from larpo_lite import replay
from larpo_lite.config import Params, load_preset_values


def _params(tmp_path, **kw):
    return Params(preset="smoke", replay_dir=str(tmp_path / "rec"), record_dir=str(tmp_path / "rec"),
                  figures_dir="runs/smoke/figures", reports_dir="runs/smoke/reports", **kw)


def test_a_recorded_step_replays_the_same_data_without_running(tmp_path):
    calls = []

    def step():
        calls.append(1)
        return {"correct": np.array([1, 0, 1]), "loss": np.float32(0.5), "pair": (1, 2), 3: "x"}

    got = replay.Recorder("03_x", _params(tmp_path))("train", step, what="training")
    assert got == {"correct": [1, 0, 1], "loss": 0.5, "pair": [1, 2], "3": "x"}  # JSON types
    assert (tmp_path / "rec" / "03_x" / "train.json.gz").is_file()
    rec = replay.Recorder("03_x", _params(tmp_path, replay=True))
    assert rec("train", lambda: pytest.fail("replay ran the step")) == got
    assert calls == [1]


def test_records_are_byte_stable_and_keep_key_order(tmp_path):
    data = {"b": [0.1, 2], "a": "é", 20: 1, 5: 2}
    assert replay.encode(data) == replay.encode(dict(data))
    back = replay.decode(replay.encode(data))
    assert list(back) == ["b", "a", "20", "5"] and back["a"] == "é"


def test_replay_without_records_names_what_is_missing(tmp_path):
    with pytest.raises(replay.ReplayMissingError, match="nothing recorded"):
        replay.Recorder("04_y", _params(tmp_path, replay=True))
    replay.Recorder("04_y", _params(tmp_path))("a", lambda: 1)
    with pytest.raises(replay.ReplayMissingError, match="b.json.gz missing"):
        replay.Recorder("04_y", _params(tmp_path, replay=True))("b", lambda: 2)


def test_the_replay_preset_is_the_default_one_reading_the_committed_records():
    default, rep = load_preset_values("default"), load_preset_values("replay")
    same = {k for k in default if default[k] == rep.get(k)}
    assert set(default) - same == {"preset", "figures_dir", "reports_dir", "record_dir"}
    p = Params.load("replay")
    assert p.replay and p.replay_dir == replay.REPLAY_DIR and p.record_dir == ""


def test_committed_records_stay_under_the_size_limit():
    assert replay.replay_bytes() <= replay.REPLAY_MAX_BYTES


def test_figure_data_holds_what_is_plotted_not_pixels(tmp_path):
    import matplotlib.pyplot as plt

    from larpo_lite import plotting

    def draw(dpi):
        fig, ax = plt.subplots(dpi=dpi)
        ax.errorbar([1, 2], [0.3, 0.4], yerr=[0.01, 0.02], label="a")
        ax.bar([0], [0.5])
        ax.set_title("t")
        return fig

    a, b = draw(50), draw(120)
    assert plotting.figure_data(a) == plotting.figure_data(b)
    data = plotting.figure_data(a)[0]
    assert data["title"] == "t" and data["lines"][0]["y"] == [0.3, 0.4]
    assert data["bars"] == [[-0.4, 0.8, 0.5]]
    assert any("segments" in c for c in data["collections"])  # the error bars
    plotting.savefig(a, "fig", tmp_path)
    assert (tmp_path / "fig.png").is_file() and (tmp_path / "fig.data.json").is_file()
    plt.close("all")
