"""What notebook 01 computes outside its cells: best-of-N draw by draw and the noise of its
random subsets against the unbiased pass@N, candidate records, the retrievers' curves as
recorded, the lazily loaded initial policy, the sentences and the exercise costs."""

import math

import numpy as np
import pytest

from larpo_lite import cache, evaluate, findings, metrics, retrieval, rewards, workshop
from larpo_lite.config import Params
from larpo_lite.evaluate import CandidateSet
from larpo_lite.sampling import Generation
from larpo_lite.tasks import load_task


def _cands(correct, seed=0):
    """A candidate set of mini-GSM test problems whose sample j of problem i is right exactly
    when ``correct[i][j]`` (the verifier reads the ``####`` line)."""
    correct = np.asarray(correct, dtype=bool)
    problems = load_task("mini_gsm", "test", correct.shape[0])
    gens = [Generation(p.question, [f"#### {p.answer}" if ok else "#### -1" for ok in row],
                       [3] * len(row), [True] * len(row), 0.7, 1.0, "stand-in", "hf", seed)
            for p, row in zip(problems, correct, strict=True)]
    return CandidateSet(problems, gens, correct)


def test_best_of_n_hits_are_draws_per_problem_and_their_mean_is_the_curve():
    rng = np.random.default_rng(1)
    cands = _cands(rng.random((6, 8)) < 0.3)
    verifier = rewards.get_reranker("verifier")
    hits = evaluate.best_of_n_hits(cands, verifier, [1, 2, 8], n_draws=5, seed=3)
    assert {n: h.shape for n, h in hits.items()} == {1: (6, 5), 2: (6, 5), 8: (6, 1)}
    curve = evaluate.best_of_n_curve(cands, verifier, [1, 2, 8], n_draws=5, seed=3)
    assert curve == {n: float(np.mean(h)) for n, h in hits.items()}
    # at N = k the one subset is the whole list: exactly pass@k
    assert curve[8] == pytest.approx(cands.recall([8])[8], rel=1e-12)
    # with the verifier a draw is right exactly when its subset holds a correct sample
    assert (hits[8][:, 0] == cands.correct.any(axis=1)).all()


def test_best_of_one_is_the_same_draw_for_every_reranker():
    cands = _cands(np.random.default_rng(2).random((5, 4)) < 0.5)
    by = {name: evaluate.best_of_n_hits(cands, rewards.get_reranker(name), [1], seed=0)[1]
          for name in ("verifier", "majority")}
    assert (by["verifier"] == by["majority"]).all()


def test_draw_se_by_hand_and_against_the_spread_over_seeds():
    assert metrics.draw_se([0.5, 0.5], 4) == pytest.approx(math.sqrt(0.5 / 4) / 2, rel=1e-12)
    assert metrics.draw_se([0.0, 1.0, 1.0], 20) == 0.0
    with pytest.raises(ValueError, match="draws"):
        metrics.draw_se([0.5], 0)
    cands = _cands(np.random.default_rng(0).random((12, 8)) < 0.3)
    verifier = rewards.get_reranker("verifier")
    q = metrics.per_problem_recall(cands.correct, [2])[2]
    runs = [evaluate.best_of_n_curve(cands, verifier, [2], n_draws=10, seed=s)[2] for s in range(300)]
    # the draws scatter around the unbiased value with the predicted standard error
    assert np.mean(runs) == pytest.approx(q.mean(), abs=3 * metrics.draw_se(q, 10) / math.sqrt(300))
    assert np.std(runs, ddof=1) == pytest.approx(metrics.draw_se(q, 10), rel=0.15)


def test_se_over_problems():
    assert metrics.se_over_problems([1, 0, 1, 0]) == pytest.approx(np.std([1, 0, 1, 0], ddof=1) / 2)
    assert metrics.se_over_problems([0.4]) == 0.0


def test_the_gap_sentence_names_the_draws_and_their_noise():
    text = findings.best_of_n_vs_pass({1: 0.148, 2: 0.219, 16: 0.594}, {1: 0.123, 2: 0.214, 16: 0.594},
                                      {1: 0.0116, 2: 0.013, 16: 0.0}, 20, {1: 0.121, 2: 0.214, 16: 0.594}, 500)
    assert "draws 20 random subsets" in text and "+0.025 at N=1" in text
    assert "2.2 standard errors of that draw noise (0.012)" in text
    assert "at N=16, where the one subset is the whole list, both read 0.594" in text
    assert "With 500 draws per problem the gap at N=1 shrinks to -0.002" in text
    none_right = findings.best_of_n_vs_pass({1: 0.0, 4: 0.0}, {1: 0.0, 4: 0.0}, {1: 0.0, 4: 0.0}, 20)
    assert "as it must" in none_right


def test_candidates_round_trip_through_a_record():
    cands = _cands([[True, False], [False, False]])
    from larpo_lite.replay import decode, encode

    record = decode(encode(evaluate.candidates_record(cands)))  # what a replay hands back
    back = evaluate.candidates_from_record(record, cands.problems, 0.7, 1.0, "stand-in", "hf", 0)
    assert (back.correct == cands.correct).all() and back.correct.dtype == bool
    assert [g.texts for g in back.generations] == [g.texts for g in cands.generations]
    assert back.generations[0].temperature == 0.7


def test_shared_prefix_counts_the_problems_both_lists_start_with():
    a, b = load_task("mini_gsm", "test", 5), load_task("mini_gsm", "test", 3)
    assert evaluate.shared_prefix(a, b) == 3 == evaluate.shared_prefix(b, a)
    assert evaluate.shared_prefix(a, list(reversed(a))) == 0


def test_recorded_curves_come_back_as_numbers_in_order():
    assert list(retrieval.by_n({"1": 0.1, "20": 1.0, "5": 0.5})) == [1, 5, 20]
    assert retrieval.binomial_se({1: 0.5, 5: 1.0}, 100) == {1: pytest.approx(0.05), 5: 0.0}
    corpus = retrieval.load_corpus()
    ((name, curve),) = retrieval.retriever_curves(corpus, [1, 20], dense=False)
    assert name == "BM25" and curve == retrieval.evaluate(retrieval.BM25Retriever(corpus), corpus, [1, 20])


def test_the_initial_policy_loads_only_when_a_step_needs_it(monkeypatch):
    import larpo_lite.models as models

    loads = []
    monkeypatch.setattr(models, "load_policy", lambda *a, **k: loads.append(a) or (_ for _ in ()).throw(
        RuntimeError("loaded")))
    policy = cache.InitialPolicy(Params.load("smoke"))  # a replaying notebook goes no further
    assert loads == []
    with pytest.raises(RuntimeError, match="loaded"):
        policy.describe()
    assert len(loads) == 1


def test_sentences_and_titles():
    text = findings.ir_sentence({"BM25": {1: 0.12, 20: 1.0}, "BM25 + reranker": {1: 0.27, 20: 1.0}})
    assert text.startswith("On the IR side, BM25 ranks a relevant passage first for 12%")
    assert "moves Recall@1 from 0.12 to 0.27" in text
    assert "0.250 at N=16 against greedy decoding's 0.281 (-0.031)" in findings.majority_sentence(
        {1: 0.1, 16: 0.25}, {1: 0.1, 16: 0.59}, 0.28125)
    assert findings.greedy_sentence([1, 0, 0, 0]) == (
        "Greedy decoding solved 1 of 4 test problems (0.250, binomial SE 0.217).")
    s = metrics.paired_stats([0, 0, 1, 0], [1, 1, 1, 0])
    assert findings.figure_title("list vs greedy", 0.25, 0.75, s) == (
        f"list vs greedy\n0.25 \u2192 0.75 (+0.50, 2 SE = {2 * s.se:.2f}, inconclusive)")


def test_exercise_costs_come_from_the_timing_record(tmp_path):
    path = tmp_path / "timing.json"
    path.write_text('{"notebooks": {"02_recall_at_n": {"seconds": 504}}, "replay": {}}')
    t = workshop.notebook_timing("02_recall_at_n", path)
    assert t["run_s"] == 504 and t["run_min"] == pytest.approx(8.4) and math.isnan(t["replay_s"])
    assert workshop.cost_class(2.5) == "in class" and workshop.cost_class(8.4) == "homework"
    assert workshop.cost_class(float("nan")) == "homework"
