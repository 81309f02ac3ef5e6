"""docs/timing.md is generated from reports/timing.json, the plan and the default preset."""

import json
import shutil

from larpo_lite import timing_doc
from larpo_lite.paths import repo_root


def _copy(tmp_path):
    for rel in ("reports/timing.json", timing_doc.PLAN, "params/default.yaml"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(repo_root() / rel, tmp_path / rel)
    return tmp_path


def test_the_doc_states_the_recorded_run_and_changes_with_it(tmp_path):
    root = _copy(tmp_path)
    path = root / "reports" / "timing.json"
    data = json.loads(path.read_text())
    data["suite"] = {"seconds": 8130, "jobs": 2, "date": "2026-12-08", "reused": [],
                     "resumed": True, "segments": [4000.0, 4130.0]}
    path.write_text(json.dumps(data))
    text = timing_doc.render(root)
    assert "**8130 s (135.5 min)**" in text and "from an empty `runs/`" in text
    assert "2 segments (4000 s, 4130 s), summed" in text
    assert "over the 120-minute aim and within the 150-minute limit" in text
    assert "its last execution, which reads back" in text  # a resumed run's per-notebook seconds
    data["suite"].update(seconds=7000, reused=["round 1 from x"], resumed=False)
    path.write_text(json.dumps(data))
    text = timing_doc.render(root)
    assert "last execution" not in text
    assert "116.7 min" in text and "within the aim" in text and "reusing 1 trained round(s)" in text


def test_what_was_given_up_follows_the_preset(tmp_path):
    root = _copy(tmp_path)
    preset = root / "params" / "default.yaml"
    preset.write_text(preset.read_text().replace("sweep_prompts_per_iter: 32", "sweep_prompts_per_iter: 17"))
    assert "05 and 06 train on 17 prompts per round" in timing_doc.render(root)


def test_write_then_check_is_up_to_date(tmp_path, monkeypatch, capsys):
    root = _copy(tmp_path)
    (root / "docs").mkdir()
    monkeypatch.setattr(timing_doc, "repo_root", lambda: root)
    timing_doc.write()
    assert timing_doc.main(["--check"]) == 0
    (root / "docs" / "timing.md").write_text("stale\n")
    capsys.readouterr()
    assert timing_doc.main(["--check"]) == 1
    assert "timing.md: stale: run python -m larpo_lite.timing_doc" in capsys.readouterr().out
    (root / "docs" / "timing.md").unlink()  # a missing file is stale too, not a traceback
    assert timing_doc.main(["--check"]) == 1
