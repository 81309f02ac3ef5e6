"""Exercise solutions (notebooks/solutions/): one per numbered notebook, the same source
conventions as the notebooks, and every one runs under the smoke preset."""

import ast

import nbformat
import pytest

from larpo_lite.notebooks import notebook_paths, run_notebooks

FOLDER = "notebooks/solutions"
SOLUTIONS = notebook_paths(folder=FOLDER)


def test_one_solutions_notebook_per_notebook():
    assert [f"{p.stem}_solutions" for p in notebook_paths()] == [p.stem for p in SOLUTIONS]


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_parameters_are_validated_right_after_the_parameters_cell(path):
    """Source conventions (no outputs, the parameters cell equal to the default preset) are
    checked with the notebooks' in tests/test_notebooks.py; here: Params validates them next."""
    nb = nbformat.read(path, as_version=4)
    i = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    assert "Params.for_notebook(globals())" in nb.cells[i + 1].source


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_every_exercise_has_a_solution_reading_reports(path):
    """Each exercise of the notebook has a heading "Exercise N" here, and the expected outcomes
    are read from reports/ through larpo_lite.workshop (imports from the package only)."""
    source = nbformat.read(path.parents[1] / path.name.replace("_solutions", ""), as_version=4)
    block = next(c.source for c in source.cells if c.cell_type == "markdown" and "## Exercises" in c.source)
    n_exercises = len([line for line in block.splitlines() if line[:1].isdigit() and line[1:3] == ". "])
    nb = nbformat.read(path, as_version=4)
    headings = [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "markdown"
                and c.source.startswith("## Exercise ")]
    assert [h.split(" ")[2] for h in headings] == [str(i) for i in range(1, n_exercises + 1)]
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "workshop.said" in code or "workshop.recorded" in code
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("larpo_lite"):
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            assert all(n.split(".")[0] in {"larpo_lite", "numpy", "pandas", "torch", "collections", "copy",
                                           "dataclasses", "json", "math"} for n in names), names


@pytest.mark.slow
@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solutions_run_under_smoke(path, tmp_path):
    (out,) = run_notebooks("smoke", only=[path.name[:2]], out_dir=tmp_path, folder=FOLDER)
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "preset=smoke" in text
    assert "reports/" in text  # an expected outcome was read from the committed reports
