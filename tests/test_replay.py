"""The replay mechanism (larpo_lite/replay.py): a recorded step replays as the same data, a
real run hands the notebook the same types replay would, and replay never calls the step; a
recording swaps in whole, and replay refuses records it cannot trust (changed, cut, unlisted,
no manifest, other parameters), naming the file and how to re-record."""

import gzip
import json
import shutil

import numpy as np
import pytest

from larpo_lite import replay
from larpo_lite.config import NON_RESULT_KEYS, Params, load_preset_values
from larpo_lite.notebooks import notebook_paths
from larpo_lite.paths import repo_root


def _params(tmp_path, **kw):
    return Params(preset="smoke", replay_dir=str(tmp_path / "rec"), record_dir=str(tmp_path / "rec"),
                  figures_dir="runs/smoke/figures", reports_dir="runs/smoke/reports", **kw)


def _record(tmp_path, notebook="03_x", steps=None, **kw):
    """A finished recording of ``steps`` ({name: data}) in ``tmp_path/rec/<notebook>``."""
    rec = replay.Recorder(notebook, _params(tmp_path, **kw))
    for name, data in (steps or {"a": {"correct": [1, 0, 1]}, "b": [0.5]}).items():
        rec(name, lambda data=data: data)
    assert rec.finish()
    return tmp_path / "rec" / notebook


def test_a_recorded_step_replays_the_same_data_without_running(tmp_path):
    calls = []

    def step():
        calls.append(1)
        return {"correct": np.array([1, 0, 1]), "loss": np.float32(0.5), "pair": (1, 2), 3: "x"}

    rec = replay.Recorder("03_x", _params(tmp_path))
    got = rec("train", step, what="training")
    assert got == {"correct": [1, 0, 1], "loss": 0.5, "pair": [1, 2], "3": "x"}  # JSON types
    assert not (tmp_path / "rec" / "03_x").exists()  # a new folder, swapped in at the end
    assert rec.finish()
    assert (tmp_path / "rec" / "03_x" / "train.json.gz").is_file()
    rec = replay.Recorder("03_x", _params(tmp_path, replay=True))
    assert rec("train", lambda: pytest.fail("replay ran the step")) == got
    assert calls == [1]


def test_the_manifest_holds_the_recording_parameters_and_a_hash_per_file(tmp_path):
    folder = _record(tmp_path)
    manifest = json.loads((folder / replay.MANIFEST).read_text())
    assert manifest["notebook"] == "03_x" and manifest["recorded_preset"] == "smoke"
    assert set(manifest["files"]) == {"a.json.gz", "b.json.gz"}
    import hashlib

    assert manifest["files"]["a.json.gz"] == hashlib.sha256((folder / "a.json.gz").read_bytes()).hexdigest()
    assert manifest["params"]["temperature"] == 0.7 and manifest["params"]["model_name"] == "smollm2-135m-instruct"
    assert not set(NON_RESULT_KEYS) & set(manifest["params"])  # where outputs go is not a result


def test_a_recording_killed_part_way_leaves_the_old_records(tmp_path):
    folder = _record(tmp_path, steps={"a": [1], "b": [2]})
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    rec = replay.Recorder("03_x", _params(tmp_path))  # a new recording, killed after step a
    rec("a", lambda: [9])
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert replay.Recorder("03_x", _params(tmp_path, replay=True))("a", lambda: None) == [1]
    # the next recording starts a fresh new folder (nothing of the killed one), then swaps whole
    rec = replay.Recorder("03_x", _params(tmp_path))
    rec("c", lambda: [3])
    rec.finish()
    assert sorted(p.name for p in folder.iterdir()) == ["c.json.gz", replay.MANIFEST]
    assert not replay.staging_folder(folder).exists()


def _flip_first_flag(path):
    data = replay.decode(path.read_bytes())
    data["correct"][0] = 1 - data["correct"][0]
    path.write_bytes(replay.encode(data))


def test_replay_refuses_a_changed_record_naming_it(tmp_path):
    folder = _record(tmp_path)
    _flip_first_flag(folder / "a.json.gz")
    with pytest.raises(replay.ReplayRecordError, match=r"a\.json\.gz changed.*--preset smoke --only 03"):
        replay.Recorder("03_x", _params(tmp_path, replay=True))


def test_replay_refuses_a_cut_record_without_a_bare_eoferror(tmp_path):
    folder = _record(tmp_path)
    data = (folder / "a.json.gz").read_bytes()
    (folder / "a.json.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(replay.ReplayRecordError, match=r"a\.json\.gz changed"):
        replay.Recorder("03_x", _params(tmp_path, replay=True))
    with pytest.raises(replay.ReplayRecordError, match="cut.json.gz: not a readable record"):
        replay.decode(data[: len(data) // 2], "cut.json.gz")


def test_replay_refuses_records_without_a_manifest_or_with_files_it_does_not_list(tmp_path):
    folder = _record(tmp_path)
    (folder / "z.json.gz").write_bytes(replay.encode([1]))
    with pytest.raises(replay.ReplayRecordError, match=r"z\.json\.gz not in manifest\.json"):
        replay.Recorder("03_x", _params(tmp_path, replay=True))
    (folder / "z.json.gz").unlink()
    (folder / "b.json.gz").unlink()
    with pytest.raises(replay.ReplayRecordError, match=r"b\.json\.gz missing"):
        replay.Recorder("03_x", _params(tmp_path, replay=True))
    (folder / replay.MANIFEST).unlink()
    with pytest.raises(replay.ReplayRecordError, match="manifest.json missing"):
        replay.Recorder("03_x", _params(tmp_path, replay=True))


@pytest.mark.parametrize(("key", "value"), [("temperature", 0.3), ("model_name", "tiny-random"),
                                            ("n_test", 4)])
def test_replay_refuses_parameters_that_change_results_naming_them(tmp_path, key, value):
    _record(tmp_path)
    with pytest.raises(replay.ReplayRecordError, match=f"{key}: recorded .*, this run {value!r}"):
        replay.Recorder("03_x", _params(tmp_path, replay=True, **{key: value}))


def test_a_replay_may_change_where_outputs_go(tmp_path):
    _record(tmp_path)
    p = Params(preset="mine", replay=True, replay_dir=str(tmp_path / "rec"), record_dir="",
               figures_dir="elsewhere/figures", reports_dir="elsewhere/reports", model_name="smollm2-135m-instruct")
    assert replay.Recorder("03_x", p)("b", lambda: None) == [0.5]


def test_records_are_byte_stable_and_keep_key_order(tmp_path):
    data = {"b": [0.1, 2], "a": "é", 20: 1, 5: 2}
    assert replay.encode(data) == replay.encode(dict(data))
    back = replay.decode(replay.encode(data))
    assert list(back) == ["b", "a", "20", "5"] and back["a"] == "é"


def test_replay_without_records_names_what_is_missing(tmp_path):
    with pytest.raises(replay.ReplayMissingError, match="nothing recorded"):
        replay.Recorder("04_y", _params(tmp_path, replay=True))
    rec = replay.Recorder("04_y", _params(tmp_path))
    rec("a", lambda: 1)
    rec.finish()
    with pytest.raises(replay.ReplayMissingError, match="b.json.gz missing"):
        replay.Recorder("04_y", _params(tmp_path, replay=True))("b", lambda: 2)


COMMITTED = [p for p in notebook_paths() if (repo_root() / replay.REPLAY_DIR / p.stem).is_dir()]


@pytest.mark.parametrize("nb", COMMITTED, ids=lambda p: p.name[:2])
def test_the_committed_records_have_a_manifest_the_replay_preset_accepts(nb):
    folder = repo_root() / replay.REPLAY_DIR / nb.stem
    manifest = replay.check_records(folder, nb.stem, Params.load("replay"))
    assert manifest["recorded_preset"] == "default"
    assert manifest["params"] == replay.recording_params(Params.load("default"))


def test_a_flipped_flag_in_the_committed_records_is_refused(tmp_path):
    folder = tmp_path / "replay" / "01_ir_analogy"
    shutil.copytree(repo_root() / replay.REPLAY_DIR / "01_ir_analogy", folder)
    with gzip.open(folder / "greedy.json.gz") as f:
        assert "correct" in json.load(f)
    _flip_first_flag(folder / "greedy.json.gz")
    p = Params.load("replay", replay_dir=str(tmp_path / "replay"))
    with pytest.raises(replay.ReplayRecordError,
                       match=r"greedy\.json\.gz changed.*make notebooks ONLY=01"):
        replay.Recorder("01_ir_analogy", p)


@pytest.mark.parametrize(("line", "named"), [("temperature: 0.3", "temperature"),
                                             ("model_name: tiny-random", "model_name")])
def test_a_preset_based_on_replay_that_changes_results_is_refused(tmp_path, line, named):
    preset = tmp_path / "myreplay.yaml"
    preset.write_text(f"based_on: replay\n{line}\n")
    with pytest.raises(replay.ReplayRecordError, match=f"{named}: recorded"):
        replay.Recorder("01_ir_analogy", Params.load(str(preset)))


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


def test_two_runs_recording_one_notebook_at_once_keep_their_own_folders(tmp_path, monkeypatch):
    """Two runs of one preset recording the same notebook (two test workers, two shells):
    the second start must not delete the first one's recording, and each swaps in whole."""
    folder = _record(tmp_path, steps={"a": [1]})
    monkeypatch.setenv(replay.RECORDING_ENV, "first")
    first = replay.Recorder("03_x", _params(tmp_path))
    first("a", lambda: [5])
    monkeypatch.setenv(replay.RECORDING_ENV, "second")
    second = replay.Recorder("03_x", _params(tmp_path))
    second("a", lambda: [7])
    assert replay.staging_folder(folder, "first").is_dir()  # still there
    assert first.finish()
    assert replay.Recorder("03_x", _params(tmp_path, replay=True))("a", lambda: None) == [5]
    assert second.finish()
    assert replay.Recorder("03_x", _params(tmp_path, replay=True))("a", lambda: None) == [7]
    assert sorted(p.name for p in folder.parent.iterdir()) == ["03_x"]  # nothing left beside it


def test_a_recorded_function_records_each_call_and_replays_without_calling(tmp_path):
    calls = []
    rec = replay.Recorder("03_x", _params(tmp_path))

    @rec.recorded(lambda n: f"square_{n}", what=lambda n: f"{n} squared")
    def square(n):
        calls.append(n)
        return {"value": n * n}

    assert [square(2)["value"], square(3)["value"]] == [4, 9]
    assert calls == [2, 3]
    assert rec.finish()
    replayed = replay.Recorder("03_x", _params(tmp_path, replay=True))

    @replayed.recorded(lambda n: f"square_{n}")
    def never(n):
        raise AssertionError("replay must not call the step")

    assert never(3) == {"value": 9}
    with pytest.raises(replay.ReplayMissingError, match="square_4"):
        never(4)


def test_a_replay_stands_for_the_preset_its_records_were_recorded_with(tmp_path):
    from types import SimpleNamespace

    from larpo_lite.replay import MANIFEST, results_preset

    params = SimpleNamespace(preset="replay", replay=True, replay_dir=str(tmp_path))
    assert results_preset(params) == "replay"  # no records: its own name
    for nb in ("03_training_stage", "07_larpo_loop"):
        (tmp_path / nb).mkdir()
        (tmp_path / nb / MANIFEST).write_text(json.dumps({"recorded_preset": "default"}))
    assert results_preset(params) == "default"
    (tmp_path / "07_larpo_loop" / MANIFEST).write_text(json.dumps({"recorded_preset": "mine"}))
    assert results_preset(params) == "replay"  # records of two presets: none stands for both
    assert results_preset(SimpleNamespace(preset="smoke", replay=False, replay_dir="")) == "smoke"
