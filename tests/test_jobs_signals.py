"""``larpo-lite notebooks --jobs 2``: the notebook processes and their Jupyter kernels end with
their parent (killing the parent used to leave both children running, and writing, for hours).

The fast tests run ``_run_parallel`` with a stand-in for ``python -m larpo_lite.cli notebooks
--only NN``: a process that starts a "kernel" in a session of its own, as jupyter_client
does, and sleeps. The slow test runs the real command on the smoke preset."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from larpo_lite.notebooks import _alive, _process_tree

ROOT = Path(__file__).resolve().parents[1]

# The stand-in for a --jobs child: args are those of `python -m larpo_lite.cli notebooks ...`
CHILD = """#!{python}
import os, subprocess, sys, time
number = sys.argv[sys.argv.index("--only") + 1]
kernel = subprocess.Popen([{python!r}, "-c", "import time; time.sleep(600)"],
                          start_new_session=True)  # as jupyter_client starts a kernel
with open(os.path.join({folder!r}, f"{{number}}.pids.tmp"), "w") as f:
    f.write(f"{{os.getpid()}} {{kernel.pid}}")
os.rename(os.path.join({folder!r}, f"{{number}}.pids.tmp"), os.path.join({folder!r}, f"{{number}}.pids"))
time.sleep(600)
"""

# The parent: _run_parallel on two notebooks, with the stand-in as its "python"
PARENT = """
import sys
from pathlib import Path
from larpo_lite import notebooks
sys.executable = sys.argv[1]
notebooks._run_parallel("smoke", notebooks.notebook_paths(["01", "03"]), Path(sys.argv[2]), 2, False)
"""


def _wait_for(what: str, check, limit: float = 300.0):
    """Poll ``check()`` until it returns something true (the processes start on a loaded
    machine: the limit only stops a broken test)."""
    t0 = time.monotonic()
    while not (got := check()):
        assert time.monotonic() - t0 < limit, f"{what}: not within {limit:.0f} s"
        time.sleep(0.1)
    return got


def _gone_within(pids: list[int], seconds: float) -> list[int]:
    """The pids still running after up to ``seconds``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds and any(_alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


def _start(tmp_path: Path) -> tuple[subprocess.Popen, list[int]]:
    fake = tmp_path / "fake-python"
    fake.write_text(CHILD.format(python=sys.executable, folder=str(tmp_path)))
    fake.chmod(0o755)
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(fake), str(tmp_path / "out")],
                              cwd=ROOT, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    files = [tmp_path / "01.pids", tmp_path / "03.pids"]
    _wait_for("both children and their kernels", lambda: all(f.exists() for f in files))
    pids = [int(x) for f in files for x in f.read_text().split()]  # child, kernel, child, kernel
    return parent, pids


def _cleanup(pids: list[int]) -> None:
    for p in pids:
        if _alive(p):
            os.kill(p, signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=lambda s: signal.Signals(s).name)
def test_a_signal_to_the_parent_ends_its_children_and_their_kernels(tmp_path, sig):
    parent, pids = _start(tmp_path)
    try:
        assert all(_alive(p) for p in pids)
        assert set(pids) <= set(_process_tree(parent.pid))  # the kernels are below the parent
        parent.send_signal(sig)
        _, err = parent.communicate(timeout=60)
        assert _gone_within(pids, 10.0) == []
        assert f"{signal.Signals(sig).name}: ending notebook(s) ['01', '03']" in err, err
        # exit status: 128 + signal; SIGINT is a KeyboardInterrupt (python exits by SIGINT)
        assert parent.returncode == (-signal.SIGINT if sig == signal.SIGINT else 128 + sig), err
    finally:
        _cleanup([parent.pid, *pids])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_children_end_when_the_parent_is_killed_outright(tmp_path):
    """SIGKILL runs no handler: the children get SIGTERM from the kernel (PR_SET_PDEATHSIG). A
    real Jupyter kernel then exits on its own (ipykernel polls its parent); the stand-in's
    "kernel" does not, so only the children are checked here."""
    parent, pids = _start(tmp_path)
    try:
        children = pids[0::2]
        parent.kill()
        parent.wait(timeout=60)
        assert _gone_within(children, 10.0) == []
    finally:
        _cleanup(pids)


def test_the_process_tree_and_liveness_read_from_proc(tmp_path):
    """``_process_tree`` finds grandchildren in other sessions; a reaped or zombie process is
    not alive."""
    proc = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        "k = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], "
        "start_new_session=True)\n"
        "print(k.pid, flush=True)\n"
        "time.sleep(600)\n")], stdout=subprocess.PIPE, text=True)
    try:
        kernel = int(proc.stdout.readline())
        assert _process_tree(proc.pid) == [proc.pid, kernel]
        assert _alive(proc.pid) and _alive(kernel)
    finally:
        _cleanup([kernel, proc.pid])
    proc.wait()
    assert not _alive(proc.pid) and _process_tree(proc.pid) == []


@pytest.mark.slow
def test_sigterm_to_notebooks_jobs_2_ends_every_process_it_started(tmp_path):
    """The real command on the smoke preset: SIGTERM once both notebooks' kernels run; every
    process it started (children, kernels, anything they started) ends within 10 s."""
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    parent = subprocess.Popen([sys.executable, "-m", "larpo_lite.cli", "notebooks", "--preset",
                               "smoke", "--jobs", "2", "--only", "01,03", "--out-dir", str(out)],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    seen: set[int] = set()

    def kernels_running() -> bool:
        tree = _process_tree(parent.pid)
        seen.update(tree)
        cmdlines = []
        for p in tree:
            try:
                cmdlines.append(Path(f"/proc/{p}/cmdline").read_bytes())
            except OSError:
                continue
        return sum(b"ipykernel" in c for c in cmdlines) >= 2

    try:
        _wait_for("two notebook kernels", kernels_running)
        seen.discard(parent.pid)
        parent.send_signal(signal.SIGTERM)
        _, err = parent.communicate(timeout=60)
        assert _gone_within(sorted(seen), 10.0) == [], err[-2000:]
        assert parent.returncode == 128 + signal.SIGTERM, err[-2000:]
    finally:
        _cleanup([parent.pid, *seen])
