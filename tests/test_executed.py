"""Executed copies of the default run (``executed/``): each matches its source notebook's code
cells, ran with the default preset and is at most 2 MB; the default run writes them, shrunk
when needed, and no other run does."""

import base64
import io
import random
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from larpo_lite import notebooks as nbs
from larpo_lite.errors import LarpoLiteError
from larpo_lite.notebooks import (
    EXECUTED_DIR,
    EXECUTED_MAX_BYTES,
    SOLUTIONS_EXECUTED_DIR,
    SOLUTIONS_FOLDER,
    WIDGET_VIEW,
    executed_copy_problems,
    executed_dir_for,
    executed_preset,
    run_notebooks,
    shrink_notebook,
    stale_executed_copies,
    write_executed_copy,
)
from larpo_lite.paths import repo_root

COMMITTED = sorted((repo_root() / EXECUTED_DIR).glob("*.ipynb"))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_committed_copy_matches_its_source(path):
    """A copy whose source changed since the default run cannot land."""
    assert executed_copy_problems(path) == []


def test_no_committed_copy_is_stale():
    assert stale_executed_copies() == []


# ---------------------------------------------------------------- synthetic notebooks


def _source(cells=("import math", "x = 1  # parameter", "print(math.sqrt(x))")):
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                               "language": "python"},
                                "language_info": {"name": "python"}})
    nb.cells.append(new_markdown_cell("# Title"))
    for i, src in enumerate(cells):
        cell = new_code_cell(src)
        if i == 1:
            cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    return nb


def _executed(source, preset="default", in_metadata=True):
    """What papermill makes of ``source``: an injected-parameters cell after the parameters
    cell, outputs, and the parameters in the notebook's metadata."""
    nb = nbformat.reads(nbformat.writes(source), as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    injected = new_code_cell(f'# Parameters\npreset = "{preset}"\n')
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(at + 1, injected)
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs = [new_output("stream", name="stdout", text="1.0\n")]
    if in_metadata:
        nb.metadata["papermill"] = {"parameters": {"preset": preset}}
    return nb


@pytest.fixture
def pair(tmp_path):
    """(source folder, executed folder) holding one fresh executed copy of one notebook."""
    src, exe = tmp_path / "notebooks", tmp_path / "executed"
    src.mkdir()
    exe.mkdir()
    nbformat.write(_source(), src / "01_demo.ipynb")
    nbformat.write(_executed(_source()), exe / "01_demo.ipynb")
    return src, exe


def test_fresh_copy_has_no_problem(pair):
    src, exe = pair
    assert stale_executed_copies(exe, src) == []


def test_edited_code_cell_is_caught(pair):
    src, exe = pair
    nbformat.write(_source(("import math", "x = 1  # parameter", "print(math.sqrt(x + 1))")),
                   src / "01_demo.ipynb")
    (problem,) = stale_executed_copies(exe, src)
    assert "01_demo.ipynb" in problem and "code cell 3" in problem and "stale" in problem


@pytest.mark.parametrize("cells", [("import math", "x = 1  # parameter", "print(x)", "y = 2"),
                                   ("import math", "x = 1  # parameter")],
                         ids=["added", "removed"])
def test_added_or_removed_code_cell_is_caught(pair, cells):
    src, exe = pair
    nbformat.write(_source(cells), src / "01_demo.ipynb")
    (problem,) = stale_executed_copies(exe, src)
    assert f"against the source's {len(cells)}" in problem


def test_markdown_edits_do_not_count(pair):
    src, exe = pair
    nb = _source()
    nb.cells[0].source = "# Another title"
    nbformat.write(nb, src / "01_demo.ipynb")
    assert stale_executed_copies(exe, src) == []


def test_copy_without_source_is_caught(pair):
    src, exe = pair
    (src / "01_demo.ipynb").unlink()
    (problem,) = stale_executed_copies(exe, src)
    assert "no source notebook" in problem


def test_copy_of_another_preset_is_caught(pair):
    src, exe = pair
    nbformat.write(_executed(_source(), preset="smoke"), exe / "01_demo.ipynb")
    (problem,) = stale_executed_copies(exe, src)
    assert "'smoke'" in problem and "'default'" in problem


def test_preset_read_from_the_injected_cell_without_metadata():
    assert executed_preset(_executed(_source(), preset="smoke", in_metadata=False)) == "smoke"
    assert executed_preset(_source()) is None  # never run by papermill


def test_oversized_copy_is_caught(pair):
    src, exe = pair
    size = (exe / "01_demo.ipynb").stat().st_size
    (problem,) = stale_executed_copies(exe, src, max_bytes=size - 1)
    assert "over the" in problem
    assert stale_executed_copies(exe, src, max_bytes=size) == []


# ---------------------------------------------------------------- shrinking


def _noise_png(side=300, seed=0):
    """A PNG of random pixels (incompressible), base64 as Jupyter stores it."""
    from PIL import Image

    rng = random.Random(seed)
    im = Image.frombytes("RGB", (side, side), bytes(rng.getrandbits(8) for _ in range(side * side * 3)))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _size(nb):
    return len(nbs._notebook_text(nb).encode())


def _png_size(b64):
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
        return im.size


def test_small_notebook_is_left_alone():
    nb = _executed(_source())
    out, steps = shrink_notebook(nb)
    assert steps == [] and out == nb


def test_widgets_go_and_the_static_figure_stays():
    nb = _executed(_source())
    png = _noise_png(40)
    nb.cells[-1].outputs = [new_output("display_data", data={WIDGET_VIEW: {"model_id": "x" * 5000},
                                                             "image/png": png,
                                                             "text/plain": "<Figure>"}),
                            new_output("display_data", data={WIDGET_VIEW: {"model_id": "y"}})]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"s": "z" * 5000}}}
    out, steps = shrink_notebook(nb, max_bytes=_size(nb) - 1000)
    assert "widgets" not in out.metadata
    (kept,) = out.cells[-1].outputs  # the widget-only output is gone
    assert WIDGET_VIEW not in kept.data and kept.data["image/png"] == png
    assert len(steps) == 1 and "widget" in steps[0]
    assert "widgets" in nb.metadata  # the input is not modified


def test_long_stream_is_cut_with_a_note_and_redraws_collapse():
    nb = _executed(_source())
    bar = "".join(f"\r{i}%" for i in range(100)) + "\n"
    lines = "".join(f"step {i}\n" for i in range(20_000))
    nb.cells[-1].outputs = [new_output("stream", name="stderr", text=bar),
                            new_output("stream", name="stdout", text=lines)]
    out, steps = shrink_notebook(nb, max_bytes=60_000)
    assert _size(out) <= 60_000
    bar_out, text_out = out.cells[-1].outputs
    assert bar_out.text == "99%\n"
    assert text_out.text.startswith("step 0\n") and text_out.text.endswith("step 19999\n")
    assert "cut from this executed copy" in text_out.text
    assert "step 10000\n" not in text_out.text


def test_figures_are_reencoded_smaller_deterministically():
    nb = _executed(_source())
    nb.cells[-1].outputs = [new_output("display_data", data={"image/png": _noise_png(300, seed=s),
                                                             "text/plain": "<Figure>"})
                            for s in range(2)]
    limit = _size(nb) // 2
    out, steps = shrink_notebook(nb, max_bytes=limit)
    assert _size(out) <= limit
    assert "figure" in steps[-1]
    for o in out.cells[-1].outputs:
        w, h = _png_size(o.data["image/png"])
        assert w < 300 and h < 300
        assert o.metadata["image/png"] == {"width": 300, "height": 300}  # shown at the same size
    again, _ = shrink_notebook(nb, max_bytes=limit)
    assert nbs._notebook_text(again) == nbs._notebook_text(out)


def test_a_copy_that_cannot_fit_fails_clearly(tmp_path):
    nb = _executed(_source())
    nb.cells[-1].source = "x = '" + "a" * 50_000 + "'"  # code is never cut
    nbformat.write(nb, tmp_path / "run.ipynb")
    with pytest.raises(LarpoLiteError, match=r"run.ipynb.*over the 0.01 MB limit.*Largest: cell"):
        write_executed_copy(tmp_path / "run.ipynb", tmp_path / "executed", max_bytes=10_000)
    assert not (tmp_path / "executed" / "run.ipynb").exists()


def test_written_copy_is_the_shrunk_notebook(tmp_path):
    nb = _executed(_source())
    nb.cells[-1].outputs = [new_output("stream", name="stdout", text="line\n" * 30_000)]
    nbformat.write(nb, tmp_path / "01_demo.ipynb")
    dest = write_executed_copy(tmp_path / "01_demo.ipynb", tmp_path / "executed", max_bytes=100_000)
    assert dest == tmp_path / "executed" / "01_demo.ipynb"
    assert (tmp_path / "01_demo.ipynb").stat().st_size > 100_000 >= dest.stat().st_size
    assert nbs.code_sources(nbformat.read(dest, as_version=4)) == nbs.code_sources(nb)


# ---------------------------------------------------------------- which runs write copies


def test_only_the_default_run_of_the_notebooks_writes_executed(tmp_path):
    committed = repo_root() / EXECUTED_DIR
    assert executed_dir_for("default") == committed
    assert executed_dir_for("smoke") is None
    assert executed_dir_for("gpu-small") is None
    assert executed_dir_for("default", folder=SOLUTIONS_FOLDER) == committed / "solutions"
    assert executed_dir_for("smoke", folder=SOLUTIONS_FOLDER) is None
    assert executed_dir_for("default", folder=str(tmp_path)) is None
    assert executed_dir_for("default", overrides={"n_test": 2}) is None
    assert executed_dir_for("default", folder=SOLUTIONS_FOLDER, overrides={"n_test": 2}) is None
    assert executed_dir_for("smoke", executed_dir=tmp_path) == tmp_path
    for folder, target in [("notebooks", committed), ("notebooks", committed / "solutions"),
                           (SOLUTIONS_FOLDER, committed / "solutions"), (SOLUTIONS_FOLDER, committed)]:
        with pytest.raises(ValueError, match="default run's copies"):
            executed_dir_for("smoke", folder=folder, executed_dir=target)
    with pytest.raises(ValueError, match="default run's copies"):
        executed_dir_for("default", folder=SOLUTIONS_FOLDER, executed_dir=committed)
    with pytest.raises(ValueError, match="jobs=1"):
        run_notebooks("smoke", jobs=2, executed_dir=tmp_path)


def _publish_every_placeholder(nb):
    """What the notebook's last cell would publish (``prose.publish``): a value for each of
    its markdown placeholders, so that the run renders them."""
    from larpo_lite import prose

    values: dict = {}
    for cell in nb.cells:
        for name in prose.placeholders(cell.source) if cell.cell_type == "markdown" else []:
            *path, last = name.split(".")
            node = values
            for part in path:
                node = node.setdefault(part, {})
            node[last] = 1
    code = [c for c in nb.cells if c.cell_type == "code"]
    if values and code:
        code[-1].outputs.append(new_output("display_data", data={prose.MIME: values, "text/plain": ""}))


def _fake_papermill(monkeypatch):
    """papermill.execute_notebook without a kernel: the source plus what papermill adds."""
    import papermill as pm

    def execute(src, dst, parameters=None, **_):
        nb = _executed(nbformat.read(src, as_version=4), preset=parameters["preset"])
        _publish_every_placeholder(nb)
        nbformat.write(nb, dst)

    monkeypatch.setattr(pm, "execute_notebook", execute)


def test_run_writes_a_checked_copy_where_asked(tmp_path, monkeypatch):
    _fake_papermill(monkeypatch)
    before = sorted((repo_root() / EXECUTED_DIR).glob("*"))
    (out,) = run_notebooks("smoke", only=["04"], out_dir=tmp_path / "runs",
                           executed_dir=tmp_path / "executed")
    copy = tmp_path / "executed" / out.name
    assert copy.is_file()
    assert executed_copy_problems(copy, preset="smoke") == []
    assert executed_copy_problems(copy) == [f"executed/{out.name}: ran with preset 'smoke', not "
                                            f"'default'; rerun `make notebooks ONLY=04` and commit "
                                            f"executed/{out.name}"]
    run_notebooks("smoke", only=["04"], out_dir=tmp_path / "runs")  # no executed_dir: no copy
    assert sorted((repo_root() / EXECUTED_DIR).glob("*")) == before


def test_default_run_copies_notebooks_then_executes_their_solutions(tmp_path, monkeypatch):
    """The default run (here of 04 and 08) executes their solutions after them, each into
    executed/solutions/ with its wall time under ``solutions``; other runs execute none."""
    _fake_papermill(monkeypatch)
    copied = []
    monkeypatch.setattr(nbs, "write_executed_copy", lambda path, dest: copied.append((path.name, dest)))
    import larpo_lite.workshop as workshop

    timed = []  # no reports/ write
    monkeypatch.setattr(workshop, "after_default_notebook", lambda nb, s, preset="default": timed.append((nb, preset)))
    monkeypatch.setattr(nbs, "_replay_after_default_run",  # the replays at the run's end
                        lambda paths, _log: timed.append(([p.stem for p in paths], "replay")))
    run_notebooks("smoke", only=["04"], out_dir=tmp_path)
    assert copied == [] and timed == []
    run_notebooks("default", only=["04", "08"], out_dir=tmp_path)
    exe = repo_root() / EXECUTED_DIR
    assert copied == [("04_ranking_losses.ipynb", exe), ("08_scaling_up.ipynb", exe),
                      ("04_ranking_losses_solutions.ipynb", exe / "solutions"),
                      ("08_scaling_up_solutions.ipynb", exe / "solutions")]
    # the solutions inside the default run, before the replays that follow it
    # some notebooks only (ONLY=): timed as executed again, the whole run's seconds kept
    assert timed == [("04_ranking_losses", "reexecuted"), ("08_scaling_up", "reexecuted"),
                     ("04_ranking_losses_solutions", "solutions"),
                     ("08_scaling_up_solutions", "solutions"),
                     (["04_ranking_losses", "08_scaling_up"], "replay")]
    assert (tmp_path / "solutions" / "08_scaling_up_solutions.ipynb").is_file()


def test_a_failing_solution_is_named_after_the_others_ran(tmp_path, monkeypatch):
    import papermill as pm

    _fake_papermill(monkeypatch)
    ok = pm.execute_notebook
    ran = []

    def execute(src, dst, parameters=None, **kw):
        ran.append(Path(src).name)
        if Path(src).name.startswith("04_") and "solutions" in src:
            raise RuntimeError("exercise 2 broke")
        ok(src, dst, parameters=parameters, **kw)

    monkeypatch.setattr(pm, "execute_notebook", execute)
    monkeypatch.setattr(nbs, "write_executed_copy", lambda *a, **k: None)
    import larpo_lite.workshop as workshop

    monkeypatch.setattr(workshop, "after_default_notebook", lambda *a, **k: None)
    monkeypatch.setenv("LARPO_LITE_RUNS", str(tmp_path / "runs"))
    replayed = []
    monkeypatch.setattr(nbs, "_replay_after_default_run", lambda *a: replayed.append(a))
    with pytest.raises(LarpoLiteError, match=r"solutions notebook\(s\) failed.*04 \(RuntimeError: "
                                             r"exercise 2 broke\)"):
        run_notebooks("default", only=["04", "08"], out_dir=tmp_path)
    assert "08_scaling_up_solutions.ipynb" in ran  # after 04's failed
    assert len(replayed) == 1  # and the run went on to its replays


def test_the_parallel_default_run_executes_the_solutions_in_its_parent(tmp_path, monkeypatch):
    _fake_papermill(monkeypatch)
    monkeypatch.setattr(nbs, "_run_parallel", lambda preset, paths, *a: paths)  # the notebooks
    copied = []
    monkeypatch.setattr(nbs, "write_executed_copy", lambda path, dest: copied.append(path.name))
    import larpo_lite.workshop as workshop

    for name in ("after_default_notebook", "record_suite", "write_guide"):
        monkeypatch.setattr(workshop, name, lambda *a, **k: None)
    monkeypatch.setenv("LARPO_LITE_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(nbs, "_replay_after_default_run", lambda *a: None)
    run_notebooks("default", jobs=2, out_dir=tmp_path)
    assert copied == [p.name for p in nbs.notebook_paths(folder=SOLUTIONS_FOLDER)]
    copied.clear()
    monkeypatch.setenv(nbs.CHILD_ENV, "1")  # a --jobs child runs its notebook only
    run_notebooks("default", only=["08"], out_dir=tmp_path)
    assert copied == ["08_scaling_up.ipynb"]


SOLUTION_SOURCES = nbs.notebook_paths(folder=SOLUTIONS_FOLDER)


@pytest.mark.parametrize("source", SOLUTION_SOURCES, ids=lambda p: p.name)
def test_every_solutions_notebook_has_a_committed_executed_copy_with_outputs(source):
    """Fails until the next default run writes executed/solutions/."""
    copy = repo_root() / SOLUTIONS_EXECUTED_DIR / source.name
    assert copy.is_file(), f"no {SOLUTIONS_EXECUTED_DIR}/{source.name}: run `make notebooks`"
    assert executed_copy_problems(copy, source.parent) == []
    nb = nbformat.read(copy, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]
    assert all(c.get("execution_count") for c in code), "every code cell ran"
    assert sum(bool(c.get("outputs")) for c in code) >= len(code) // 2, "the solutions show their outputs"


def test_committed_solutions_copies_each_have_a_source():
    """No executed copy of a solutions notebook that no longer exists."""
    have = {p.name for p in SOLUTION_SOURCES}
    assert sorted(p.name for p in (repo_root() / SOLUTIONS_EXECUTED_DIR).glob("*.ipynb")
                  if p.name not in have) == []


@pytest.mark.slow
def test_real_smoke_run_gives_a_copy_the_check_accepts(tmp_path):
    """papermill's own record of the preset is what the check reads."""
    (out,) = run_notebooks("smoke", only=["08"], out_dir=tmp_path / "runs",
                           executed_dir=tmp_path / "executed")
    copy = tmp_path / "executed" / out.name
    nb = nbformat.read(copy, as_version=4)
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert executed_copy_problems(copy, preset="smoke") == []
    assert copy.stat().st_size <= EXECUTED_MAX_BYTES
    del nb.metadata["papermill"]  # papermill's injected cell says the same
    assert executed_preset(nb) == "smoke"
