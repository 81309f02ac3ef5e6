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

        def __init__(self, cmd, env):
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
    runs = r07["metrics"]["runs"]
    assert all("test_reward@2" in rows[-1] for rows in runs.values())
