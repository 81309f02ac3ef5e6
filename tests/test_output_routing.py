"""Only the default run writes the committed results (figures/, reports/, replay/, executed/);
every other door (another preset, a preset based on default, papermill's -p, a notebook edited
in Jupyter, a default.yaml in another folder) writes under runs/<preset>/, and
$LARPO_LITE_RUNS moves runs/ out of a read-only checkout."""

import ast

import nbformat
import pytest
import yaml

from larpo_lite import paths
from larpo_lite.config import PRESET_FILE_ENV, Params, load_preset_values, params_dir
from larpo_lite.notebooks import executed_dir_for, notebook_paths
from larpo_lite.paths import repo_root

KINDS = ("figures", "reports", "record")
COMMITTED = {"figures": "figures", "reports": "reports", "record": "replay"}


@pytest.fixture(autouse=True)
def _runs(tmp_path, monkeypatch):
    """Every test: runs/ in a temp folder, and no preset file named by a notebooks run."""
    monkeypatch.setenv(paths.RUNS_ENV, str(tmp_path / "runs"))
    monkeypatch.delenv(PRESET_FILE_ENV, raising=False)
    return tmp_path / "runs"


def _where(p: Params) -> dict[str, object]:
    return {k: p.out_dir(k, create=False) for k in KINDS}


def _runs_of(runs, preset):
    return {k: runs / preset / k for k in KINDS}


def _cell_values(number: str, **edits) -> dict:
    """The parameters cell of notebook ``number`` as Jupyter runs it, with ``edits`` typed in."""
    (path,) = notebook_paths([number])
    cell = next(c for c in nbformat.read(path, as_version=4).cells
                if "parameters" in c.metadata.get("tags", []))
    values = {n.targets[0].id: ast.literal_eval(n.value) for n in ast.parse(cell.source).body}
    return {**values, **edits}


def test_the_default_run_writes_the_committed_folders():
    p = Params.load("default")
    assert p.is_default_run()
    assert _where(p) == {k: repo_root() / COMMITTED[k] for k in KINDS}
    # the notebook as committed, opened in Jupyter, is the default run too
    assert Params.for_notebook(_cell_values("01")).is_default_run()


@pytest.mark.parametrize("preset", ["smoke", "replay", "gpu-small", "gpu-7b"])
def test_other_presets_write_under_runs(preset, _runs):
    p = Params.load(preset)
    assert not p.is_default_run()
    assert _where(p) == _runs_of(_runs, preset)


def test_a_preset_based_on_default_is_its_own_preset(tmp_path, _runs):
    mine = tmp_path / "mine.yaml"
    mine.write_text("based_on: default\nmodel_name: tiny-random\n")
    p = Params.load(str(mine))
    assert p.preset == "mine" and not p.is_default_run()
    assert _where(p) == _runs_of(_runs, "mine")
    assert executed_dir_for(str(mine)) is None
    # a copy that changes nothing is still another preset, named by its file
    same = tmp_path / "same.yaml"
    same.write_text("based_on: default\n")
    assert Params.load(str(same)).preset == "same"
    assert _where(Params.load(str(same))) == _runs_of(_runs, "same")


def test_papermill_parameters_that_change_a_value_are_not_the_default_run(_runs):
    """``papermill ... -p n_test 4``: the cell's values with the injected one."""
    p = Params.for_notebook(_cell_values("01", n_test=4))
    assert p.preset == "default" and not p.is_default_run()
    assert _where(p) == _runs_of(_runs, "default")
    assert executed_dir_for("default", overrides={"n_test": 4}) is None


def test_a_notebook_edited_in_jupyter_is_not_the_default_run(_runs):
    """A student types another temperature into the parameters cell and runs it."""
    (path,) = notebook_paths(["01"])
    cell = next(c for c in nbformat.read(path, as_version=4).cells
                if "parameters" in c.metadata.get("tags", []))
    edited = cell.source.replace("temperature = 0.7", "temperature = 0.3")
    assert edited != cell.source
    namespace: dict = {}
    exec(edited, namespace)  # what the kernel holds after the cell ran
    del namespace["__builtins__"]
    p = Params.for_notebook(namespace)
    assert not p.is_default_run()
    assert _where(p) == _runs_of(_runs, "default")


def test_a_default_yaml_in_another_folder_is_not_the_default_run(tmp_path, monkeypatch, _runs):
    other = tmp_path / "elsewhere" / "default.yaml"
    other.parent.mkdir()
    other.write_text("based_on: smoke\n")
    p = Params.load(str(other))
    assert not p.is_default_run()
    assert all(w.is_relative_to(_runs) for w in _where(p).values())  # smoke's runs/smoke/...
    assert executed_dir_for(str(other)) is None
    # a copy of the repository's file: the same values, but the notebooks run says which file
    # it ran, and only this repository's params/default.yaml is the default run
    other.write_text((params_dir() / "default.yaml").read_text())
    assert executed_dir_for(str(other)) is None
    p = Params.load(str(other))
    monkeypatch.setenv(PRESET_FILE_ENV, str(other))
    assert not p.is_default_run()
    assert _where(p) == _runs_of(_runs, "default")
    monkeypatch.setenv(PRESET_FILE_ENV, str(params_dir() / "default.yaml"))
    assert p.is_default_run()


def test_committed_folders_named_any_way_are_redirected(_runs):
    p = Params.load("smoke", figures_dir=str(repo_root() / "figures"), reports_dir="reports/sub",
                    record_dir="replay")
    assert _where(p) == _runs_of(_runs, "smoke")
    # a folder of the user's own stays where it is
    p = Params.load("smoke", figures_dir="my_figures")
    assert p.out_dir("figures", create=False) == repo_root() / "my_figures"


def test_runs_folders_follow_larpo_lite_runs(tmp_path, monkeypatch):
    p = Params.load("smoke")  # its preset names runs/smoke/figures and runs/smoke/reports
    assert p.out_dir("figures") == tmp_path / "runs" / "smoke" / "figures"
    assert (tmp_path / "runs" / "smoke" / "figures").is_dir()
    monkeypatch.delenv(paths.RUNS_ENV)
    assert p.out_dir("figures", create=False) == repo_root() / "runs" / "smoke" / "figures"


def test_an_output_folder_that_cannot_be_written_names_larpo_lite_runs(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(paths.RUNS_ENV, str(blocker / "runs"))  # cannot be created
    with pytest.raises(paths.NotWritableError, match=paths.RUNS_ENV):
        Params.load("replay").out_dir("figures")
    monkeypatch.delenv(paths.RUNS_ENV)
    with pytest.raises(OSError, match=f"{paths.RUNS_ENV} set to a writable folder"):
        paths.writable_dir(blocker / "figures")


def test_preset_names_come_from_the_file_not_its_base(tmp_path):
    (tmp_path / "x.yaml").write_text(yaml.safe_dump({"n_test": 3}))
    assert load_preset_values(str(tmp_path / "x.yaml"))["preset"] == "x"
    (tmp_path / "y.yaml").write_text("based_on: smoke\npreset: named\n")
    assert Params.load(str(tmp_path / "y.yaml")).preset == "named"


def test_a_run_that_cannot_write_its_folder_names_larpo_lite_runs_before_running(tmp_path, monkeypatch):
    import papermill as pm

    from larpo_lite.notebooks import run_notebooks

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(paths.RUNS_ENV, str(blocker / "runs"))
    monkeypatch.setattr(pm, "execute_notebook", lambda *a, **k: pytest.fail("a notebook ran"))
    with pytest.raises(paths.NotWritableError, match=paths.RUNS_ENV):
        run_notebooks("replay", only=["01"])


def _read_only_bind_mount_works() -> bool:
    import os
    import shutil
    import subprocess
    import tempfile

    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    with tempfile.TemporaryDirectory() as d:
        probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind -o ro {d} {d}"],
                               capture_output=True)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _read_only_bind_mount_works(), reason="needs root and unshare -m for a "
                    "read-only bind mount")
def test_replay_runs_from_a_read_only_checkout_with_larpo_lite_runs(tmp_path):
    """A course folder mounted read-only (root ignores file modes, so a bind mount): replay of
    01 fails naming LARPO_LITE_RUNS without it, and with it writes only there."""
    import os
    import shutil
    import subprocess
    import sys

    course = tmp_path / "course"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=repo_root(), capture_output=True,
                             check=True).stdout.decode().split("\0")
    for rel in filter(None, tracked):
        src = repo_root() / rel
        if src.is_file():
            (course / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, course / rel)
    before = {p: p.read_bytes() for p in course.rglob("*") if p.is_file()}
    runs = tmp_path / "runs"
    cli = f"{sys.executable} -m larpo_lite.cli notebooks --preset replay --only 01"
    script = (f"mount --bind -o ro {course} {course} && cd {course} && "
              f"(touch probe 2>/dev/null && echo WRITABLE; "
              f"{cli}; echo rc=$?; LARPO_LITE_RUNS={runs} {cli}; echo rc=$?)")
    env = {**os.environ, "PYTHONPATH": str(course), "OMP_NUM_THREADS": "1"}
    env.pop(paths.RUNS_ENV, None)
    out = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                         env=env, timeout=600)
    text = out.stdout + out.stderr
    assert "WRITABLE" not in text
    assert text.count("rc=2") == 1 and text.count("rc=0") == 1, text[-3000:]
    assert f"{paths.RUNS_ENV} set to a writable folder" in text
    assert (runs / "replay" / "reports" / "01_ir_analogy.json").is_file()
    assert (runs / "replay" / "01_ir_analogy.ipynb").is_file()
    assert {p: p.read_bytes() for p in course.rglob("*") if p.is_file()} == before
