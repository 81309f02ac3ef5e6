"""The LARPO loop: configuration errors, skipped prompts, and resume after a real kill."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from larpo_lite.config import Params
from larpo_lite.loop import (
    LoopConfig,
    iterative_dpo_config,
    offline_config,
    read_results,
    run_loop,
    unrelated_instructions,
)

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(model_name="tiny-random", device="cpu", dtype="float32", batch_size=16, iterations=2,
            prompts_per_iter=4, k=4, max_new_tokens=8, lr=1e-3, epochs=1, lists_per_step=2,
            lora_r=4, n_val=2, n_test=2, eval_samples=2, show_progress=False)


@pytest.mark.parametrize(("key", "value", "valid"), [
    ("objective", "ranknet", "listmle"), ("negative_tier", "tier5", "incorrect_low_t"),
    ("memory", "forever", "previous"), ("reference", "sft", "behaviour"),
    ("strategy", "top3", "top2_bottom2"),
])
def test_bad_names_list_the_valid_ones(key, value, valid):
    with pytest.raises(ValueError, match=valid):
        LoopConfig(**{key: value}).validate()


def test_tiers_train_pairwise_and_mixes_need_enough_samples():
    with pytest.raises(ValueError, match="pairwise"):
        LoopConfig(negative_tier="other_prompt", objective="listmle").validate()
    with pytest.raises(ValueError, match="fewer than"):
        LoopConfig(k=1, temperatures=[1.0, 0.5]).validate()


def test_from_params_and_baselines():
    cfg = LoopConfig.from_params(Params.load("smoke"), objective="lambdarank")
    assert (cfg.model_name, cfg.prompts_per_iter, cfg.objective) == ("tiny-random", 4, "lambdarank")
    off = offline_config(cfg)
    assert (off.iterations, off.prompts_per_iter, off.objective) == (1, 2 * 4, "pairwise")
    it = iterative_dpo_config(cfg)
    assert (it.k, it.memory, it.strategy) == (2, "current", "best_worst")


def test_unrelated_instructions_are_not_math():
    texts = unrelated_instructions()
    assert len(texts) >= 32 and len(set(texts)) == len(texts)
    assert not any(ch.isdigit() for t in texts for ch in t)


def test_prompts_without_a_correct_response_are_skipped_and_counted(tmp_path):
    # tiny-random never answers right: every prompt is skipped, nothing crashes, no NaN
    rows = run_loop(LoopConfig(**{**TINY, "iterations": 1}), tmp_path / "run")
    assert [r["iteration"] for r in rows] == [0, 1]
    assert rows[1]["skipped_prompts"] == 4 and rows[1]["train_lists"] == 0
    assert rows[1]["reference"] == "initial" and "note" in rows[1]
    assert (tmp_path / "run" / "ckpt_iter1").is_dir()


def test_a_different_config_in_the_same_folder_is_an_error(tmp_path):
    cfg = LoopConfig(**{**TINY, "iterations": 1, "gold_in_list": True})
    run_loop(cfg, tmp_path)
    with pytest.raises(ValueError, match="different config"):
        run_loop(LoopConfig(**{**TINY, "iterations": 1, "gold_in_list": True, "lr": 0.5}), tmp_path)


def _numbers(rows):
    drop = ("seconds", "train_seconds")
    return [{k: v for k, v in r.items() if k not in drop} for r in rows]


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_numbers(tmp_path):
    cmd = [sys.executable, "-m", "larpo_lite.cli", "loop", "--preset", "smoke",
           "--objective", "listmle", "--memory", "all", "--iterations", "3"]
    env = {**os.environ, "CI": "1", "OMP_NUM_THREADS": "1"}
    # uninterrupted
    subprocess.run([*cmd, "--out", str(tmp_path / "full")], env=env, check=True,
                   capture_output=True, timeout=600)
    full = read_results(tmp_path / "full")
    assert [r["iteration"] for r in full] == [0, 1, 2, 3]
    # killed with SIGKILL as soon as iteration 1 is on disk, then resumed
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "--out", str(run_dir)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if len(read_results(run_dir)) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = read_results(run_dir)
    assert 2 <= len(partial) < 4
    out = subprocess.run([*cmd, "--out", str(run_dir)], env=env, check=True,
                         capture_output=True, text=True, timeout=600)
    assert "results in" in out.stdout
    resumed = read_results(run_dir)
    assert _numbers(resumed) == _numbers(full)
    assert any(r.get("train_steps") for r in resumed)  # it trained, so the check means something
    lists = [json.loads(x) for x in Path(run_dir, "lists_iter3.jsonl").read_text().splitlines()]
    assert lists and all(len(x["responses"]) == 4 for x in lists)


def test_run_shared_waits_for_a_run_in_progress(tmp_path, monkeypatch):
    # two notebooks side by side needing the same run: the second waits on the folder's lock
    import fcntl
    import threading

    from larpo_lite import loop

    folder = tmp_path / "loop" / "pairwise-x"
    monkeypatch.setattr(loop, "run_dir", lambda cfg, preset: folder)
    folder.parent.mkdir(parents=True)
    cfg = LoopConfig(**{**TINY, "iterations": 1})
    got = {}
    with open(folder.with_name(folder.name + ".lock"), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        t = threading.Thread(target=lambda: got.update(rows=loop.run_shared(cfg, "any")))
        t.start()
        t.join(timeout=1.0)
        assert t.is_alive() and not (folder / "results.jsonl").exists()
        fcntl.flock(held, fcntl.LOCK_UN)
    t.join(timeout=300)
    assert [r["iteration"] for r in got["rows"]] == [0, 1]
    assert loop.run_shared(cfg, "any") == got["rows"]  # finished: read back, not rerun


@pytest.mark.slow
def test_two_processes_run_the_loop_once(tmp_path):
    """``accelerate launch`` with 2 CPU processes (torchrun + gloo): the main process samples,
    ranks, evaluates and writes; both train on every round's lists. Same samples and lists as
    one process, losses within DDP rounding, and one set of files."""
    import socket

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1", "CI": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    script = str(root / "tests" / "_accel_loop.py")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run([sys.executable, script, str(one)], cwd=root, env=env, check=True,
                   capture_output=True, timeout=600)
    proc = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
                           "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                           "--dynamo_backend", "no", "--main_process_port", str(port), script, str(two)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = read_results(one), read_results(two)
    assert [r["iteration"] for r in b] == [0, 1, 2]
    assert [r["train_processes"] for r in b[1:]] == [2, 2]  # as the trainer's accelerator saw it
    assert [r["train_processes"] for r in a[1:]] == [1, 1]
    for s in (1, 2):  # the same lists (round 2 is sampled by the policy trained in round 1)
        assert (one / f"lists_iter{s}.jsonl").read_text() == (two / f"lists_iter{s}.jsonl").read_text()
    # losses relative (measured 1 vs 2 processes: 1.0e-7; the trainer's own test 1.4e-6); the
    # lists are texts sampled by policies that differ by that rounding (equal when measured)
    for ra, rb in zip(a[1:], b[1:], strict=True):
        assert ra["train_steps"] == rb["train_steps"] > 0
        assert rb["loss_first"] == pytest.approx(ra["loss_first"], rel=1e-4)
        assert rb["loss_last"] == pytest.approx(ra["loss_last"], rel=1e-3)
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())


def test_the_sampler_copies_the_policy_only_to_change_its_dtype(tmp_path):
    """A bf16 LoRA policy (gpu-7b) samples as it is; an fp32 policy sampling in bf16 gets a copy."""
    from larpo_lite.loop import _Run

    for dtype, train, copied in (("float32", "float32", False), ("bfloat16", "bfloat16", False),
                                 ("bfloat16", "float32", True)):
        cfg = LoopConfig(model_name="tiny-random", device="cpu", dtype=dtype, train_dtype=train,
                         n_val=0, n_test=1)
        run = _Run(cfg, tmp_path)
        run.model, run.tok = run.load_initial()
        sampler = run.sampler(run.model)
        assert (sampler.model is not run.model) == copied
        assert str(next(sampler.model.parameters()).dtype) == f"torch.{dtype}"


def test_rows_record_each_problems_score_in_order(tmp_path, monkeypatch):
    """Per-problem greedy correctness (problem order) in every row, for paired comparisons;
    a stand-in verifier calls answers right on problems with an even gold answer."""
    from larpo_lite import cache, evaluate
    from larpo_lite.loop import per_problem
    from larpo_lite.tasks import load_task

    monkeypatch.setattr(evaluate, "is_correct", lambda text, gold: int(gold) % 2 == 0)
    (tmp_path / "cache").mkdir()  # a private cache: these verdicts must not be reused elsewhere
    monkeypatch.setattr(cache, "cache_root", lambda: tmp_path / "cache")
    cfg = LoopConfig(**{**TINY, "iterations": 1, "gold_in_list": True, "n_val": 6, "n_test": 5,
                        "eval_samples": 0})
    rows = run_loop(cfg, tmp_path / "run")
    for split, name, n in (("val", "validation", 6), ("test", "test", 5)):
        want = "".join("1" if int(p.answer) % 2 == 0 else "0" for p in load_task("mini_gsm", name, n))
        assert "0" in want and "1" in want  # the check can tell problems apart
        for r in rows:
            assert r[f"{split}_correct"] == want
            assert per_problem(r, split).tolist() == [float(c) for c in want]
            assert r[f"{split}_greedy"] == pytest.approx(want.count("1") / n)
            assert 0 < r[f"{split}_tokens"] <= TINY["max_new_tokens"]
    with pytest.raises(KeyError, match="no per-problem scores"):
        per_problem({"iteration": 0, "val_greedy": 0.5})


def test_a_validation_run_never_reads_the_test_split(tmp_path, monkeypatch):
    from larpo_lite.tasks import mini_gsm

    real = mini_gsm.load_split

    def no_test(split, n=None):
        assert split != "test", "the test split was read"
        return real(split, n)

    monkeypatch.setattr(mini_gsm, "load_split", no_test)
    cfg = LoopConfig(**{**TINY, "iterations": 1, "gold_in_list": True, "n_val": 3,
                        "eval_split": "validation"})
    rows = run_loop(cfg, tmp_path / "run")
    assert len(rows[1]["val_correct"]) == 3 and "val_pass@2" in rows[0] and "val_pass@2" in rows[1]
    assert not any(k.startswith("test_") for r in rows for k in r)
    with pytest.raises(ValueError, match="n_val"):
        LoopConfig(eval_split="validation", n_val=0).validate()
    with pytest.raises(ValueError, match="validation"):
        LoopConfig(eval_split="train").validate()


def test_new_settings_keep_old_run_folders():
    """eval_split and instruction at their defaults are left out of the config (and so of
    run_dir's hash): runs made before they existed keep their folders."""
    d = LoopConfig().to_dict()
    assert "eval_split" not in d and "instruction" not in d
    d = LoopConfig(eval_split="validation", instruction="Be brief.").to_dict()
    assert (d["eval_split"], d["instruction"]) == ("validation", "Be brief.")


def test_a_new_verifier_version_gives_new_run_folders(monkeypatch):
    """The verifier's version joins the config only when it is not 1: today's runs keep their
    folders (the default config's hash is pinned), and a verifier that reads answers
    differently runs again in new ones."""
    from larpo_lite import loop
    from larpo_lite.tasks import answers

    cfg = LoopConfig()
    d, folder = cfg.to_dict(), loop.run_dir(cfg, "p")
    assert "verifier_version" not in d and folder.name == "pairwise-6ac6c35175"
    monkeypatch.setattr(answers, "VERIFIER_VERSION", 2)
    assert cfg.to_dict() == {**d, "verifier_version": 2}
    assert loop.run_dir(cfg, "p") != folder
    assert LoopConfig.from_dict(cfg.to_dict()) == cfg  # config.json reads back


def test_algorithm_1_reads_as_the_papers_pseudo_code():
    """07 shows ``algorithm_1`` beside the paper's Algorithm 1: one short function, its steps
    in the paper's order; the bookkeeping lives in other modules."""
    import inspect
    import re

    from larpo_lite import loop

    source = inspect.getsource(loop.algorithm_1)
    assert len(source.splitlines()) <= 25
    steps = re.findall(r"run\.(\w+)\(", source)
    assert steps == ["sample", "rank", "select", "merge", "train", "evaluate"]
    assert len(inspect.getsource(loop).splitlines()) <= 600


def test_the_instruction_setting_changes_every_prompt_of_the_run(tmp_path):
    from larpo_lite.tasks import prompts

    before = prompts.INSTRUCTION
    text = "Reply with the number only, after '####'."
    cfg = LoopConfig(**{**TINY, "iterations": 1, "eval_samples": 0, "instruction": text})
    run_loop(cfg, tmp_path / "run")
    assert prompts.INSTRUCTION == before  # restored after the run
    cands = [json.loads(x) for x in (tmp_path / "run" / "candidates_iter1_T0.7.jsonl").read_text().splitlines()]
    assert cands and all(text in c["prompt"] and before not in c["prompt"] for c in cands)


def test_a_run_can_start_from_the_sft_policy(tmp_path):
    """``start: sft``: round 0 is the policy after SFT on the worked solutions (trained once,
    shared by runs of the same SFT settings); the plain start's folder names do not change."""
    import dataclasses

    plain = LoopConfig(**{**TINY, "iterations": 1, "eval_samples": 0})
    assert "start" not in plain.to_dict() and "sft_lr" not in plain.to_dict()
    cfg = dataclasses.replace(plain, start="sft", sft_lr=5e-2, sft_epochs=1, gold_in_list=True)
    assert cfg.to_dict()["start"] == "sft"
    rows = run_loop(cfg, tmp_path / "loop" / "a")
    assert rows[0]["sft_steps"] > 0 and rows[0]["sft_loss_first"] > rows[0]["sft_loss_last"]
    assert len(rows[0]["sft_losses"]) == rows[0]["sft_steps"]  # per optimizer step
    shared = [p for p in (tmp_path / "sft").glob("sft-*") if p.is_dir()]
    assert len(shared) == 1 and (shared[0] / "adapter_config.json").is_file()
    written = (shared[0] / "adapter_config.json").stat().st_mtime_ns
    # a second run with the same SFT settings loads it (not trained again): the same round 0,
    # with the statistics of the training that made it
    again = run_loop(dataclasses.replace(cfg, lr=1e-3), tmp_path / "loop" / "b")
    assert (shared[0] / "adapter_config.json").stat().st_mtime_ns == written
    assert again[0]["val_correct"] == rows[0]["val_correct"]
    assert again[0]["sft_losses"] == rows[0]["sft_losses"]
    with pytest.raises(ValueError, match="unknown start"):
        dataclasses.replace(plain, start="dpo").validate()


def test_recall_after_a_run_is_a_pass_at_n_curve_of_its_trained_policy(tmp_path, monkeypatch):
    from larpo_lite import metrics
    from larpo_lite.loop import recall_after

    monkeypatch.setenv("LARPO_LITE_RUNS", str(tmp_path / "runs"))
    cfg = LoopConfig(**{**TINY, "iterations": 1, "n_test": 3})
    run_loop(cfg, tmp_path / "run")
    calls = []
    real = metrics.per_problem_recall
    monkeypatch.setattr("larpo_lite.loop.per_problem_recall",
                        lambda c, grid: calls.append(c.shape) or real(c, grid))
    got = recall_after(cfg, tmp_path / "run", n_problems=2, n_samples=4, n_grid=[1, 2, 4],
                       temperature=1.0)
    assert set(got) == {1, 2, 4} and all(len(v) == 2 and all(0.0 <= x <= 1.0 for x in v)
                                          for v in got.values())
    assert calls == [(2, 4)]  # 2 problems x 4 samples each
    with pytest.raises(ValueError, match="pass@8 needs at least"):
        recall_after(cfg, tmp_path / "run", 2, 4, [1, 8], 1.0)
