"""Lock-wait notices (``progress.waiting``): said on stderr to a user, left out of the notebooks
that ``larpo-lite notebooks`` runs headless, whose executed copies must hold no stderr output."""

import fcntl
import threading
import time

from larpo_lite import models
from larpo_lite.notebooks import HEADLESS_ENV
from larpo_lite.progress import waiting


def test_waiting_speaks_to_a_user_and_not_in_a_headless_notebook(capsys, monkeypatch):
    monkeypatch.delenv("LARPO_LITE_PROGRESS", raising=False)
    waiting("another process is writing x; waiting for it")
    assert capsys.readouterr().err == "[larpo-lite] another process is writing x; waiting for it\n"
    monkeypatch.setenv("LARPO_LITE_PROGRESS", HEADLESS_ENV["LARPO_LITE_PROGRESS"])
    waiting("another process is writing x; waiting for it")
    assert capsys.readouterr().err == ""


def _wait_for_lock(folder, capsys) -> str:
    """``models._build_in_cache`` of ``folder/m`` while another holder keeps the build lock
    for 0.3 s: what it printed to stderr (the model is built by whichever gets the lock)."""
    folder.mkdir()
    target = folder / "m"
    lock = open(folder / ".m.lock", "a")  # noqa: SIM115 - released by the timer
    fcntl.flock(lock, fcntl.LOCK_EX)
    threading.Timer(0.3, lambda: (fcntl.flock(lock, fcntl.LOCK_UN), lock.close())).start()
    t0 = time.monotonic()
    models._build_in_cache(target, ("w.txt",), lambda out: (out / "w.txt").write_text("1"))
    assert time.monotonic() - t0 > 0.2  # it waited for the other holder
    assert (target / "w.txt").read_text() == "1"
    return capsys.readouterr().err


def test_a_build_waiting_for_another_process_says_so_except_headless(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LARPO_LITE_PROGRESS", raising=False)
    assert "another process is writing" in _wait_for_lock(tmp_path / "a", capsys)
    monkeypatch.setenv("LARPO_LITE_PROGRESS", "0")
    assert _wait_for_lock(tmp_path / "b", capsys) == ""
