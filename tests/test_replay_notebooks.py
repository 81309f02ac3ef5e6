"""Replay end to end: a notebook recorded on smoke re-executes under ``replay: true`` without a
model and writes the same reports metrics and figure data; the committed records of the default
run replay to the committed reports and figures."""

import nbformat
import pytest

from larpo_lite import replay
from larpo_lite.notebooks import notebook_paths, run_notebooks
from larpo_lite.paths import repo_root


@pytest.mark.slow
@pytest.mark.parametrize("number", ["03", "05", "08"])
def test_a_smoke_recording_replays_to_the_same_metrics_and_figures(number, tmp_path, monkeypatch):
    recorded = {"reports": tmp_path / "rec" / "reports", "figures": tmp_path / "rec" / "figures"}
    replayed = {"reports": tmp_path / "rep" / "reports", "figures": tmp_path / "rep" / "figures"}
    run_notebooks("smoke", only=[number], out_dir=tmp_path / "rec", overrides={
        "record_dir": str(tmp_path / "records"), "reports_dir": str(recorded["reports"]),
        "figures_dir": str(recorded["figures"])})
    # replay never loads a model: the kernel's model cache cannot even be created (a replay
    # must keep the recording's model_name, so a missing model cannot show it)
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("LARPO_LITE_CACHE", str(tmp_path / "not-a-folder" / "cache"))
    (out,) = run_notebooks("smoke", only=[number], out_dir=tmp_path / "rep", overrides={
        "replay": True, "replay_dir": str(tmp_path / "records"),
        "reports_dir": str(replayed["reports"]), "figures_dir": str(replayed["figures"])})
    stem = out.stem
    assert replay.differences(stem, recorded, replayed) == []
    text = "".join(o.get("text", "") for c in nbformat.read(out, as_version=4).cells
                   if c.cell_type == "code" for o in c.get("outputs", []))
    assert "[replay]" in text


COMMITTED = [p for p in notebook_paths() if (repo_root() / replay.REPLAY_DIR / p.stem).is_dir()]


@pytest.mark.slow
@pytest.mark.parametrize("number", ["03", "07", "08"])
def test_the_committed_records_replay_to_the_committed_reports(number, tmp_path):
    stems = {p.name[:2]: p.stem for p in COMMITTED}
    if number not in stems:
        pytest.skip(f"no records of notebook {number} in {replay.REPLAY_DIR}/ yet (make notebooks "
                    "on the default preset writes them)")
    out_reports, out_figures = tmp_path / "reports", tmp_path / "figures"
    run_notebooks("replay", only=[number], out_dir=tmp_path / "runs", overrides={
        "reports_dir": str(out_reports), "figures_dir": str(out_figures)})
    root = repo_root()
    assert replay.differences(stems[number], {"reports": root / "reports", "figures": root / "figures"},
                              {"reports": out_reports, "figures": out_figures}) == []
