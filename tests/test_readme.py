"""The README's first screen: its results table is rendered from the committed default run's
reports (larpo_lite.readme) and cannot go stale; a figure, the table and the two commands sit in
its first 45 lines; it stays under 15 KB; every relative link in it and in docs/ resolves; the
timing table moved to docs/timing.md agrees with reports/timing.json."""

import json
import re
from pathlib import Path

import pytest

from larpo_lite import readme
from larpo_lite.paths import repo_root

ROOT = repo_root()
README = ROOT / "README.md"
FIRST_SCREEN = 45
MAX_BYTES = 15_000


def test_committed_readme_table_equals_the_rendered_one():
    text = README.read_text()
    assert readme.render(text) == text, "stale: run python -m larpo_lite.readme"


def test_check_flag_reports_a_stale_table(monkeypatch):
    assert readme.main(["--check"]) == 0
    monkeypatch.setattr(readme, "results_block", lambda *a, **k: f"{readme.BEGIN}\nother\n{readme.END}")
    assert readme.main(["--check"]) == 1


def test_first_screen_has_a_figure_the_results_table_and_the_two_commands():
    lines = README.read_text().splitlines()
    screen = "\n".join(lines[:FIRST_SCREEN])
    images = re.findall(r"!\[[^\]]+\]\((figures/[^)]+\.png)\)", screen)
    assert len(images) == 1 and (ROOT / images[0]).is_file(), images
    assert readme.BEGIN in screen and readme.END in screen
    block = screen[screen.index(readme.BEGIN):screen.index(readme.END)]
    assert re.search(r"\| [+-]\d\.\d{3} ± \d\.\d{3} \|", block), "no change ± paired SE in the table"
    assert "make notebooks" in screen and "make test" in screen
    assert "## Timing" not in README.read_text() and "benchmarks:begin" not in README.read_text()


def test_readme_is_under_15_kb():
    size = len(README.read_bytes())
    assert size < MAX_BYTES, f"README.md is {size} bytes: move detail into docs/"


def _links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # code blocks hold no links
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", text)
            if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


@pytest.mark.parametrize("doc", ["README.md", *sorted(str(p.relative_to(ROOT))
                                                      for p in (ROOT / "docs").glob("*.md"))])
def test_every_relative_link_resolves(doc):
    path = ROOT / doc
    broken = [t for t in _links(path) if not (path.parent / t.split("#")[0]).exists()]
    assert not broken, f"{doc} links to missing files: {broken}"


def test_link_finder_sees_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[a](missing.md) [b](https://example.org) [c](#top) ![d](img.png)\n"
                    "```\n[e](in_code.md)\n```\n")
    assert _links(page) == ["missing.md", "img.png"]


def test_timing_page_is_generated_from_the_timing_record():
    from larpo_lite import timing_doc

    assert (ROOT / "docs" / "timing.md").read_text() == timing_doc.render(), (
        "docs/timing.md is stale: run python -m larpo_lite.timing_doc")


# --------------------------------------------------------------------------- rendering
def _write_report(folder: Path, preset="default", n=(40, 40, 40), seeds=(3, 3, 1)):
    rows = [{"arm": "LARPO listmle", "k": 4, "seeds": seeds[0], "rounds": 3, "headline": True,
             "prompts_per_round": 16, "test_greedy": [0.25, 0.3, 0.35, 0.375]},
            {"arm": "iterative DPO", "k": 4, "seeds": seeds[1], "rounds": 3, "headline": True,
             "prompts_per_round": 16, "test_greedy": [0.25, 0.2, 0.22, 0.225]},
            {"arm": "offline DPO", "k": 4, "seeds": seeds[2], "rounds": 1, "looping": False,
             "prompts_per_round": 48, "test_greedy": [0.25, 0.3]}]
    diffs = {"LARPO listmle": (0.125, 0.05), "iterative DPO": (-0.025, 0.0312), "offline DPO": (0.05, 0.04)}
    kinds = {"LARPO listmle": "bootstrap over seeds and problems",
             "iterative DPO": "bootstrap over seeds and problems", "offline DPO": "paired over problems"}
    report = {"params": {"preset": preset, "model_name": "tiny-random"},
              "metrics": {"arms": rows, "configs": {r["arm"]: {"reranker": "verifier"} for r in rows},
                          "test_greedy": {"init": 0.25},
                          "comparisons": [{"a": a, "b": "init", "diff": d, "se": se, "n": nn,
                                           "se_kind": kinds[a]}
                                          for (a, (d, se)), nn in zip(diffs.items(), n, strict=True)]
                          + [{"a": "LARPO listmle", "b": "offline DPO", "diff": 9.0, "se": 9.0, "n": 40}]}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{readme.LOOP_REPORT}.json").write_text(json.dumps(report))
    return folder


def test_block_reads_every_number_from_the_report(tmp_path):
    block = readme.results_block(_write_report(tmp_path))
    lines = block.splitlines()
    assert lines[0] == readme.BEGIN and lines[-1] == readme.END
    assert lines[1] == "| after 3 rounds of 16 prompts | seeds | test greedy accuracy | change vs initial, ± SE |"
    assert lines[3:7] == [
        "| initial policy (`tiny-random`) | - | 0.250 | baseline |",
        "| LARPO listmle (k=4, headline) | 3 | 0.375 | +0.125 ± 0.050 |",
        "| offline DPO (k=4, one training on the initial policy's samples) | 1 | 0.300 | +0.050 ± 0.040 |",
        "| iterative DPO (k=4, headline) | 3 | 0.225 | -0.025 ± 0.031 |",
    ]
    assert "40 test problems" in block and "9.000" not in block
    assert "bootstrap over seeds and problems; paired over problems" in block


def test_errors_name_the_bad_report_and_the_way_out(tmp_path):
    with pytest.raises(readme.ReadmeError, match="missing.*make notebooks ONLY=07"):
        readme.results_rows(tmp_path / "nowhere")
    with pytest.raises(readme.ReadmeError, match="preset 'smoke'"):
        readme.results_rows(_write_report(tmp_path / "smoke", preset="smoke"))
    with pytest.raises(readme.ReadmeError, match="differ in test problems"):
        readme.results_rows(_write_report(tmp_path / "mixed", n=(40, 40, 30)))
    with pytest.raises(readme.ReadmeError, match="no .* block"):
        readme.render("# a README without markers\n", _write_report(tmp_path / "ok"))


def test_render_replaces_only_the_block(tmp_path):
    folder = _write_report(tmp_path)
    text = f"before\n{readme.BEGIN}\nold\n{readme.END}\nafter\n"
    out = readme.render(text, folder)
    assert out.startswith("before\n") and out.endswith("\nafter\n") and "old" not in out
    assert readme.render(out, folder) == out
