"""Prose that cannot go stale: placeholders rendered from the run's published values, and the
check that a stated ``name=value`` agrees with the run."""

import nbformat
import pytest

from larpo_lite import prose


def test_render_fills_names_formats_and_dotted_paths():
    values = {"k_train": 8, "lr": 2e-4, "seeds": [0, 1, 2], "best": {"diff": 0.1234}}
    text = "k={{k_train}}, lr {{ lr:.0e }}, seeds {{seeds}}, gain {{best.diff:+.3f}}"
    assert prose.render(text, values) == "k=8, lr 2e-04, seeds 0, 1, 2, gain +0.123"
    assert prose.placeholders(text) == ["k_train", "lr", "seeds", "best.diff"]
    with pytest.raises(prose.UnrenderedError, match="iterations"):
        prose.render("{{iterations}} rounds", values)


def _executed(markdown, values):
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("prose.publish(P, best=0.5)")
    if values is not None:
        code.outputs = [nbformat.v4.new_output("display_data", data={prose.MIME: values,
                                                                     "text/plain": ""})]
    nb.cells = [nbformat.v4.new_markdown_cell(markdown), code]
    return nb


def test_an_executed_notebook_is_rendered_and_loses_the_publishing_output():
    nb = _executed("We ran {{iterations}} rounds; best {{best:.2f}}.", {"iterations": 3, "best": 0.5})
    assert prose.render_notebook(nb)
    assert nb.cells[0].source == "We ran 3 rounds; best 0.50."
    assert nb.cells[1].outputs == []
    with pytest.raises(prose.UnrenderedError, match="published no values"):
        prose.render_notebook(_executed("{{iterations}} rounds", None))
    assert not prose.render_notebook(_executed("no placeholder", None))


def test_write_executed_copy_renders_the_placeholders(tmp_path):
    from larpo_lite.notebooks import write_executed_copy

    nbformat.write(_executed("T = {{iterations}}", {"iterations": 5}), tmp_path / "07_x.ipynb")
    copy = write_executed_copy(tmp_path / "07_x.ipynb", tmp_path / "executed")
    got = nbformat.read(copy, as_version=4)
    assert got.cells[0].source == "T = 5" and got.cells[1].outputs == []


def test_publish_displays_the_values_under_its_own_type(monkeypatch):
    from larpo_lite.config import Params

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    prose.publish(Params.load("smoke"), best=0.25)
    (obj,) = shown
    assert obj[prose.MIME]["preset"] == "smoke" and obj[prose.MIME]["best"] == 0.25


def test_a_stated_setting_must_be_the_runs():
    params = {"k_train": 8, "iterations": 3, "lr": 0.0002, "gold_in_list": False,
              "loop_temperatures": [0.7]}
    text = ("Sample `k_train=4` responses; iterations: 3; lr = 2e-4; gold_in_list=False; "
            "loop_temperatures: [0.7]; prompts_per_iter=64")
    assert prose.stated_settings(text, params) == [
        ("k_train", "4"), ("iterations", "3"), ("lr", "2e-4"), ("gold_in_list", "False"),
        ("loop_temperatures", "[0.7]")]
    assert prose.mismatches(text, params, "solutions/07") == [
        "solutions/07: states k_train=4, the run used k_train=8"]


def _markdown(path):
    if path.suffix == ".ipynb":
        return "\n".join(c.source for c in nbformat.read(path, as_version=4).cells
                         if c.cell_type == "markdown")
    return path.read_text()


def test_the_committed_prose_states_no_setting_the_default_run_did_not_use():
    """The notebooks' and solutions' markdown, the guide, the README and docs/: a
    ``name=value`` for a parameter must be the default preset's value (better: a placeholder)."""
    from larpo_lite.config import Params
    from larpo_lite.paths import repo_root

    root = repo_root()
    params = Params.load("default").to_dict()
    files = [*sorted((root / "notebooks").glob("*.ipynb")),
             *sorted((root / "notebooks" / "solutions").glob("*.ipynb")),
             root / "README.md", *sorted((root / "docs").glob("*.md"))]
    wrong = [m for f in files for m in prose.mismatches(_markdown(f), params, str(f.relative_to(root)))]
    assert wrong == []


def test_the_committed_executed_copies_hold_no_unrendered_placeholder():
    from larpo_lite.paths import repo_root

    for path in sorted((repo_root() / "executed").rglob("*.ipynb")):
        assert prose.placeholders(_markdown(path)) == [], path.name
