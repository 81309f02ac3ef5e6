"""The model cache (``LARPO_LITE_CACHE``) on its first use: each model is written once, under a
lock, into a temporary folder renamed into place, with no progress bar; processes that start
together on an empty cache all get the model."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LOAD = """
import sys
from larpo_lite import models
name = sys.argv[1]
model, tok = models.load_policy(name, device="cpu", dtype="float32")
print("loaded", name, sum(p.numel() for p in model.parameters()), flush=True)
"""


def _env(cache: Path) -> dict[str, str]:
    env = {**os.environ, "LARPO_LITE_CACHE": str(cache), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("CI", None)  # bars are drawn where CI is unset: none may be drawn here either
    return env


def _load_together(name: str, cache: Path, n: int = 2) -> list[subprocess.CompletedProcess]:
    """``n`` processes loading ``name`` at once into ``cache``."""
    procs = [subprocess.Popen([sys.executable, "-c", LOAD, name], cwd=ROOT, env=_env(cache),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(n)]
    done = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


def _no_bars(text: str) -> bool:
    return "\r" not in text and "%|" not in text  # tqdm draws "  40%|####  | 2/5" with \r


def test_two_processes_on_an_empty_cache_both_get_the_tiny_model(tmp_path):
    cache = tmp_path / "cache"
    runs = _load_together("tiny-random", cache)
    for r in runs:
        assert r.returncode == 0, r.stderr[-3000:]
        assert r.stdout.startswith("loaded tiny-random"), r.stdout
        assert _no_bars(r.stdout + r.stderr), r.stderr[-2000:]  # "Writing model shards" was one
    assert (cache / "tiny-random-s0" / "model.safetensors").is_file()
    # nothing half-written is left beside it: only the model, the tokenizer and the lock files
    tokenizer, model = sorted(p.name for p in cache.iterdir() if not p.name.startswith("."))
    assert tokenizer.startswith("smollm2-tokenizer-") and model == "tiny-random-s0"
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_two_processes_on_an_empty_cache_both_get_the_embedded_model(tmp_path):
    """Two notebooks of ``make notebooks`` (2 jobs) starting on a new machine: before the lock,
    1 in 3 failed with ``No such file ... model.safetensors`` (the second conversion deleted
    the first one's folder while it was read). Converted once, quietly."""
    cache = tmp_path / "cache"
    runs = _load_together("smollm2-135m-instruct", cache)
    for r in runs:
        assert r.returncode == 0, r.stderr[-3000:]
        assert "loaded smollm2-135m-instruct" in r.stdout, r.stdout
        assert _no_bars(r.stdout + r.stderr), (r.stdout + r.stderr)[-2000:]
    assert sum(r.stdout.count("converted ") for r in runs) == 1
    assert (cache / "smollm2-135m-instruct" / "model.safetensors").is_file()
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]


WAIT = """
from pathlib import Path
import sys
from larpo_lite import models
def build(folder):
    (folder / "config.json").write_text("{}")
    (folder / "built-by-this-process").write_text("")
print(models._build_in_cache(Path(sys.argv[1]), ("config.json",), build), flush=True)
"""


def test_a_second_process_waits_for_the_first_and_uses_its_copy(tmp_path):
    """While one process holds the cache lock, another waits (and says so), then finds the
    folder complete and builds nothing."""
    target = tmp_path / "model"
    with open(tmp_path / ".model.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.Popen([sys.executable, "-c", WAIT, str(target)], cwd=ROOT,
                                env=_env(tmp_path), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        line = proc.stderr.readline()  # blocks until the other process is waiting
        assert "another process is writing" in line and str(target) in line
        target.mkdir()
        (target / "config.json").write_text('{"first": true}')
        fcntl.flock(lock, fcntl.LOCK_UN)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.strip() == str(target)
    assert sorted(p.name for p in target.iterdir()) == ["config.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_failed_build_leaves_nothing_in_the_cache(tmp_path):
    from larpo_lite import models

    def build(folder: Path) -> None:
        (folder / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        models._build_in_cache(tmp_path / "model", ("config.json",), build)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.lock"]
    # the next try builds it
    got = models._build_in_cache(tmp_path / "model", ("config.json",),
                                 lambda f: (f / "config.json").write_text("{}"))
    assert got == tmp_path / "model" and (got / "config.json").is_file()
