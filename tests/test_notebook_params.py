"""A notebook's parameters cell keeps only its own keys (Params.for_notebook): the runner
injects each declared key's preset value (the field's default where the preset file lacks it),
the preset's name and every override; the kernel reads the rest from the preset file."""

import json

import nbformat

from larpo_lite.notebooks import run_notebooks


def _notebook(folder, params_src):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params_src)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(
        "from larpo_lite.config import Params\n"
        "import json, os\n"
        "P = Params.for_notebook(globals())\n"
        "open(os.environ['PROBE_OUT'], 'w').write(json.dumps("
        "{'loop_workers': P.loop_workers, 'lr': P.lr, 'n_eval': P.n_eval, 'changes': list(P.changes())}))\n")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(folder / "01_probe.ipynb"))


def test_declared_keys_get_the_preset_values_and_the_rest_come_from_the_file(tmp_path, monkeypatch):
    src = tmp_path / "nbs"
    src.mkdir()
    # loop_workers is not in params/smoke.yaml: the field's default (1) is injected, not the cell's 5
    _notebook(src, 'preset = "default"\nloop_workers = 5\nlr = 0.5\n')
    out = tmp_path / "probe.json"
    monkeypatch.setenv("PROBE_OUT", str(out))
    monkeypatch.setenv("LARPO_LITE_RUNS", str(tmp_path / "runs"))
    run_notebooks("smoke", folder=str(src), out_dir=str(tmp_path / "runs" / "smoke"))
    got = json.loads(out.read_text())
    from larpo_lite.config import Params

    smoke = Params.load("smoke")
    assert got == {"loop_workers": smoke.loop_workers, "lr": smoke.lr, "n_eval": smoke.n_eval,
                   "changes": []}
    run_notebooks("smoke", folder=str(src), out_dir=str(tmp_path / "runs" / "smoke"),
                  overrides={"n_eval": 3})  # an override of an undeclared key reaches the kernel
    got = json.loads(out.read_text())
    assert got["n_eval"] == 3 and got["changes"] == ["n_eval"]


def test_the_scheduler_takes_the_plan_until_a_later_default_run_measured_the_notebook(tmp_path):
    from larpo_lite.notebooks import PLAN, recorded_seconds, schedule

    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "timing.json").write_text(json.dumps({"notebooks": {
        "04_x": {"date": "2026-11-30", "seconds": 3000}, "06_x": {"date": "2026-11-30", "seconds": 2900},
        "07_x": {"date": "2026-12-09", "seconds": 9000}, "08_x": {"date": "2026-11-30", "seconds": 40}}}))
    (tmp_path / PLAN).parent.mkdir(parents=True)
    (tmp_path / PLAN).write_text(json.dumps({"measured": "2026-12-07T16:50:00+00:00",
                                             "notebooks": {"04": 3200, "06": 1500, "07": 7500}}))
    got = recorded_seconds(tmp_path)
    # planned after the 11-30 run: the plan; 07 measured after the plan: the measurement
    assert got == {"04": 3200.0, "06": 1500.0, "07": 9000.0, "08": 40.0}
    assert schedule(["04", "06", "07", "08"], set(), set(), got) == "04"  # 04 then 07: longest chain


def test_a_resumed_default_run_starts_when_its_first_segment_started(tmp_path):
    from larpo_lite import notebooks

    first = notebooks.SuiteClock(root=tmp_path)
    began = first.started
    first.stop(finished=False)  # cut: the segment stays for the next start
    second = notebooks.SuiteClock(root=tmp_path)
    assert second.resumed and second.started == began  # work of segment 1 is this run's own
    assert len(second.stop(finished=True)["segments"]) == 2
    third = notebooks.SuiteClock(root=tmp_path)  # after a finished run: a new start
    assert not third.resumed and third.started >= began
    third.stop(finished=True)
