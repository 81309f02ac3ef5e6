"""The command line: an expected failure is one line naming the file or parameter, exit code 2;
a bug keeps its traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from larpo_lite import cli, models
from larpo_lite.errors import LarpoLiteError


@pytest.fixture
def no_model_loads(monkeypatch):
    """Bad options must be refused before any model loads."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(models, "load_policy", refuse)


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("larpo-lite: error: ")
    return lines[0]


@pytest.mark.parametrize(("argv", "named"), [
    (["loop", "--preset", "smoke", "--k", "0"], "--k: parameter 'k_train' must be >= 1"),
    (["loop", "--preset", "smoke", "--iterations", "-1"], "--iterations: parameter 'iterations'"),
    (["loop", "--preset", "smoke", "--memory", "forever"], "--memory: parameter 'memory'"),
    (["loop", "--preset", "smoke", "--temperatures", "0.7,-1"], "--temperatures: parameter"),
    (["loop", "--preset", "smoke", "--temperatures", "0.7,hot"], "--temperatures: expected"),
    (["loop", "--preset", "smoke", "--objective", "dpo"], "unknown objective 'dpo'"),
    (["tune", "--preset", "smoke", "--lrs", "1e-3,0"], "--lrs: every value must be > 0"),
    (["tune", "--preset", "smoke", "--betas", "x"], "--betas: expected"),
    (["loop", "--preset", "no-such-preset"], "unknown preset 'no-such-preset'"),
])
def test_bad_options_end_in_one_line_before_any_model_loads(argv, named, capsys, no_model_loads):
    assert cli.main(argv) == 2
    assert named in _error_line(capsys)


@pytest.mark.parametrize("error", [
    FileNotFoundError(2, "No such file or directory", "runs/x/lists_iter1.jsonl"),
    PermissionError(13, "Permission denied", "runs/x/config.json"),
    ValueError("runs/x/results.jsonl:3: malformed JSON line\n(Unterminated string)"),
    models.ModelLoadError("could not load model 'x'"),
    LarpoLiteError("could not load dataset 'y'"),
])
def test_expected_failures_end_in_one_line(error, capsys, monkeypatch):
    def fail(args):
        raise error

    monkeypatch.setattr(cli, "_cmd_presets", fail)
    assert cli.main(["presets"]) == 2
    line = _error_line(capsys)
    assert ("runs/x" in line) or ("'x'" in line) or ("'y'" in line)


def test_a_corrupt_safetensors_file_ends_in_one_line(tmp_path, capsys, monkeypatch):
    from safetensors.torch import load_file

    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header")

    def load(args):
        load_file(bad)

    monkeypatch.setattr(cli, "_cmd_presets", load)
    assert cli.main(["presets"]) == 2
    _error_line(capsys)


@pytest.mark.parametrize("bug", [TypeError("unsupported operand"), RuntimeError("shape mismatch"),
                                 KeyError("k")])
def test_a_bug_keeps_its_traceback(bug, monkeypatch):
    def fail(args):
        raise bug

    monkeypatch.setattr(cli, "_cmd_presets", fail)
    with pytest.raises(type(bug)):
        cli.main(["presets"])


def test_the_installed_command_exits_2_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "larpo_lite.cli", "loop", "--preset", "smoke",
                           "--k", "0", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "larpo-lite: error: --k: parameter 'k_train' must be >= 1, got 0"]
    assert not (tmp_path / "run").exists()  # nothing written


@pytest.mark.parametrize("child", [False, True])
def test_notebooks_all_done_line_only_from_the_parent(monkeypatch, capsys, child):
    """A ``--jobs`` child runs one notebook; only the parent says the whole run is done."""
    from larpo_lite import notebooks

    monkeypatch.setattr(notebooks, "run_notebooks", lambda *a, **k: [])
    if child:
        monkeypatch.setenv(notebooks.CHILD_ENV, "1")
    else:
        monkeypatch.delenv(notebooks.CHILD_ENV, raising=False)
    assert cli.main(["notebooks", "--preset", "smoke", "--only", "08"]) == 0
    assert ("all done in" in capsys.readouterr().out) is not child


@pytest.mark.parametrize(("argv", "named"), [
    (["loop", "--preset", "smoke", "--temperatures", "inf"],
     "--temperatures: every value must be a finite number, got 'inf'"),
    (["loop", "--preset", "smoke", "--temperatures", "0.7,nan"], "--temperatures: every value"),
    (["tune", "--preset", "smoke", "--lrs", "1e-3,inf"], "--lrs: every value must be a finite"),
    (["tune", "--preset", "smoke", "--betas", "1e400"], "--betas: every value must be a finite"),
])
def test_infinite_and_nan_options_are_refused_naming_the_option(argv, named, capsys, no_model_loads):
    assert cli.main(argv) == 2
    assert named in _error_line(capsys)
