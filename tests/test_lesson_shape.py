"""Every numbered notebook reads as a lesson (issue 22), measured on its source: code : prose at
most 1.5 by characters, the median code cell at most 10 lines and none over 25, and the
formulas of 02-04 typeset in LaTeX (``$`` in their markdown)."""

import statistics

import nbformat
import pytest

from larpo_lite.notebooks import notebook_paths

MAX_CODE_PER_PROSE = 1.5  # code cells' source characters / markdown cells' source characters
MAX_MEDIAN_LINES = 10
MAX_LINES = 25
WITH_FORMULAS = ("02", "03", "04")  # the score gamma, each loss, the pass@k estimator, the paired SE


def shape(path):
    """``{"ratio", "median", "longest", "longest_cell", "dollars"}`` of a source notebook."""
    nb = nbformat.read(path, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    prose = [c.source for c in nb.cells if c.cell_type == "markdown"]
    lines = [len(c.splitlines()) for c in code]
    return {"ratio": sum(map(len, code)) / max(sum(map(len, prose)), 1),
            "median": statistics.median(lines), "longest": max(lines),
            "longest_cell": 1 + [i for i, c in enumerate(nb.cells) if c.cell_type == "code"][lines.index(max(lines))],
            "dollars": sum(p.count("$") for p in prose)}


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.name)
def test_notebook_reads_as_a_lesson(path):
    s = shape(path)
    problems = []
    if s["ratio"] > MAX_CODE_PER_PROSE:
        problems.append(f"code : prose {s['ratio']:.2f} > {MAX_CODE_PER_PROSE} by characters "
                        "(move bookkeeping into the package, one call each)")
    if s["median"] > MAX_MEDIAN_LINES:
        problems.append(f"median code cell {s['median']} lines > {MAX_MEDIAN_LINES}")
    if s["longest"] > MAX_LINES:
        problems.append(f"cell {s['longest_cell']}: {s['longest']} lines > {MAX_LINES}")
    if path.name[:2] in WITH_FORMULAS and s["dollars"] == 0:
        problems.append("no formula typeset in LaTeX ($...$) in its markdown")
    assert problems == [], f"{path.name}: " + "; ".join(problems)


def test_the_measure_counts_characters_and_lines(tmp_path):
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    nb = new_notebook()
    nb.cells = [new_markdown_cell("ab $x$"), new_code_cell("a = 1\nb = 2"), new_code_cell("c\n" * 30),
                new_markdown_cell("cd")]
    nbformat.write(nb, tmp_path / "09_demo.ipynb")
    s = shape(tmp_path / "09_demo.ipynb")
    assert s["ratio"] == pytest.approx((11 + 60) / 8)
    assert s["median"] == 16 and s["longest"] == 30 and s["longest_cell"] == 3 and s["dollars"] == 2
