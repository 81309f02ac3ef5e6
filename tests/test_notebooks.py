"""Notebook sources: no outputs, one parameters cell matching the default preset; every
notebook runs under the smoke preset."""

import ast
import json

import nbformat
import pytest

from larpo_lite.config import Params
from larpo_lite.notebooks import notebook_paths, run_notebooks

NOTEBOOKS = notebook_paths()
# the exercise solutions follow the same source conventions (their runs: tests/test_solutions.py)
SOURCES = NOTEBOOKS + notebook_paths(folder="notebooks/solutions")


def test_there_are_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS][:2] == ["01", "02"]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_source_has_no_outputs_and_one_parameters_cell(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert not any(c.get("outputs") or c.get("execution_count") for c in code), "strip outputs"
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert "language_info" in nb["metadata"]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_parameters_cell_equals_default_preset(path):
    """Opened in Jupyter, a notebook runs the default preset as committed."""
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values = {}
    for node in ast.parse(cell.source).body:
        assert isinstance(node, ast.Assign), "the parameters cell holds plain assignments only"
        values[node.targets[0].id] = ast.literal_eval(node.value)
    Params.from_mapping(values)  # every name is a known parameter of the right type
    import papermill as pm

    # papermill must see every name, or it silently drops the preset's value for it (a
    # comment holding "=" or ";" is enough to hide a line from its parser)
    assert set(pm.inspect_notebook(str(path))) == set(values)
    # default.yaml over the Params defaults (the file may leave a key to its default)
    default = Params.load("default").to_dict()
    for key, value in values.items():
        assert default[key] == value, f"{path.name}: {key}={value!r} but the default preset has {default[key]!r}"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_under_smoke(path, tmp_path):
    """One notebook per test (``-k 08`` runs one); in file order they cover every notebook."""
    (out,) = run_notebooks("smoke", only=[path.name[:2]], out_dir=tmp_path)
    assert out.name == path.name
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert "preset=smoke" in text  # the "What we saw" cell printed this run's numbers
    # headless: no progress bars (no carriage-return redraws, no widget views) in the outputs
    shown = text + "".join(str(o.get("data", {}).get("text/plain", "")) for c in nb.cells
                           if c.cell_type == "code" for o in c.get("outputs", []))
    assert "\r" not in shown and "%|" not in shown  # tqdm draws "  40%|####  | 2/5"
    reports = Params.load("smoke").out_dir("reports")
    assert (reports / f"{path.stem}.json").is_file()


def test_unknown_parameter_stops_before_running(tmp_path):
    with pytest.raises(ValueError, match="n_tset"):
        run_notebooks("smoke", out_dir=tmp_path, overrides={"n_tset": 2})
    assert not list(tmp_path.glob("*.ipynb"))


def test_schedule_starts_a_notebook_only_after_its_dependencies():
    from larpo_lite.notebooks import schedule

    nums = ["01", "02", "03"]
    assert schedule(nums, finished=set(), running={"01"}) == "03"  # 02 waits for 01
    assert schedule(nums, finished=set(), running={"01", "03"}) is None
    assert schedule(nums, finished={"01"}, running={"03"}) == "02"
    assert schedule(["02", "03"], finished=set(), running=set()) == "02"  # 01 not selected
    # with the last run's timings the longest chain starts first: 04 then 07 (07 waits for 04)
    nums = ["01", "02", "03", "04", "05", "07"]
    secs = {"01": 300, "02": 800, "03": 600, "04": 2000, "05": 1500, "07": 1000}
    assert schedule(nums, set(), set(), secs) == "04"
    assert schedule(nums, set(), {"04"}, secs) == "05"  # 1500 > 01+02 (1100), 03 (600)
    assert schedule(nums, {"04"}, {"05"}, secs) == "01"  # 01 -> 02 (1100) > 07 (1000)


def test_parallel_children_are_marked_and_run_one_notebook_each(tmp_path, monkeypatch):
    """Each ``--jobs`` child runs one ``--only NN`` and carries the child mark (so only the
    parent prints that the whole run is done)."""
    from larpo_lite import notebooks

    started: list[tuple[list[str], dict]] = []

    class Done:
        returncode = 0

        def __init__(self, cmd, env, **kwargs):  # process_group, preexec_fn
            started.append((cmd, env))

        def poll(self):
            return 0

    monkeypatch.setattr(notebooks.subprocess, "Popen", Done)
    monkeypatch.setattr(notebooks.time, "sleep", lambda s: None)
    nbs = notebook_paths(["01", "02"])
    notebooks._run_parallel("smoke", nbs, tmp_path, 2, False)
    assert sorted(cmd[cmd.index("--only") + 1] for cmd, _ in started) == ["01", "02"]
    assert all(env[notebooks.CHILD_ENV] == "1" for _, env in started)


@pytest.mark.slow
def test_two_notebooks_side_by_side(tmp_path):
    outs = run_notebooks("smoke", only=["01", "02"], out_dir=tmp_path, jobs=2)
    assert [p.name[:2] for p in outs] == ["01", "02"]
    for p in outs:
        nb = nbformat.read(p, as_version=4)
        assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))


@pytest.mark.slow
def test_alignment_notebooks_run_on_a_reward_scored_task(tmp_path, uf_dir):
    """04, 06 and 07 with ``alignment_task: ultrafeedback`` (a local folder in its shape) and a
    reward model: they rank, train and report mean rewards instead of accuracies."""
    over = {"alignment_task": "ultrafeedback", "alignment_source": str(uf_dir),
            "reward_model": "tiny-random-rm", "reports_dir": str(tmp_path / "reports"),
            "figures_dir": str(tmp_path / "figures"), "record_dir": str(tmp_path / "record")}
    outs = run_notebooks("smoke", only=["04", "06", "07"], out_dir=tmp_path, overrides=over)
    assert [p.name[:2] for p in outs] == ["04", "06", "07"]
    for p in outs:
        nb = nbformat.read(p, as_version=4)
        assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
        text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                       for o in c.get("outputs", []))
        assert "task=ultrafeedback" in text and "mean reward" in text, p.name
    r04 = json.loads((tmp_path / "reports" / "04_ranking_losses.json").read_text())
    rows = r04["metrics"]["results"]
    # reward@N (not pass@N) for the initial policy; 04's trained runs stop after round 1 of 07's
    # runs, before the loop's pass@N / reward@N evaluation
    assert "reward@2" in rows[0] and all("pass@2" not in r for r in rows)
    r07 = json.loads((tmp_path / "reports" / "07_larpo_loop.json").read_text())
    runs = r07["metrics"]["runs"]  # {arm: [rows of each seed]}
    assert all("test_reward@2" in rows[-1] for seeds in runs.values() for rows in seeds)
    assert r07["metrics"]["recall_after"] == {}  # no right or wrong answers to recall


# ---------------------------------------------------------------- what a run writes (no kernel)


def _fake_papermill(monkeypatch, ran, step=None):
    """papermill.execute_notebook without a kernel: records (notebook, parameters) and, like
    the notebook's kernel, builds Params from its parameters and runs ``step(P, stem)``."""
    import papermill as pm

    def execute(src, dst, parameters=None, **_):
        from pathlib import Path

        ran.append((Path(src).stem, dict(parameters)))
        if step is not None:
            step(Params.from_mapping(parameters), Path(src).stem)
        nbformat.write(nbformat.v4.new_notebook(), dst)  # an empty notebook: nothing to render

    monkeypatch.setattr(pm, "execute_notebook", execute)


def test_the_default_run_replays_each_notebook_at_its_end_and_a_replay_writes_no_timing(
        tmp_path, monkeypatch):
    from larpo_lite import notebooks, workshop

    monkeypatch.setenv("LARPO_LITE_RUNS", str(tmp_path / "runs"))
    ran: list = []
    timed: list = []
    _fake_papermill(monkeypatch, ran)
    monkeypatch.setattr(workshop, "after_default_notebook", lambda nb, s, preset="default": timed.append((nb, preset)))
    monkeypatch.setattr(notebooks, "write_executed_copy", lambda *a, **k: None)
    run_notebooks("replay", only=["01"])
    assert [r[1]["preset"] for r in ran] == ["replay"] and timed == []  # no tracked file
    assert (tmp_path / "runs" / "replay" / "01_ir_analogy.ipynb").is_file()
    ran.clear()
    run_notebooks("default", only=["01"])  # its solutions run inside the default run, then the replay
    assert [(nb, p["preset"]) for nb, p in ran] == [("01_ir_analogy", "default"),
                                                    ("01_ir_analogy_solutions", "default"),
                                                    ("01_ir_analogy", "replay")]
    assert timed == [("01_ir_analogy", "reexecuted"), ("01_ir_analogy_solutions", "solutions"),
                     ("01_ir_analogy", "replay")]
    ran.clear()
    timed.clear()
    monkeypatch.setenv(notebooks.CHILD_ENV, "1")  # a --jobs child: its parent replays
    run_notebooks("default", only=["01"])
    assert [p["preset"] for _, p in ran] == ["default"] and timed == [("01_ir_analogy", "default")]
    timed.clear()
    monkeypatch.setenv(notebooks.PARTIAL_ENV, "1")  # a child of `make notebooks ONLY=01`
    run_notebooks("default", only=["01"])
    assert timed == [("01_ir_analogy", "reexecuted")]


def test_a_recording_swaps_in_only_when_the_notebook_ran_to_its_end(tmp_path, monkeypatch):
    from larpo_lite import replay

    monkeypatch.setenv("LARPO_LITE_RUNS", str(tmp_path / "runs"))
    seen: list = []

    def kernel(P, stem):  # what the notebook does: record its steps
        rec = replay.Recorder(stem, P)
        rec("step", lambda: [1, 2])
        seen.append((tmp_path / "runs" / "smoke" / "record" / stem).exists())

    _fake_papermill(monkeypatch, [], kernel)
    run_notebooks("smoke", only=["08"])
    folder = tmp_path / "runs" / "smoke" / "record" / "08_scaling_up"
    assert seen == [False]  # not while the notebook runs
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "step.json.gz"]


def test_replay_checks_every_record_before_any_notebook_runs(tmp_path, monkeypatch):
    import shutil

    from larpo_lite import replay
    from larpo_lite.paths import repo_root

    monkeypatch.setenv("LARPO_LITE_RUNS", str(tmp_path / "runs"))
    ran: list = []
    _fake_papermill(monkeypatch, ran)
    records = tmp_path / "records"
    for stem in ("01_ir_analogy", "02_recall_at_n"):
        shutil.copytree(repo_root() / replay.REPLAY_DIR / stem, records / stem)
    (records / "02_recall_at_n" / "greedy.json.gz").write_bytes(b"\x1f\x8b")  # cut
    with pytest.raises(replay.ReplayRecordError, match=r"02_recall_at_n/greedy\.json\.gz changed"):
        run_notebooks("replay", only=["01", "02"], overrides={"replay_dir": str(records)})
    assert ran == []
    with pytest.raises(replay.ReplayRecordError, match="temperature: recorded 0.7, this run 0.3"):
        run_notebooks("replay", only=["01"], overrides={"replay_dir": str(records), "temperature": 0.3})
    assert ran == []


def test_a_whole_default_run_records_its_wall_time_summed_over_its_segments(tmp_path, monkeypatch):
    from larpo_lite import notebooks, workshop

    monkeypatch.setenv("LARPO_LITE_RUNS", str(tmp_path / "runs"))
    ran: list = []
    _fake_papermill(monkeypatch, ran)
    timed: list = []
    monkeypatch.setattr(workshop, "after_default_notebook", lambda nb, s, preset="default": timed.append(preset))
    monkeypatch.setattr(notebooks, "write_executed_copy", lambda *a, **k: None)
    monkeypatch.setattr(workshop, "write_guide", lambda *a, **k: None)
    suites: list = []
    monkeypatch.setattr(workshop, "record_suite", lambda *a, **k: suites.append((a, k)))
    # an earlier segment of this run was cut after 100 s
    seg = tmp_path / "runs" / "default" / notebooks.SEGMENTS_FILE
    seg.parent.mkdir(parents=True)
    seg.write_text('{"segments": [100.0]}')
    run_notebooks("default")
    ((args, kw),) = suites
    assert kw["resumed"] and kw["segments"][0] == 100.0 and len(kw["segments"]) == 2
    assert args[0] == pytest.approx(sum(kw["segments"]), abs=0.2) and kw["reused"] == []
    assert not seg.exists()
    assert "reexecuted" not in timed and "default" in timed  # the whole run's own seconds
    suites.clear()
    run_notebooks("default", only=["01"])  # one notebook is not the whole run
    assert suites == []
