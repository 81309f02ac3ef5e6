"""Executed copies without noise: no progress bar (``%|``), carriage return, stderr output or
warning text in any output of ``executed/`` and ``executed/solutions/``. The kernels that
``larpo-lite notebooks`` starts draw no bar (``HEADLESS_ENV``); ``write_executed_copy`` removes a
bar that got through anyway and names, never hides, anything else."""

import os
import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from larpo_lite.notebooks import (
    EXECUTED_DIR,
    HEADLESS_ENV,
    WIDGET_VIEW,
    output_noise,
    run_notebooks,
    strip_progress_bars,
    write_executed_copy,
)
from larpo_lite.paths import repo_root

COMMITTED = sorted((repo_root() / EXECUTED_DIR).glob("*.ipynb")) + sorted(
    (repo_root() / EXECUTED_DIR / "solutions").glob("*.ipynb"))
BAR = "encoding passages:   0%|          | 0/23 [00:00<?, ?it/s]"
WARNING = "/tmp/ipykernel_1/1.py:4: UserWarning: 43 lists is not a multiple of lists_per_step=7\n"


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(repo_root())))
def test_committed_executed_copy_is_clean(path):
    """Fails on copies written before the kernels ran headless, until the next default run."""
    nb = nbformat.read(path, as_version=4)
    problems = output_noise(nb, str(path.relative_to(repo_root())))
    assert problems == [], "\n".join(problems)


# ---------------------------------------------------------------- synthetic notebooks


def _noisy():
    """A notebook with one clean cell and one cell per kind of noise."""
    nb = new_notebook()
    nb.cells = [new_markdown_cell("# t"), new_code_cell("print('ok')"), new_code_cell("load()"),
                new_code_cell("train()"), new_code_cell("loop()"), new_code_cell("say()")]
    nb.cells[1].outputs = [new_output("stream", name="stdout", text="ok\n")]
    nb.cells[2].outputs = [new_output("display_data", data={WIDGET_VIEW: {"model_id": "m"},
                                                            "text/plain": BAR})]
    nb.cells[3].outputs = [new_output("stream", name="stderr", text=WARNING)]
    nb.cells[4].outputs = [new_output("stream", name="stdout",
                                      text="step 1\r 50%|#####     | 1/2 [00:01<00:01]\rdone\n")]
    nb.cells[5].outputs = [new_output("stream", name="stdout", text="FutureWarning: soon\n")]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return nb


def test_noise_is_named_by_notebook_and_cell():
    problems = output_noise(_noisy(), "09_demo.ipynb")
    assert [p.split(":")[0] for p in problems] == [
        "09_demo.ipynb cell 3 ('load()')", "09_demo.ipynb cell 4 ('train()')",
        "09_demo.ipynb cell 5 ('loop()')", "09_demo.ipynb cell 6 ('say()')"]
    assert "a progress bar" in problems[0] and "encoding passages" in problems[0]
    assert "stderr, warning text" in problems[1] and "UserWarning: 43 lists" in problems[1]
    assert "a progress bar, a carriage return" in problems[2]
    assert "warning text" in problems[3]
    clean = _noisy()
    clean.cells = clean.cells[:2]
    assert output_noise(clean) == []


def test_stripping_removes_bars_only():
    nb = _noisy()
    assert strip_progress_bars(nb) == [3, 5]
    assert nb.cells[2].outputs == []  # the widget bar
    assert nb.cells[4].outputs[0].text == "done\n"  # what a terminal showed last, bar gone
    assert nb.cells[3].outputs[0].text == WARNING  # a warning is not a bar
    assert "widgets" not in nb.metadata  # no widget is left to need its state
    problems = output_noise(nb, "09_demo.ipynb")
    assert [p.split(" (")[0] for p in problems] == ["09_demo.ipynb cell 4", "09_demo.ipynb cell 6"]


def test_executed_copy_loses_its_bars_and_names_its_warnings(tmp_path, capsys):
    nbformat.write(_noisy(), tmp_path / "09_demo.ipynb")
    copy = write_executed_copy(tmp_path / "09_demo.ipynb", tmp_path / "executed")
    said = capsys.readouterr().out
    assert "removed progress bars from cell(s) [3, 5]" in said
    assert "09_demo.ipynb cell 4" in said and "UserWarning: 43 lists" in said  # said, not hidden
    problems = output_noise(nbformat.read(copy, as_version=4), "09_demo.ipynb")
    assert len(problems) == 2 and "UserWarning" in problems[0]  # and the scan above fails on it
    assert "widgets" not in nbformat.read(copy, as_version=4).metadata


# ---------------------------------------------------------------- the kernels' environment

_DRAW = """
from tqdm.auto import tqdm
for _ in tqdm(range(3), desc="plain tqdm", mininterval=0): pass
from transformers.utils import logging as hf_logging
for _ in hf_logging.tqdm(range(3), desc="transformers", mininterval=0): pass
from larpo_lite import progress, retrieval
for _ in progress.progress(range(3), desc="larpo-lite", mininterval=0): pass
print("retrieval quiet:", retrieval.bars_off())  # the switch retrieval.encode reads
"""


def _draw(env):
    base = {k: v for k, v in os.environ.items()
            if k not in HEADLESS_ENV and k not in ("CI", "HF_HUB_DISABLE_PROGRESS_BARS")}
    return subprocess.run([sys.executable, "-c", _DRAW], env={**base, **env}, capture_output=True,
                          text=True, timeout=300, check=True)


def test_the_headless_environment_draws_no_bar():
    """tqdm's, transformers' and the package's bars, and retrieval.encode's switch."""
    loud = _draw({})
    assert "plain tqdm" in loud.stderr and "transformers" in loud.stderr  # they do draw without it
    quiet = _draw(HEADLESS_ENV)
    assert "%|" not in quiet.stderr and "\r" not in quiet.stderr, quiet.stderr
    assert "retrieval quiet: True" in quiet.stdout


@pytest.mark.slow
def test_a_real_kernel_run_gives_a_clean_copy_or_names_the_warning(tmp_path):
    """A notebook that draws bars and raises a warning, run by ``larpo-lite notebooks``: the
    executed copy has no bar, and its warning is named by the scan."""
    src = tmp_path / "nbs"
    src.mkdir()
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                               "language": "python"},
                                "language_info": {"name": "python"}})
    nb.cells = [new_code_cell('preset = "smoke"'),
                new_code_cell("from tqdm.auto import tqdm\nfor _ in tqdm(range(3)): pass\n"
                              "from transformers.utils import logging as hf_logging\n"
                              "for _ in hf_logging.tqdm(range(3)): pass\nprint('drawn')"),
                new_code_cell("import warnings\nwarnings.warn('a real warning')")]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(nb, src / "09_demo.ipynb")
    run_notebooks("smoke", out_dir=tmp_path / "runs", folder=str(src),
                  executed_dir=tmp_path / "executed")
    copy = nbformat.read(tmp_path / "executed" / "09_demo.ipynb", as_version=4)
    (problem,) = output_noise(copy, "09_demo.ipynb")
    assert problem.startswith("09_demo.ipynb cell 4") and "a real warning" in problem
    assert "drawn" in "".join(o.get("text", "") for o in copy.cells[2].outputs)
