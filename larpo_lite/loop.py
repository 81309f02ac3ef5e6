"""The LARPO loop (Algorithm 1 of the paper): sample -> rank -> select -> merge -> train -> evaluate.

Introduced in notebooks/07_larpo_loop, which shows :func:`algorithm_1` beside the paper's
pseudo-code; notebooks/05_hard_negatives and notebooks/06_candidate_lists run variants of it.

:func:`algorithm_1` is the loop as the paper writes it, one line per step; ``_Run`` holds its
state (the policy, the lists of earlier rounds, the results rows) and does each step. Round
``s = 1..T``:

1. sample: the behaviour policy (the current one) samples ``k`` responses for ``M`` new training
   prompts (prompts ``(s-1)M .. sM-1`` of the train split), at one temperature or a mix (``k``
   split across them);
2. rank: the reranker (the task's verifier, or a reward model) orders each prompt's responses;
3. select: the lists of the objective's selection strategy (or the pairs of a hard-negative tier);
4. merge: with earlier rounds' lists (memorization: current / previous / all);
5. train: reference log-probs computed once (reference = the initial policy, or the behaviour
   policy; recorded in the results), then the policy trained on the merged lists, and a
   checkpoint written (LoRA: the round's adapters, merged into the policy afterwards; full
   fine-tuning: the whole model);
6. evaluate: greedy accuracy on validation and test (pass@N on test after the last round, and
   for the initial policy), with each problem's score recorded so two runs on the same problems
   compare paired (:func:`per_problem`); ``eval_split="validation"`` (tuning,
   :mod:`larpo_lite.tune`) evaluates on validation only and never loads the test split.

The bookkeeping lives elsewhere: the configuration in :mod:`larpo_lite.loop_config`; loading
the policy (or its SFT start), checkpoints and sampling in :mod:`larpo_lite.loop_policy`; the
run's files, their integrity hashes, resume, locks and training reuse in
:mod:`larpo_lite.run_folder` (read there what a run folder holds). The initial policy's samples
go through :mod:`larpo_lite.cache`, shared by every method.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import cache as cand_cache
from . import lists as L
from . import run_folder
from .evaluate import CandidateSet, sample_candidates, score_candidates
from .logprobs import ReferenceCache
from .loop_config import (  # noqa: F401  (re-exported: loop.LoopConfig, loop.REFERENCES, ...)
    DEFAULT_STRATEGY,
    EVAL_SPLITS,
    HIGH_T,
    REFERENCES,
    STARTS,
    LoopConfig,
    iterative_dpo_config,
    offline_config,
)
from .loop_policy import LoopPolicy, lora, sample_seed
from .metrics import per_problem_recall
from .progress import progress
from .rewards import reranker_for
from .run_folder import (  # noqa: F401  (re-exported: loop.read_results, loop.per_problem, ...)
    REUSED_STATS,
    RUN_KINDS,
    STEP_LOGS,
    TRAINING_FIELDS,
    NotARunFolderError,
    OutdatedRunError,
    RunInUseError,
    check_round_files,
    find_trained,
    finished_rows,
    per_problem,
    read_results,
    training_key,
)
from .tasks import Problem, has_verifier
from .trainer import RankedList, TrainConfig, balanced_lists_per_step, train_ranking


def algorithm_1(run: _Run, rounds: Iterable[int]) -> None:
    """LARPO's iterative loop (Algorithm 1 of the paper), one line per step, for ``rounds``
    (from 1: round 0 is the initial policy's evaluation; the paper counts ``s`` from 0).

    ``run`` holds the current policy, the lists of earlier rounds and the results; behind each
    call it writes the round's files, from which a killed run resumes, and under several
    processes shares the work (:mod:`larpo_lite.run_folder`)."""
    for s in rounds:                 # behaviour policy <- current policy
        samples = run.sample(s)      # for M new prompts x: y_1..y_k ~ policy(.|x) at t_s
        ranked = run.rank(samples)   # rank them with the reward model r -> Y_x
        D_s = run.select(s, ranked)  # D_s = {(x, Y_x)}: each prompt's candidate list
        D = run.merge(D_s)           # D = merge(D_1 .. D_s): candidate-list memorization
        run.train(s, D)              # train on D with L_rank(x, Y_x, pi_theta; reference)
        run.evaluate(s)              # next policy <- trained policy; its accuracy recorded


def run_loop(cfg: LoopConfig, out_dir: str | Path, resume: bool = True,
             stop_after: int | None = None, reuse: bool = True) -> list[dict[str, Any]]:
    """Run (or resume) the loop; returns the rows of ``results.jsonl``.

    Args:
        cfg: the run's :class:`LoopConfig`.
        out_dir: the run's folder. With ``resume`` and a ``config.json`` there, the run goes
            on from its last finished iteration (a different config is an error); without
            ``resume`` the folder's earlier results are discarded. A folder holding a run's
            files (results, lists, candidates, checkpoints) but no ``config.json`` is refused
            either way (:class:`NotARunFolderError`): nothing the run did not write is deleted.
        stop_after: stop after this iteration (for tests and budgets); None runs all.
        reuse: a round whose training another run of the same preset already did (same
            training settings, starting policy and lists: :func:`training_key`) loads that
            run's checkpoint instead of training again (``train_reused_from`` in its row). The
            tuning study's first rounds, 04's objectives and 07's first rounds share this way.

    Row 0 is the initial policy's evaluation; row ``s`` has the lists, training and
    evaluation of iteration ``s`` and ``reference`` records which reference was used.

    Under ``accelerate launch`` with several processes (``WORLD_SIZE`` > 1) only the main
    process samples, ranks, evaluates and writes files; the others wait for each round's
    lists file, then all train together (DDP: each process a share of every step's lists)
    and hold the same updated policy. ``train_processes`` in each row records how many trained.
    """
    cfg.validate()
    with _instruction(cfg.instruction):
        return _run_loop(cfg, Path(out_dir), resume, stop_after, reuse)


def _run_loop(cfg: LoopConfig, out: Path, resume: bool, stop_after: int | None,
              reuse: bool = True) -> list[dict[str, Any]]:
    last = run_folder.last_round(cfg, stop_after)
    rows = run_folder.rows_to_resume(cfg, out) if resume else run_folder.refuse_foreign_files(out)
    if rows and rows[-1]["iteration"] >= last:  # finished already: nothing to load or write
        return rows
    run_folder.prepare_folder(cfg, out, rows)
    run = _Run(cfg, out)
    run.resume(rows, reuse)
    algorithm_1(run, range(len(run.history) + 1, last + 1))
    return run.finish(last)


@dataclass
class _Samples:
    """One round's samples (step 1): per temperature, ``k_t`` responses to each prompt."""

    problems: list[Problem]
    sets: list[tuple[float, CandidateSet]]  # (temperature, [M, k_t] responses)
    unrelated: list[str] = field(default_factory=list)  # tier (1)'s negatives
    unrelated_cut: set[str] = field(default_factory=set)  # those cut at max_new_tokens
    reward: float | None = None  # mean reward of the samples (tasks without a verifier)

    def cut(self) -> set[str]:
        """The responses cut at max_new_tokens (they train without an EOS, flagged)."""
        return self.unrelated_cut | {x for _, cs in self.sets for g in cs.generations
                                     for x, done in zip(g.texts, g.finished, strict=True) if not done}


# --------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def _instruction(text: str) -> Iterator[None]:
    """Math prompts ask with ``text`` (instead of ``tasks.INSTRUCTION``) while the block runs;
    "" changes nothing. Every prompt of a run goes through ``tasks.problem_prompt``, which
    reads the module's instruction, and the candidate cache keys on the prompt strings, so
    samples under one instruction are never reused under another. One run at a time per
    process (the instruction is the module's)."""
    if not text:
        yield
        return
    from .tasks import prompts

    old, prompts.INSTRUCTION = prompts.INSTRUCTION, text
    try:
        yield
    finally:
        prompts.INSTRUCTION = old


def unrelated_instructions(n: int | None = None) -> list[str]:
    """The committed non-math instructions (data/instructions), for hard-negative tier (1)."""
    from .paths import data_dir
    from .tasks.mini_gsm import read_jsonl

    rows = read_jsonl(data_dir() / "instructions" / "instructions.jsonl")
    texts = [r["instruction"] for r in rows]
    return texts if n is None else texts[:n]


def chat_prompt(text: str, tokenizer: Any) -> str:
    """A plain instruction in the model's chat template (generation prompt added)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)
    return f"Question: {text}\nAnswer:"


class _Run(LoopPolicy):
    """State of one loop run: the policy (:class:`LoopPolicy`), the lists of earlier rounds, the
    results rows. Each step of :func:`algorithm_1` is one method. Under several processes only
    the main one samples, ranks, evaluates and writes; the others read each round's lists from
    its file, then train together with it."""

    def __init__(self, cfg: LoopConfig, out_dir: Path) -> None:
        super().__init__(cfg, out_dir)
        self._reranker: Any = None
        self.main = run_folder.is_main()
        self.candidate_files: dict[int, list[Path]] = {}  # round -> the candidates files it wrote
        self.previous_key = "initial"  # the training key of the policy's last trained round
        self.reuse = True  # a round trained identically by another run is loaded, not retrained
        self.rows: list[dict[str, Any]] = []  # results.jsonl
        self.history: list[list[RankedList]] = []  # D_1 .. D_s, the lists of each round
        self.row: dict[str, Any] = {}  # the round in progress,
        self.info: dict[str, Any] = {}  # the counts of its samples and lists,
        self.samples: _Samples | None = None  # its samples
        self.t0 = 0.0
        self.bar: Any = None

    @property
    def reranker(self) -> Any:
        """Loaded on first use: under several processes only the main one ranks and scores."""
        if self._reranker is None:
            cfg = self.cfg
            self._reranker = reranker_for(cfg.reward_model, cfg.reranker, device=str(self.device),
                                          dtype=cfg.dtype)
        return self._reranker

    # ---- Algorithm 1, one method per step
    def sample(self, s: int) -> _Samples | None:
        """Step 1: ``k`` responses to each of round ``s``'s ``M`` prompts from the current policy,
        ``k`` split across ``temperatures`` (a hard-negative tier: ``k`` at ``temperatures[0]``
        and ``k`` at 1.0, and for tier (1) one answer to each of ``M`` non-math instructions).
        None in the processes other than the main one."""
        cfg, m = self.cfg, self.cfg.prompts_per_iter
        self.t0, self.samples = time.perf_counter(), None
        if not self.main:
            return None
        problems = self.train_problems[(s - 1) * m: s * m]
        if cfg.negative_tier is None:
            temps = list(zip(cfg.temperatures, L.split_k(cfg.k, cfg.temperatures), strict=True))
        else:  # the tier's low temperature, then 1.0 (once if they are the same)
            temps = [(t, cfg.k) for t in dict.fromkeys([cfg.temperatures[0], HIGH_T])]
        got = _Samples(problems, [(t, self.sample_set(s, problems, k, t)) for t, k in temps])
        if cfg.negative_tier == "unrelated":
            instr = unrelated_instructions()
            prompts = [chat_prompt(x, self.tok) for x in instr[:min(m, len(instr))]]
            gens = self.sampler(self.model).generate(
                prompts, k=1, temperature=cfg.temperatures[0], top_p=cfg.top_p,
                max_new_tokens=cfg.max_new_tokens, seed=sample_seed(cfg, s))
            got.unrelated = [g.texts[0] for g in gens]
            got.unrelated_cut = {g.texts[0] for g in gens if not g.finished[0]}
        self.samples = got
        return got

    def rank(self, got: _Samples | None) -> list[Any] | None:
        """Step 2: the reranker orders each prompt's responses, best first (with
        ``gold_in_list`` the worked solution joins them): ``lists.RankedCandidates`` per prompt.
        A hard-negative tier sorts them into correct and incorrect at each temperature instead
        (``lists.TierItem`` per prompt)."""
        if got is None:
            return None
        cfg = self.cfg
        gold = (lambda p: [p.solution]) if cfg.gold_in_list else (lambda p: [])
        if cfg.negative_tier is not None:
            low, high = got.sets[0][1], got.sets[-1][1]
            items = []
            for i, p in enumerate(got.problems):
                lo_t, lo_c = low.generations[i].texts, low.correct[i]
                hi_t, hi_c = high.generations[i].texts, high.correct[i]
                items.append(L.TierItem(
                    prompt=low.generations[i].prompt,
                    correct=[x for x, c in zip(lo_t + hi_t, list(lo_c) + list(hi_c), strict=True) if c]
                    + gold(p),
                    incorrect_high=[x for x, c in zip(hi_t, hi_c, strict=True) if not c],
                    incorrect_low=[x for x, c in zip(lo_t, lo_c, strict=True) if not c],
                    responses=lo_t + hi_t))
            return items
        ranked, sampled_scores = [], []
        for i, p in enumerate(got.problems):
            texts = [x for _, cs in got.sets for x in cs.generations[i].texts]
            n_sampled = len(texts)
            texts += gold(p)
            scores = self.reranker.score(texts, p.answer, prompt=p.question)
            sampled_scores.extend(scores[:n_sampled])
            ranked.append(L.rank_candidates(got.sets[0][1].generations[i].prompt, texts, scores))
        if not has_verifier(cfg.task):
            got.reward = float(sum(sampled_scores) / max(1, len(sampled_scores)))
        return ranked

    def select(self, s: int, ranked: list[Any] | None) -> list[RankedList]:
        """Step 3, D_s: each prompt's list by the objective's selection strategy
        (:func:`lists.select_counted`), or a hard-negative tier's pairs
        (:func:`lists.hard_negative_pairs`); responses cut at max_new_tokens flagged
        (``truncated``). Written to ``lists_iter{s}.jsonl``, with the round's samples
        (``candidates_iter{s}_T{t}.jsonl``); the other processes read the lists from there."""
        cfg, path = self.cfg, self.out / f"lists_iter{s}.jsonl"
        if not self.main:
            run_folder.wait_for(path, f"the lists of round {s}")
            self.info = {}
            return run_folder.read_lists(path)
        got, info = self.samples, {}
        assert got is not None and ranked is not None
        if cfg.negative_tier is None:
            items, counts = L.select_counted(ranked, cfg.selection, seed=cfg.seed * 1000 + s)
            skipped, info["shortened_lists"] = counts["skipped"], counts["shortened"]
            if got.reward is not None:
                info["sample_reward"] = got.reward
        else:
            items, skipped = L.hard_negative_pairs(ranked, cfg.negative_tier, got.unrelated,
                                                   seed=cfg.seed * 1000 + s)
        self.candidate_files[s] = [self.out / f"candidates_iter{s}_T{t}.jsonl" for t, _ in got.sets]
        for (_, cs), cand_path in zip(got.sets, self.candidate_files[s], strict=True):
            cand_cache.save_candidates(cs, cand_path)
        info["skipped_prompts"] = skipped
        cut = got.cut()  # a sample cut at max_new_tokens did not end: it trains without an EOS
        for x in items:
            flags = [r in cut for r in x.responses]
            x.truncated = flags if any(flags) else None
        info["truncated_samples"] = sum(not d for _, cs in got.sets for g in cs.generations
                                        for d in g.finished)
        info["truncated_in_lists"] = sum(sum(x.truncated or []) for x in items)
        if has_verifier(cfg.task):
            info["sample_accuracy"] = float(sum(float(cs.correct.mean()) for _, cs in got.sets)
                                            / len(got.sets))
        self.info = info
        run_folder.write_lists(path, items)
        return items

    def merge(self, items: list[RankedList]) -> list[RankedList]:
        """Step 4, D = merge(D_1 .. D_s): this round's lists with earlier rounds' (``memory``:
        current, previous or all; :func:`lists.merge_memory`)."""
        self.history.append(items)
        return L.merge_memory(self.history, self.cfg.memory)

    def train(self, s: int, data: list[RankedList]) -> None:
        """Step 5: the policy trained on ``data`` (or the same training loaded from another run
        of the preset, :func:`run_folder.reuse_training`), its checkpoint ``ckpt_iter{s}``
        written. Without lists (no prompt had a better and a worse response) the policy stays."""
        self.row = {"iteration": s, "reference": self.cfg.reference, "lists": len(self.history[-1]),
                    "train_lists": len(data), **self.info}
        if data:
            self.row.update(self._fit(s, data))
        elif self.main:  # nothing to learn from: the policy stays, the checkpoint is the policy
            self.row["note"] = "no list had a better and a worse response; no training"
            self.save_unchanged(s)

    def evaluate(self, s: int) -> None:
        """Step 6: the new policy's scores (:meth:`scores`) complete round ``s``'s row, written
        to ``results.jsonl`` with the sha256 of the round's lists and candidates files (a resume
        checks them: :func:`run_folder.check_round_files`)."""
        if self.main:
            self.row.update(self.scores(s))
            self.row["seconds"] = time.perf_counter() - self.t0
            files = [self.out / f"lists_iter{s}.jsonl", *self.candidate_files[s]]
            self.row["sha256"] = {p.name: run_folder.sha256(p) for p in files}
            self.rows.append(self.row)
            run_folder.write_results(self.out, self.rows)
        self.bar.update(1)

    # ---- before and after the rounds
    def resume(self, rows: list[dict[str, Any]], reuse: bool) -> None:
        """The state after the finished rounds of ``rows``: the policy (the initial one and their
        checkpoints), the key of its training, their lists; and row 0, the initial policy's
        scores, when the run starts."""
        done = [r["iteration"] for r in rows if r["iteration"] > 0]
        self.restore(done)
        if self.cfg.start == "sft":  # round 1 trains the SFT policy, not the initial one
            self.previous_key = f"sft {self.sft_dir().name}"
        for r in rows:  # the key of the policy the next round starts from
            if r["iteration"] > 0 and "train_steps" in r:
                self.previous_key = r.get("train_key") or f"unkeyed {self.out} round {r['iteration']}"
        self.reuse, self.rows = reuse, rows
        self.history = [run_folder.read_lists(self.out / f"lists_iter{s}.jsonl") for s in done]
        if not rows and self.main:
            t0 = time.perf_counter()
            rows.append({"iteration": 0, "reference": self.cfg.reference, **self.scores(0),
                         **getattr(self, "sft_stats", {}), "seconds": time.perf_counter() - t0})
            run_folder.write_results(self.out, rows)
        self.bar = progress(total=self.cfg.iterations, initial=len(done), desc=f"loop {self.cfg.objective}",
                            **({} if self.cfg.show_progress and self.main else {"disable": True}))

    def finish(self, last: int) -> list[dict[str, Any]]:
        """The rows of ``results.jsonl``; the other processes wait for the main one to write
        the last round's."""
        self.bar.close()
        if self.main:
            return self.rows
        while not (rows := read_results(self.out)) or rows[-1]["iteration"] < last:
            time.sleep(1.0)
        return rows

    def scores(self, s: int) -> dict[str, Any]:
        """Greedy accuracy on validation and test every round; pass@N on test for the
        initial policy and after the last round (sampling is the costly part). Tasks without
        a verifier: ``*_greedy`` is the greedy response's mean reward and ``test_reward@N``
        the mean best-of-N reward, both from the reward model. With ``eval_split
        "validation"`` only validation is evaluated, pass@N included (``val_pass@N``).

        Each split also gets its per-problem scores, in problem order (``val_correct``: a
        string of ``0``/``1``; ``val_rewards`` on reward-scored tasks; read back with
        :func:`per_problem`), and the greedy answers' mean length (``val_tokens``)."""
        cfg = self.cfg
        sampler = self.sampler(self.model)
        initial = cfg.start == "initial"  # the disk cache holds the initial policy's answers only
        row: dict[str, Any] = {}
        for split, probs in (("val", self.val), ("test", self.test)):
            if not probs:
                continue
            kw = dict(k=1, temperature=0.0, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
            got = (cand_cache.cached_candidates(sampler, probs, self.tok, **kw) if s == 0 and initial
                   else sample_candidates(sampler, probs, self.tok, **kw))
            got = score_candidates(got, self.reranker)
            row[f"{split}_greedy"] = got.score()
            row.update(run_folder.per_problem_fields(split, got))
        if cfg.eval_samples > 0 and s in (0, cfg.iterations):
            split, probs = ("val", self.val) if cfg.eval_split == "validation" else ("test", self.test)
            kw = dict(k=cfg.eval_samples, temperature=cfg.eval_temperature,
                      max_new_tokens=cfg.max_new_tokens, top_p=cfg.top_p, seed=cfg.seed)
            cands = (cand_cache.cached_candidates(sampler, probs, self.tok, **kw) if s == 0 and initial
                     else sample_candidates(sampler, probs, self.tok, **kw))
            grid = [n for n in (1, 2, 4, 8, 16, 32, 64) if n <= cfg.eval_samples]
            row.update({f"{split}_{k}": v for k, v in score_candidates(cands, self.reranker).curve(grid).items()})
        return row

    # ---- training
    def _fit(self, s: int, data: list[RankedList]) -> dict[str, Any]:
        """Train round ``s`` on ``data``, or load the same training from another run of this
        preset (:func:`find_trained`: same settings, starting policy and lists); the row
        records ``train_key`` and, when loaded, ``train_reused_from`` and the original's
        training statistics."""
        key = training_key(self.cfg, s, data, self.previous_key, self.device.type, run_folder.world())
        self.previous_key = key
        reused = run_folder.reuse_training(self.out, s, key, self.device.type) if self.reuse else None
        if reused is not None:
            self.apply_checkpoint(s)
            return {"train_key": key, **reused}
        return {"train_key": key, **self._train(s, data)}

    def _train(self, s: int, data: list[RankedList]) -> dict[str, Any]:
        cfg = self.cfg
        reference = None
        if cfg.reference == "initial" and s > 1:
            init, _ = self.load_initial()
            reference = ReferenceCache(batch_size=16, max_length=512)
            reference.compute(init, self.tok, [(x.prompt, r) for x in data for r in x.responses])
            del init
        lps = balanced_lists_per_step(len(data), cfg.lists_per_step, multiple_of=cfg.grad_accum * run_folder.world())
        tc = TrainConfig(objective=cfg.objective, beta=cfg.beta, lr=cfg.lr, epochs=cfg.epochs,
                         lists_per_step=lps, lora=lora(cfg), seed=cfg.seed * 1000 + s,
                         dtype=cfg.train_dtype, grad_accum=cfg.grad_accum,
                         show_progress=cfg.show_progress)
        import warnings

        with warnings.catch_warnings():  # the few lists left out change with each epoch's shuffle
            warnings.filterwarnings("ignore", message=".*left out of each epoch.*")
            res = train_ranking(self.model, self.tok, data, tc, reference=reference)
        if self.main:
            run_folder.save_checkpoint(self.out / f"ckpt_iter{s}", res.model.save_pretrained)
        self.model = res.model.merge_and_unload() if lora(cfg) else res.model
        self.model.larpo_name = cfg.model_name
        self.model.eval()
        acc = [r["accuracy"] for r in res.logs if r["accuracy"] is not None]
        return {"train_steps": len(res.logs), "loss_first": res.losses[0], "loss_last": res.losses[-1],
                "losses": [float(x) for x in res.losses],  # per optimizer step, and so are these:
                **{f"{k}s": [r[k] for r in res.logs] for k in STEP_LOGS},
                "ranking_accuracy_last": acc[-1] if acc else None, "train_seconds": res.seconds,
                "train_processes": res.meta["num_processes"]}

# --------------------------------------------------------------------------- running and reading
def run_locked(cfg: LoopConfig, out_dir: str | Path, resume: bool = True,
               stop_after: int | None = None, reuse: bool = True) -> list[dict[str, Any]]:
    """:func:`run_loop` holding an exclusive lock on the folder (``<folder>.lock`` beside it).

    A finished run is read back first, with no lock and no write (a read-only copy of a run
    prints its results). When another command holds the lock, this one says so and waits,
    then reads back (or resumes) what the other left: the work is never done twice. With
    ``resume=False`` it refuses instead (:class:`RunInUseError`): starting over would discard
    the other command's work while it runs. Under ``accelerate launch`` only the main process
    takes the lock (the others follow it through :func:`run_loop`). ``reuse``: as in
    :func:`run_loop`."""
    out = Path(out_dir)
    if resume and (rows := finished_rows(cfg, out, stop_after)) is not None:
        return rows
    with run_folder.folder_lock(out, resume):
        return run_loop(cfg, out, resume=resume, stop_after=stop_after, reuse=reuse)


def run_dir(cfg: LoopConfig, preset: str) -> Path:
    """``runs/<preset>/loop/<objective>-<hash of the config>``: the same config always gets the
    same folder, so notebooks that need the same run (a baseline, a shared setting) share it."""
    from .paths import runs_dir

    key = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
    tag = cfg.negative_tier or cfg.objective
    return runs_dir() / preset / "loop" / f"{tag}-{key}"


def run_shared(cfg: LoopConfig, preset: str, stop_after: int | None = None,
               reuse: bool = True) -> list[dict[str, Any]]:
    """:func:`run_locked` in :func:`run_dir` (resumed, or read back when already finished).

    Two notebooks running side by side (``larpo-lite notebooks --jobs 2``) that need the same
    run never write it at once: the second waits on the folder's lock, then reads the
    finished run back. ``stop_after``: the rows up to that round only (running no further):
    04 reads round 1 of the runs whose second round 07 adds, in the same folder. ``reuse``:
    as in :func:`run_loop` (False: every round trains, so its row holds this code's per-step
    logs, not those another run recorded)."""
    rows = run_locked(cfg, run_dir(cfg, preset), resume=True, stop_after=stop_after, reuse=reuse)
    return rows if stop_after is None else [r for r in rows if r["iteration"] <= stop_after]


def _rebuilt(cfg: LoopConfig, out: Path, s: int) -> _Run:
    """A :class:`_Run` of the finished run in ``out`` holding its policy after round ``s``."""
    cfg.validate()
    if not 0 <= s <= cfg.iterations:
        raise ValueError(f"iteration must be in 0..{cfg.iterations}, got {s}")
    if finished_rows(cfg, out, stop_after=s) is None:
        raise ValueError(f"{out} has not finished round {s} of this config: run it first")
    run = _Run(cfg, out)
    run.restore(list(range(1, s + 1)))
    return run


def policy_after(cfg: LoopConfig, out_dir: str | Path, iteration: int | None = None) -> tuple[Any, Any]:
    """(model, tokenizer): the policy of a finished run after ``iteration`` (None: the last; 0:
    the initial policy), rebuilt from the initial policy and the run's checkpoints, as a resumed
    run rebuilds it; in eval mode.

    Raises:
        ValueError: the run in ``out_dir`` has not finished ``iteration``."""
    run = _rebuilt(cfg, Path(out_dir), cfg.iterations if iteration is None else iteration)
    return run.model, run.tok


def greedy_responses(cfg: LoopConfig, out_dir: str | Path, iteration: int | None = None,
                     split: str = "test") -> CandidateSet:
    """The greedy responses behind a finished run's recorded scores (``results.jsonl`` keeps
    each problem's score, not the text): the policy after ``iteration`` (:func:`policy_after`;
    0: the initial policy, read from the candidate cache) answers the ``split`` ("val" or
    "test") problems exactly as the run's evaluation did (same sampler, dtype, batch size and
    instruction), so its ``correct[:, 0]`` equals the row's ``{split}_correct``. Costs one
    greedy evaluation (nothing for ``iteration=0``).

    Returns:
        a :class:`~larpo_lite.evaluate.CandidateSet` with one response per problem (``[P, 1]``;
        rewards filled in on reward-scored tasks).
    Raises:
        ValueError: the run has not finished ``iteration``, or did not evaluate ``split``."""
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    s = cfg.iterations if iteration is None else iteration
    initial = cfg.start == "initial"  # the disk cache holds the initial policy's answers only
    with _instruction(cfg.instruction):
        run = _rebuilt(cfg, Path(out_dir), s)
        problems = run.val if split == "val" else run.test
        if not problems:
            raise ValueError(f"the run evaluated no {split!r} problems")
        sampler = run.sampler(run.model)
        kw = dict(k=1, temperature=0.0, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
        got = (cand_cache.cached_candidates(sampler, problems, run.tok, **kw) if s == 0 and initial
               else sample_candidates(sampler, problems, run.tok, **kw))
        return score_candidates(got, run.reranker)


def recall_after(cfg: LoopConfig, out_dir: str | Path, n_problems: int, n_samples: int,
                 n_grid: Sequence[int], temperature: float, iteration: int | None = None
                 ) -> dict[int, Any]:
    """Recall@N (pass@N, the unbiased estimator) of a finished run's policy after ``iteration``
    (None: the last; 0: the initial policy, from the candidate cache that notebook 02 fills):
    ``n_samples`` responses at ``temperature`` to each of the first ``n_problems`` test
    problems; ``{N: [P] per-problem pass@N}`` for each N of ``n_grid`` (at most ``n_samples``),
    whose means are the Recall@N curve and which compare paired across policies."""
    if max(n_grid) > n_samples:
        raise ValueError(f"pass@{max(n_grid)} needs at least that many samples, got {n_samples}")
    s = cfg.iterations if iteration is None else iteration
    initial = cfg.start == "initial"  # the disk cache holds the initial policy's answers only
    with _instruction(cfg.instruction):
        run = _rebuilt(cfg, Path(out_dir), s)
        problems = run.test[:n_problems]
        sampler = run.sampler(run.model)
        kw = dict(k=n_samples, temperature=temperature, max_new_tokens=cfg.max_new_tokens,
                  seed=cfg.seed)
        got = (cand_cache.cached_candidates(sampler, problems, run.tok, **kw) if s == 0 and initial
               else sample_candidates(sampler, problems, run.tok, **kw))
        return per_problem_recall(score_candidates(got, run.reranker).correct, n_grid)
