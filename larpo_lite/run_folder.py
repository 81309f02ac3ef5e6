"""A loop run's folder: its files, written whole and checked on resume; the lock that keeps two
commands off the same run; training reuse across a preset's runs. :mod:`larpo_lite.loop` runs
Algorithm 1 and leaves this bookkeeping here (introduced in notebooks/07_larpo_loop).

Files of a run (``out_dir``): ``config.json`` (:meth:`LoopConfig.to_dict`, written before
anything else); ``results.jsonl`` (one row per round, row 0 the initial policy);
``candidates_iter{s}_T{t}.jsonl`` (``datasets.load_dataset("json", ...)`` reads them);
``lists_iter{s}.jsonl``; ``ckpt_iter{s}/``. Files are written under a temporary name and
renamed (:func:`write_atomic`), so a killed run leaves whole files or none.

Resume. A run killed at any point resumes from its last finished round and ends with the same
numbers as an uninterrupted one (:func:`rows_to_resume`, :func:`prepare_folder`: the lists of
an unfinished round are sampled again). Each row records the sha256 of the lists and candidates
files its round wrote (``sha256``) and the number of lists (``lists``): a resume refuses files
that changed since, naming them (:func:`check_round_files`). A finished run is read back
without writing anything, so a read-only copy works (:func:`finished_rows`). A folder holding a
run's files but no ``config.json`` was not written by a loop run: it is refused, never resumed
or deleted (:class:`NotARunFolderError`).

Locks. ``larpo_lite.loop.run_locked`` (the ``larpo-lite loop`` command) and ``run_shared`` hold
:func:`folder_lock` while there is work to do, so two commands never do the same run twice.
Runs started with ``run_shared`` live in a folder named by a hash of their config
(``larpo_lite.loop.run_dir``), so notebooks share identical runs; delete ``runs/<preset>/loop``
after changing the code.

Training reuse. :func:`training_key` names a round's training (training settings, starting
policy, device, processes, lists); a round whose key another run of the preset has trained
copies that run's checkpoint (:func:`reuse_training`) instead of training again.

Several processes (``accelerate launch``, ``WORLD_SIZE`` > 1): only the main one
(:func:`is_main`) writes; the others wait for its files (:func:`wait_for`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import LarpoLiteError
from .evaluate import CandidateSet
from .jsonl import CorruptFileError, read_jsonl
from .loop_config import LoopConfig
from .progress import waiting
from .trainer import RankedList


class OutdatedRunError(LarpoLiteError):
    """A run folder written before the loop recorded per-problem scores: it cannot be compared
    paired, so it is refused rather than read back."""


class NotARunFolderError(LarpoLiteError):
    """A folder holding files a loop run writes (results, lists, checkpoints) but no
    ``config.json``: not a run's folder, so nothing there is resumed, replaced or deleted."""


class RunInUseError(LarpoLiteError):
    """Another command holds the lock of a run folder, and this one may not wait for it."""


# ---------------------------------------------------------------- processes
def world() -> int:
    """The number of processes running the loop together (``WORLD_SIZE``)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """Whether this is the process that samples, ranks, evaluates and writes."""
    return int(os.environ.get("RANK", "0")) == 0


def wait_for(path: Path, what: str, poll: float = 1.0) -> None:
    """A non-main process waits for the main one to write ``path`` (a file, not a collective:
    sampling a round at 7B can outlast a process group's barrier timeout). If the main process
    dies, the launcher ends this one too."""
    t0 = report = time.perf_counter()
    while not path.exists():
        time.sleep(poll)
        if time.perf_counter() - report > 1800:
            report = time.perf_counter()
            print(f"[rank {os.environ.get('RANK')}] waiting for {what} ({path}) for "
                  f"{(report - t0) / 60:.0f} min", flush=True)


# ---------------------------------------------------------------- files
def write_atomic(path: Path, text: str) -> None:
    """``text`` into ``path`` whole: written under a temporary name beside it, then renamed."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


def write_results(out: Path, rows: list[dict[str, Any]]) -> None:
    """``results.jsonl``: one row per finished round."""
    write_atomic(out / "results.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def save_checkpoint(ck: Path, save: Callable[[Path], None]) -> None:
    """A checkpoint folder written whole: ``save(folder)`` fills a temporary folder beside
    ``ck``, which then replaces ``ck``."""
    tmp = ck.with_name(f".{ck.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    save(tmp)
    if ck.exists():
        shutil.rmtree(ck)
    tmp.replace(ck)


def write_lists(path: Path, items: list[RankedList]) -> None:
    write_atomic(path, "".join(json.dumps({"prompt": x.prompt, "responses": x.responses,
                                           "rewards": x.rewards,
                                           **({"truncated": x.truncated} if x.truncated else {})})
                               + "\n" for x in items))


def start_over(out: Path) -> str:
    """What to do about a run folder whose files are damaged or changed."""
    return f"start over with --no-resume (resume=False), or delete {out}"


def read_lists(path: Path) -> list[RankedList]:
    rows = read_jsonl(path, required=("prompt", "responses", "rewards"),
                      remedy=start_over(path.parent))
    return [RankedList(r["prompt"], r["responses"], r["rewards"], r.get("truncated"))
            for r in rows]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_results(out_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``results.jsonl`` (row 0: the initial policy), [] if none yet.

    Raises:
        CorruptFileError: a damaged line, named with its file and line number."""
    path = Path(out_dir) / "results.jsonl"
    if not path.is_file():
        return []
    return read_jsonl(path, required=("iteration",), remedy=start_over(path.parent))


def per_problem_fields(split: str, got: CandidateSet) -> dict[str, Any]:
    """The per-problem scores of one greedy evaluation (``got``: k=1 per problem), compact:
    ``{split}_correct`` a string of ``0``/``1`` (verifier) or ``{split}_rewards`` a list of
    floats (reward model); and ``{split}_tokens``, the greedy answers' mean length."""
    out: dict[str, Any] = {f"{split}_tokens": got.mean_tokens()}
    if got.rewards is None:
        out[f"{split}_correct"] = "".join("1" if c else "0" for c in got.correct[:, 0])
    else:
        out[f"{split}_rewards"] = [float(r) for r in got.rewards[:, 0]]
    return out


def per_problem(row: dict[str, Any], split: str = "val") -> np.ndarray:
    """A results row's per-problem greedy scores on ``split`` ("val" or "test"): float
    ``[P]``, 0/1 correctness or rewards, problems in the split's order (for
    :func:`larpo_lite.metrics.paired_stats` between two rows on the same problems).

    Raises:
        KeyError: the row has no per-problem scores for ``split`` (an older results file, or
            a split the run did not evaluate)."""
    if f"{split}_correct" in row:
        return np.array([c == "1" for c in row[f"{split}_correct"]], dtype=np.float64)
    if f"{split}_rewards" in row:
        return np.asarray(row[f"{split}_rewards"], dtype=np.float64)
    raise KeyError(f"round {row.get('iteration')} has no per-problem scores on {split!r}")


# ---------------------------------------------------------------- resume
def last_round(cfg: LoopConfig, stop_after: int | None) -> int:
    """The last round a call runs: ``stop_after`` (None: all ``cfg.iterations``)."""
    return cfg.iterations if stop_after is None else min(stop_after, cfg.iterations)


# What a loop run writes in its folder, after its config.json (written first, before anything
# else, so a folder that holds these without a config.json was not written by a loop run).
_RUN_FILES = ("results.jsonl", "lists_iter*.jsonl", "candidates_iter*.jsonl", "ckpt_iter*")


def refuse_foreign_files(out: Path) -> list[dict[str, Any]]:
    """[] when ``out`` may hold a new run: it has a ``config.json`` (a run's folder: starting
    over there discards that run's own files), or none of the files a run writes.

    Raises:
        NotARunFolderError: ``out`` holds results, lists, candidates or checkpoints but no
            ``config.json``; a run would delete or mix with them, so none starts there."""
    if (out / "config.json").is_file() or not out.is_dir():
        return []
    found = sorted({p.name for pattern in _RUN_FILES for p in out.glob(pattern)})
    if found:
        shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
        raise NotARunFolderError(
            f"{out} holds {shown} but no config.json: these are not files of a loop run (or its "
            "config.json was deleted), so the loop neither resumes nor deletes them; give the run "
            f"another folder (--out), or move those files out of {out} (delete them if they are "
            "not needed)")
    return []


def rows_to_resume(cfg: LoopConfig, out: Path) -> list[dict[str, Any]]:
    """The rows of the run in ``out`` (read only); [] if it has none. A different config there
    is an error, and so are a run's files without a config (:func:`refuse_foreign_files`)."""
    conf_path = out / "config.json"
    if not conf_path.is_file():
        return refuse_foreign_files(out)
    try:
        old = json.loads(conf_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptFileError(conf_path, None, f"corrupt JSON ({e})", start_over(out)) from None
    conf = cfg.to_dict()
    if old != conf:
        diff = {k: (old.get(k), v) for k, v in conf.items() if old.get(k) != v}
        raise ValueError(f"{out} holds a run with a different config {diff}; use another "
                         "folder or resume=False")
    rows = read_results(out)
    for row in rows:
        for split in ("val", "test"):
            if (f"{split}_greedy" in row and f"{split}_correct" not in row
                    and f"{split}_rewards" not in row):
                raise OutdatedRunError(
                    f"{out / 'results.jsonl'}: round {row['iteration']} has no per-problem "
                    f"scores on {split!r} (written by an earlier larpo-lite, before paired "
                    f"comparisons); {start_over(out)}")
    return rows


def finished_rows(cfg: LoopConfig, out_dir: str | Path,
                  stop_after: int | None = None) -> list[dict[str, Any]] | None:
    """The rows of a run in ``out_dir`` that has finished (up to ``stop_after``), read without
    writing anything or taking a lock; None when there is work left (or no run yet).

    Raises:
        ValueError: the folder holds a run with another config, or a damaged file."""
    cfg.validate()
    rows = rows_to_resume(cfg, Path(out_dir))
    return rows if rows and rows[-1]["iteration"] >= last_round(cfg, stop_after) else None


def check_round_files(out_dir: str | Path, rows: list[dict[str, Any]]) -> None:
    """Refuse to resume on files that are not those the finished rounds wrote.

    Each round's row records the sha256 of its lists and candidates files (``sha256``) and the
    number of lists (``lists``); rows written before hashes were recorded are checked by
    their number of lists only.

    Raises:
        CorruptFileError: naming the missing or changed file and what to do."""
    out = Path(out_dir)
    remedy = f"the folder changed after the run wrote it: {start_over(out)}"
    for r in rows:
        s = r["iteration"]
        if s < 1:
            continue
        recorded = r.get("sha256")
        if recorded is None:  # an older results file: the number of lists is all it recorded
            lists_path = out / f"lists_iter{s}.jsonl"
            if not lists_path.is_file():
                raise CorruptFileError(lists_path, None, f"missing (round {s} wrote it)", remedy)
            n = len(read_lists(lists_path))
            if "lists" in r and n != r["lists"]:
                raise CorruptFileError(lists_path, None, f"{n} lists where round {s} wrote "
                                       f"{r['lists']} (results.jsonl)", remedy)
            continue
        for name, digest in recorded.items():
            path = out / name
            if not path.is_file():
                raise CorruptFileError(path, None, f"missing (round {s} wrote it)", remedy)
            if sha256(path) != digest:
                raise CorruptFileError(path, None, f"differs from the file round {s} wrote (its "
                                       "sha256 is recorded in results.jsonl)", remedy)


def prepare_folder(cfg: LoopConfig, out: Path, rows: list[dict[str, Any]]) -> None:
    """Make ``out`` ready for the rounds after ``rows`` (its finished ones): their files checked
    (:func:`check_round_files`), ``config.json`` written (unless it holds this config), the
    ``results.jsonl`` of a run started over removed, and the lists of unfinished rounds (a
    killed run's: those rounds are sampled again). Under several processes every one has read
    ``rows`` before the main one changes anything, and none goes on before it has."""
    check_round_files(out, rows)
    out.mkdir(parents=True, exist_ok=True)
    state = None
    if world() > 1:
        import torch
        from accelerate import PartialState

        from .models import pick_device

        state = PartialState(cpu=pick_device(cfg.device).type == "cpu" and not torch.cuda.is_available())
        state.wait_for_everyone()
    if is_main():
        conf_path, conf_text = out / "config.json", json.dumps(cfg.to_dict(), indent=1)
        if not rows and (out / "results.jsonl").exists():
            (out / "results.jsonl").unlink()
        if not (conf_path.is_file() and conf_path.read_text() == conf_text):
            write_atomic(conf_path, conf_text)
        done = sum(r["iteration"] > 0 for r in rows)
        for s in range(done + 1, cfg.iterations + 1):
            (out / f"lists_iter{s}.jsonl").unlink(missing_ok=True)
    if state is not None:
        state.wait_for_everyone()


# ---------------------------------------------------------------- one command per folder
@contextlib.contextmanager
def folder_lock(out: Path, resume: bool) -> Iterator[None]:
    """An exclusive lock on the run folder ``out`` (``<folder>.lock`` beside it) while the block
    runs. When another command holds it, this one says so and waits (the block then reads back
    or resumes what the other left); with ``resume=False`` it refuses instead
    (:class:`RunInUseError`): starting over would discard the other command's work while it
    runs. Under ``accelerate launch`` only the main process takes the lock."""
    import fcntl

    if not is_main():
        yield
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    lock_path = out.with_name(out.name + ".lock")
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not resume:
                raise RunInUseError(f"{out} is in use by another run (it holds {lock_path}): wait "
                                    "for it to finish or stop it before starting over") from None
            waiting(f"{out} is in use by another run (it holds {lock_path}); waiting for it "
                    "to finish")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# ---------------------------------------------------------------- training reuse
RUN_KINDS = ("loop", "tune")  # the folders of a preset's runs: runs/<preset>/<kind>/<run>
# per optimizer step, beside the losses: a round's row holds each as a list named "<key>s"
# (``margins``, ``chosen_logps``, ...; the trainer's per-step log, trainer.TrainResult.logs)
STEP_LOGS = ("margin", "chosen_logp", "rejected_logp", "chosen_ref_logp", "rejected_ref_logp")
REUSED_STATS = ("train_steps", "loss_first", "loss_last", "losses", "ranking_accuracy_last",
                "train_seconds", "train_processes", *(f"{k}s" for k in STEP_LOGS))

# LoopConfig fields that change what a round's training does to the policy, given its lists
# (sampling, ranking and list settings reach training only through the lists, which the key
# hashes; the number of rounds and the evaluation settings do not reach it at all).
TRAINING_FIELDS = ("model_name", "objective", "reference", "beta", "lr", "epochs", "lists_per_step",
                   "lora_r", "train_dtype", "grad_accum", "seed")


def training_key(cfg: LoopConfig, s: int, data: list[RankedList], previous: str, device: str,
                 world: int = 1) -> str:
    """The sha256 naming one round's training: the training settings, the round (it seeds the
    shuffle), the policy it starts from (``previous``: the key of the round before, or
    ``"initial"``), the device type, the number of processes and every list trained on. Two
    runs whose round ``s`` has the same key train the same policy."""
    conf = cfg.to_dict()
    payload = {"train": {f: conf[f] for f in TRAINING_FIELDS}, "round": s, "previous": previous,
               "device": device, "world": world, "lists": [dataclasses.asdict(x) for x in data]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _row_key(folder: Path, row: dict[str, Any], device: str) -> str | None:
    """The training key of a finished round of another run: recorded (``train_key``), or, for a
    first round recorded before keys were, computed from its config and lists file."""
    if row.get("train_key"):
        return row["train_key"]
    if row.get("iteration") != 1 or "train_steps" not in row or row.get("train_processes", 1) != 1:
        return None
    try:
        other = LoopConfig.from_dict(json.loads((folder / "config.json").read_text()))
        data = read_lists(folder / "lists_iter1.jsonl")
    except (OSError, TypeError, ValueError, LarpoLiteError):
        return None
    return training_key(other, 1, data, "initial", device)


def find_trained(key: str, root: Path, exclude: Path | None = None,
                 device: str = "cpu") -> tuple[Path, dict[str, Any]] | None:
    """A finished round of a run folder under ``root`` (``<root>/*/*/results.jsonl``: the loop and
    tune runs of a preset) whose training has ``key``, with its checkpoint on disk:
    ``(checkpoint folder, its results row)``; None if there is none."""
    for results in sorted(p for kind in RUN_KINDS for p in root.glob(f"{kind}/*/results.jsonl")):
        folder = results.parent
        if exclude is not None and folder.resolve() == exclude.resolve():
            continue
        try:
            rows = read_results(folder)
        except (OSError, ValueError, LarpoLiteError):  # a cut or foreign file: not a match
            continue
        for row in rows:
            ck = folder / f"ckpt_iter{row.get('iteration')}"
            if row.get("iteration", 0) > 0 and ck.is_dir() and _row_key(folder, row, device) == key:
                return ck, row
    return None


def reuse_training(out: Path, s: int, key: str, device: str) -> dict[str, Any] | None:
    """Round ``s`` of the run in ``out`` trained by another run of its preset (same ``key``,
    :func:`find_trained`; only among ``runs/<preset>/{loop,tune}/...``, one process): that
    run's checkpoint copied to ``ckpt_iter{s}``, and the row fields that say where it came
    from (``train_reused_from``) with the original's training statistics; None if none."""
    if out.parent.name not in RUN_KINDS or world() != 1:
        return None
    found = find_trained(key, out.parent.parent, exclude=out, device=device)
    if found is None:
        return None
    src, row = found
    save_checkpoint(out / f"ckpt_iter{s}", lambda tmp: shutil.copytree(src, tmp))
    try:
        where = str(src.parent.relative_to(out.parent.parent))
    except ValueError:
        where = str(src.parent)
    return {"train_reused_from": f"{where} round {row['iteration']}",
            **{k: row[k] for k in REUSED_STATS if k in row}}
