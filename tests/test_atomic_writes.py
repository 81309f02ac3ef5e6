"""Figure and report writes from several processes at once: each file is replaced whole, through
a temporary file of its own (a fixed temporary name failed 44 and 60 times in 200 saves of
the same figure by two processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SAVE = """
import sys
folder, what, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from larpo_lite import plotting, reports
fig, ax = plt.subplots(figsize=(2, 2))
ax.plot([1, 2, 3], [0.1, 0.4, 0.2], label="x")
print("ready", flush=True)
sys.stdin.readline()  # both processes start saving together
failures = []
for i in range(n):
    try:
        if what == "figure":
            plotting.savefig(fig, "same", folder)
        else:
            reports.write_json({"i": i, "pad": "x" * 20000}, f"{folder}/same.json")
    except Exception as e:
        failures.append(repr(e))
print("failures", len(failures), failures[:3], flush=True)
"""


def _save_together(folder: Path, what: str, n: int) -> list[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    procs = [subprocess.Popen([sys.executable, "-c", SAVE, str(folder), what, str(n)], cwd=ROOT,
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()[-2000:]
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        outs.append(out.strip())
    return outs


@pytest.mark.parametrize("what", ["figure", "report"])
def test_two_processes_saving_the_same_file_100_times_each_never_fail(tmp_path, what):
    outs = _save_together(tmp_path, what, 100)
    assert outs == ["failures 0 []"] * 2
    if what == "figure":
        assert (tmp_path / "same.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert json.loads((tmp_path / "same.data.json").read_text())
        assert sorted(p.name for p in tmp_path.iterdir()) == ["same.data.json", "same.png"]
    else:
        assert json.loads((tmp_path / "same.json").read_text())["i"] == 99
        assert sorted(p.name for p in tmp_path.iterdir()) == ["same.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    from larpo_lite import reports

    path = reports.write_json({"a": 1}, tmp_path / "r.json")
    assert (path.stat().st_mode & 0o777) == 0o666 & ~_umask()

    def half(f):
        f.write(b'{"a": ')
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        reports.replace_atomically(path, half)
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
