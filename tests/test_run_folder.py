"""A loop run's folder: files checked on resume, damaged files named, a finished run read back
without a write, one command at a time on a folder."""

import json
import os
import shutil
import stat
import threading
from pathlib import Path

import pytest

from larpo_lite import cli, loop, run_folder
from larpo_lite.config import Params
from larpo_lite.jsonl import CorruptFileError, read_jsonl
from larpo_lite.loop import LoopConfig, check_round_files, read_results, run_locked, run_loop

pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg() -> LoopConfig:
    """The config ``larpo-lite loop --preset smoke`` runs (tiny-random, 2 rounds, gold in list)."""
    return LoopConfig.from_params(Params.load("smoke"))


@pytest.fixture(scope="module")
def finished(one_thread, tmp_path_factory):
    """A finished 2-round smoke run made by the command line (it trains: the gold solution
    is in every list)."""
    folder = tmp_path_factory.mktemp("runs") / "smoke"
    assert cli.main(["loop", "--preset", "smoke", "--out", str(folder)]) == 0
    rows = read_results(folder)
    assert [r["iteration"] for r in rows] == [0, 1, 2] and rows[1]["train_steps"] > 0
    return folder


def _copy(src: Path, dst: Path, rounds: int | None = None) -> Path:
    """A copy of a run; ``rounds``: keep the rows of that many finished rounds only (the rest
    is work to do on resume)."""
    shutil.copytree(src, dst)
    if rounds is not None:
        rows = read_results(dst)[:rounds + 1]
        (dst / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return dst


def _drop_last_line(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))


# ---------------------------------------------------------------- the one JSON-lines reader
def test_read_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n{"a": "cut mid-li')
    with pytest.raises(CorruptFileError, match=r"x\.jsonl:4: corrupt JSON line .*delete") as e:
        read_jsonl(path)
    assert (e.value.path, e.value.lineno) == (path, 4)
    path.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(CorruptFileError, match=r"x\.jsonl:2: expected a JSON object"):
        read_jsonl(path)
    path.write_text('{"a": 1}\n{"b": 2}\n')
    with pytest.raises(CorruptFileError, match=r"x\.jsonl:2: row without a; do this"):
        read_jsonl(path, required=("a",), remedy="do this")
    path.write_bytes(b'{"a": 1}\n\xff\xfe garbage\n')
    with pytest.raises(CorruptFileError, match=r"x\.jsonl: not UTF-8"):
        read_jsonl(path)
    path.write_text('{"a": 1}\n\n{"a": 2}\n')
    assert read_jsonl(path, required=("a",)) == [{"a": 1}, {"a": 2}]


# ---------------------------------------------------------------- integrity on resume
def test_each_round_records_its_files_and_lists(finished):
    rows = read_results(finished)
    for r in rows[1:]:
        s = r["iteration"]
        names = {f"lists_iter{s}.jsonl", f"candidates_iter{s}_T0.7.jsonl"}
        assert set(r["sha256"]) == names
        for name, digest in r["sha256"].items():
            assert digest == run_folder.sha256(finished / name)
        assert r["lists"] == len(read_jsonl(finished / f"lists_iter{s}.jsonl")) > 0
    check_round_files(finished, rows)  # the run's own files pass


@pytest.mark.parametrize("damage", ["lost_last_list", "candidates_edited", "lists_missing"])
def test_a_resume_refuses_files_that_changed(finished, tmp_path, damage):
    run = _copy(finished, tmp_path / "run", rounds=1)
    if damage == "lost_last_list":  # the whole last line gone: still valid JSON lines
        path = run / "lists_iter1.jsonl"
        _drop_last_line(path)
    elif damage == "candidates_edited":
        path = run / "candidates_iter1_T0.7.jsonl"
        text = path.read_text()
        assert '"correct": [false' in text
        path.write_text(text.replace('"correct": [false', '"correct": [true', 1))
    else:
        path = run / "lists_iter1.jsonl"
        path.unlink()
    results = (run / "results.jsonl").read_bytes()
    with pytest.raises(CorruptFileError, match="--no-resume") as e:
        run_loop(_cfg(), run)
    assert e.value.path == path and str(path) in str(e.value)
    assert (run / "results.jsonl").read_bytes() == results  # refused before any write


def test_older_results_without_hashes_are_checked_by_their_list_count(finished, tmp_path):
    run = _copy(finished, tmp_path / "run")
    rows = [{k: v for k, v in r.items() if k != "sha256"} for r in read_results(run)]
    check_round_files(run, rows)  # intact files: accepted as they are
    _drop_last_line(run / "lists_iter2.jsonl")
    n = rows[2]["lists"]
    with pytest.raises(CorruptFileError, match=rf"lists_iter2\.jsonl: {n - 1} lists where round 2 "
                                               rf"wrote {n} .*--no-resume"):
        check_round_files(run, rows)


# ---------------------------------------------------------------- damaged files are named
def test_a_results_file_cut_mid_line_is_named(finished, tmp_path):
    run = _copy(finished, tmp_path / "run")
    path = run / "results.jsonl"
    path.write_text(path.read_text()[:-40])
    with pytest.raises(CorruptFileError, match=r"results\.jsonl:3: corrupt JSON line.*--no-resume"):
        run_loop(_cfg(), run)
    assert cli.main(["loop", "--preset", "smoke", "--out", str(run)]) == 2  # one line, no traceback


def test_a_lists_file_cut_mid_line_is_named(finished, tmp_path):
    run = _copy(finished, tmp_path / "run")
    path = run / "lists_iter1.jsonl"
    path.write_text(path.read_text()[:-30])
    rows = [{k: v for k, v in r.items() if k != "sha256"} for r in read_results(run)]
    with pytest.raises(CorruptFileError, match=r"lists_iter1\.jsonl:\d+: corrupt JSON line"):
        check_round_files(run, rows)


def test_a_truncated_checkpoint_names_its_path(finished, tmp_path):
    run = _copy(finished, tmp_path / "run", rounds=1)
    weights = run / "ckpt_iter1" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CorruptFileError, match=r"ckpt_iter1: the checkpoint of round 1 cannot be "
                                               r"loaded .*--no-resume") as e:
        run_loop(_cfg(), run)
    assert e.value.path == run / "ckpt_iter1"


# ---------------------------------------------------------------- a finished run writes nothing
def _snapshot(folder: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted(folder.parent.rglob("*")):
        st = p.stat()
        out[str(p.relative_to(folder.parent))] = (st.st_ino, st.st_mtime_ns,
                                                  p.read_bytes() if p.is_file() else None)
    return out


def _set_writable(folder: Path, writable: bool) -> None:
    for p in [folder, *folder.rglob("*")]:
        mode = p.stat().st_mode
        bits = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
        p.chmod(mode | stat.S_IWUSR if writable else mode & ~bits)


def test_a_finished_run_on_a_read_only_folder_prints_its_results(finished, tmp_path, capsys):
    # root ignores permissions, so the test also checks that no file or folder is touched
    run = _copy(finished, tmp_path / "copy" / "run")
    before = _snapshot(run)
    _set_writable(run, False)
    _set_writable(run.parent, False)
    try:
        assert run_loop(_cfg(), run) == read_results(finished)
        assert run_locked(_cfg(), run) == read_results(finished)
        capsys.readouterr()
        assert cli.main(["loop", "--preset", "smoke", "--out", str(run)]) == 0
    finally:
        _set_writable(run.parent, True)
        _set_writable(run, True)
    out = capsys.readouterr().out
    assert out.count('"iteration"') == 3 and "results in" in out and "sha256" not in out
    assert _snapshot(run) == before  # same files, inodes, times and bytes; no lock file beside


# ---------------------------------------------------------------- one command per folder
def test_a_second_loop_command_waits_and_never_redoes_the_work(finished, tmp_path, monkeypatch,
                                                               capsys):
    run = _copy(finished, tmp_path / "run", rounds=1)  # round 2 is work to do
    calls, entered, release = [], threading.Event(), threading.Event()
    sample = loop._Run.sample

    def held_sample(self, s):
        calls.append(s)
        entered.set()
        release.wait(timeout=120)
        return sample(self, s)

    monkeypatch.setattr(loop._Run, "sample", held_sample)
    codes = {}
    args = ["loop", "--preset", "smoke", "--out", str(run)]
    first = threading.Thread(target=lambda: codes.update(first=cli.main(args)))
    second = threading.Thread(target=lambda: codes.update(second=cli.main(args)))
    first.start()
    assert entered.wait(timeout=300)  # the first command is sampling round 2
    second.start()
    second.join(timeout=3.0)
    waiting = second.is_alive()
    release.set()
    first.join(timeout=300)
    second.join(timeout=300)
    assert waiting and codes == {"first": 0, "second": 0}
    assert calls == [2]  # round 2 was built once, by the first command
    assert "in use by another run" in capsys.readouterr().err
    rows = read_results(run)
    assert [r["iteration"] for r in rows] == [0, 1, 2]


def test_starting_over_under_a_running_command_is_refused(finished, tmp_path, capsys):
    import fcntl

    run = _copy(finished, tmp_path / "run")
    with open(run.with_name(run.name + ".lock"), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(loop.RunInUseError, match="in use by another run"):
            run_locked(_cfg(), run, resume=False)
        capsys.readouterr()
        assert cli.main(["loop", "--preset", "smoke", "--out", str(run), "--no-resume"]) == 2
        assert "in use by another run" in capsys.readouterr().err
        assert run_locked(_cfg(), run) == read_results(run)  # finished: read back, no lock
    assert os.path.exists(run / "ckpt_iter2")


def test_a_run_without_per_problem_scores_is_refused_by_name(finished, tmp_path):
    """A folder from before per-problem scores were recorded is refused (paired comparisons
    need them), naming the file and the way out, rather than read back."""
    run = _copy(finished, tmp_path / "old")
    path = run / "results.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    for r in rows:
        for key in [k for k in r if k.endswith(("_correct", "_rewards"))]:
            del r[key]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(loop.OutdatedRunError, match=r"results.jsonl: round 0 has no per-problem .*--no-resume"):
        loop.finished_rows(_cfg(), run)


# ---------------------------------------------------------------- files a run did not write
@pytest.mark.parametrize("resume", [True, False])
def test_a_folder_without_config_json_is_refused_and_left_as_it_was(tmp_path, monkeypatch, capsys,
                                                                    resume):
    """Results and lists without a config.json are not a run's: the loop neither resumes there
    nor deletes them (with ``--no-resume`` neither), and says which folder and what to do."""
    def no_model(self):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(loop._Run, "load_initial", no_model)
    run = tmp_path / "run"  # a run's files, its config.json gone
    (run / "ckpt_iter1").mkdir(parents=True)
    (run / "ckpt_iter2").mkdir()
    (run / "results.jsonl").write_text('{"iteration": 0, "val_greedy": 0.5}\n')
    (run / "lists_iter1.jsonl").write_text('{"prompt": "p", "responses": ["a"], "rewards": [1]}\n')
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(loop.NotARunFolderError,
                       match=rf"{run} holds .*results\.jsonl.* but no config\.json.*another folder \(--out\)"):
        run_loop(_cfg(), run, resume=resume)
    with pytest.raises(loop.NotARunFolderError):
        run_locked(_cfg(), run, resume=resume)
    argv = ["loop", "--preset", "smoke", "--out", str(run)] + ([] if resume else ["--no-resume"])
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{run} holds" in err and "no config.json" in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    assert (run / "ckpt_iter1").is_dir() and (run / "ckpt_iter2").is_dir()


def test_another_folders_lists_are_not_deleted_by_no_resume(tmp_path, monkeypatch):
    """``--out`` pointed by mistake at a folder of lists (no run there): nothing is deleted."""
    def no_model(self):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(loop._Run, "load_initial", no_model)
    folder = tmp_path / "my_lists"
    folder.mkdir()
    (folder / "lists_iter1.jsonl").write_text('{"prompt": "p", "responses": ["a"], "rewards": [1]}\n')
    with pytest.raises(loop.NotARunFolderError, match=r"lists_iter1\.jsonl but no config\.json"):
        run_loop(_cfg(), folder, resume=False)
    assert (folder / "lists_iter1.jsonl").is_file()
