"""Tests of larpo_lite.retrieval: the committed IR corpus, BM25, the dense retriever,
Recall@N and reranking."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import pytest

from larpo_lite import retrieval as R
from larpo_lite.tasks.mini_gsm import load_split


@pytest.fixture(scope="module")
def corpus() -> R.Corpus:
    return R.load_corpus()


@pytest.fixture(scope="module")
def bm25(corpus: R.Corpus) -> R.BM25Retriever:
    return R.BM25Retriever(corpus)


# ------------------------------------------------------------------ corpus
def test_corpus_loads_and_relevant_ids_exist(corpus: R.Corpus) -> None:
    ids = corpus.passage_ids
    assert len(ids) == len(set(ids))
    assert 1000 <= len(ids) <= 8000
    test = load_split("test")
    assert [q.id for q in corpus.queries] == [p.id for p in test]
    assert [q.text for q in corpus.queries] == [p.question for p in test]
    by_id = corpus.by_id()
    for q, p in zip(corpus.queries, test, strict=True):
        assert 1 <= len(q.relevant) <= 2
        assert all(r in by_id for r in q.relevant)
        texts = [by_id[r].text for r in q.relevant]
        assert p.solution in texts                     # the gold worked solution
        assert all(t.endswith(f"#### {p.answer}") for t in texts)
        assert {by_id[r].kind for r in q.relevant} <= set(R.RELEVANT_KINDS)
    assert {p.kind for p in corpus.passages} <= set(R.PASSAGE_KINDS)
    # every relevant passage is labelled relevant and the other way round
    relevant = set().union(*corpus.relevant)
    assert relevant == {p.id for p in corpus.passages if p.kind in R.RELEVANT_KINDS}
    for name in ("passages.jsonl", "queries.jsonl"):
        assert (R.corpus_dir() / name).stat().st_size < 2_000_000


def test_corpus_regeneration_is_deterministic(tmp_path: Path) -> None:
    R.write_corpus(tmp_path)
    for name in ("passages.jsonl", "queries.jsonl"):
        assert (tmp_path / name).read_bytes() == (R.corpus_dir() / name).read_bytes(), (
            f"data/ir/{name} differs from a fresh build; "
            "run python -m larpo_lite.retrieval --write")


def test_build_corpus_on_few_problems() -> None:
    problems = load_split("test", n=12)
    a, b = R.build_corpus(problems, seed=1, pool_size=2000), R.build_corpus(problems, seed=1,
                                                                        pool_size=2000)
    assert a == b
    assert len(a.queries) == 12
    assert R.build_corpus(problems, seed=2, pool_size=2000) != a
    with pytest.raises(ValueError, match="unknown distractor kind"):
        R.build_corpus(problems, seed=1, pool_size=2000, distractors=[("typo", "canon")])


def test_solution_renderer_matches_mini_gsm() -> None:
    for p in load_split("train"):
        assert R._solution(R._parse(p.question)) == p.solution


def test_wrong_ops_keep_words_and_numbers_and_change_the_answer() -> None:
    sub = R._Facts("sub", "Ava", "apples", None, (12, 5))
    assert R._wrong_ops(sub) == [("+",), ("*",)]
    assert R._solution(sub, ops=("+",)) == (
        "Ava has 12 apples and gives away 5, so 12 + 5 = 17.\n#### 17")
    add = R._Facts("add", "Ben", "cards", None, (3, 9))
    assert R._wrong_ops(add) == [("*",)]            # 3 - 9 is not positive
    two = R._Facts("add_mul", "Kate", "coins", "jars", (4, 3, 5))   # 4 + 3 * 5 = 19
    ops = R._wrong_ops(two)
    assert ("*", "+") not in ops and 1 <= len(ops) <= 8
    for o in ops:
        assert R._results(two, o)[-1] not in (19,) and min(R._results(two, o)) > 0
        text = R._paraphrase(two, ops=o)
        assert text.endswith(f"#### {R._results(two, o)[-1]}")
        # the same words and numbers as the right paraphrase, other operators and results
        words = re.compile(r"[a-z]+|\b(?:4|3|5)\b")
        assert words.findall(text) == words.findall(R._paraphrase(two))


def test_look_alikes_tie_with_the_relevant_passages_under_bm25() -> None:
    """Why the corpus is hard: a wrong operation in a relevant passage's wording has that
    passage's BM25 score (BM25 sees neither operators nor which number is the result), so
    BM25 cannot place the relevant passage above it."""
    problems = load_split("test", n=30)
    corpus = R.build_corpus(problems, seed=1, pool_size=2000)
    scores = R.BM25Retriever(corpus).scores(corpus.query_texts)
    col = {p.text: j for j, p in enumerate(corpus.passages)}
    kind = {p.text: p.kind for p in corpus.passages}
    ties = 0
    for i, p in enumerate(problems):
        f = R._parse(p.question)
        for render in (R._solution, R._paraphrase):
            right = scores[i, col[render(f)]]
            for ops in R._wrong_ops(f):
                text = render(f, ops=ops)
                # a result equal to a number of the question is one more matched word
                results = set(R._results(f, ops)) | set(R._results(f, R._SYMBOLS[f.op]))
                if kind.get(text) != "wrong_op" or results & set(f.nums):
                    continue
                assert scores[i, col[text]] == pytest.approx(right), text
                ties += 1
    assert ties >= 2 * len(problems)


def _write(folder: Path, passages: list[str], queries: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "passages.jsonl").write_text("".join(line + "\n" for line in passages))
    (folder / "queries.jsonl").write_text("".join(line + "\n" for line in queries))


def test_malformed_corpus_line_names_file_and_line(tmp_path: Path) -> None:
    good_p = [json.dumps({"id": "a", "text": "x"}), json.dumps({"id": "b", "text": "y"})]
    good_q = [json.dumps({"id": "q", "text": "x?", "relevant": ["a"]})]
    _write(tmp_path / "ok", good_p, good_q)
    assert len(R.load_corpus(tmp_path / "ok").passages) == 2

    _write(tmp_path / "bad", [good_p[0], '{"id": "b", "text": '], good_q)
    path = tmp_path / "bad" / "passages.jsonl"
    with pytest.raises(ValueError, match=re.escape(f"{path}:2")):
        R.load_corpus(tmp_path / "bad")

    _write(tmp_path / "unknown", good_p, [good_q[0], json.dumps(
        {"id": "r", "text": "y?", "relevant": ["zzz"]})])
    path = tmp_path / "unknown" / "queries.jsonl"
    with pytest.raises(ValueError, match=re.escape(f"{path}:2") + ".*zzz"):
        R.load_corpus(tmp_path / "unknown")

    _write(tmp_path / "missing", good_p, [json.dumps({"id": "q", "text": "x?"})])
    with pytest.raises(ValueError, match=r"queries.jsonl:1: missing field"):
        R.load_corpus(tmp_path / "missing")

    _write(tmp_path / "dup", [good_p[0], good_p[0]], good_q)
    with pytest.raises(ValueError, match=r"passages.jsonl:2: duplicate passage id"):
        R.load_corpus(tmp_path / "dup")


# ------------------------------------------------------------------ Recall@N
def test_recall_at_n_hand_computed() -> None:
    ranked = [["a", "b", "c"], ["d", "e", "f"], ["g", "h", "i"], ["j", "k", "l"]]
    relevant = [{"a"}, {"f", "zz"}, {"h", "i"}, {"nowhere"}]
    # first relevant rank per query: 1, 3, 2, none
    assert R.recall_at_n(ranked, relevant, [1, 2, 3, 10]) == {1: 0.25, 2: 0.5, 3: 0.75, 10: 0.75}
    assert R.recall_at_n([["a"]], [["a"]], [5]) == {5: 1.0}


def test_recall_at_n_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="rankings"):
        R.recall_at_n([["a"]], [{"a"}, {"b"}], [1])
    with pytest.raises(ValueError, match=">= 1"):
        R.recall_at_n([["a"]], [{"a"}], [0])
    with pytest.raises(ValueError, match="no relevant"):
        R.recall_at_n([["a"]], [set()], [1])


def test_random_recall_matches_formula_and_simulation() -> None:
    # 4 passages, 1 relevant, N=2: 1 - C(3,2)/C(4,2) = 1/2; N=4: 1
    assert R.random_recall_at_n(4, [{"a"}], [1, 2, 4]) == {1: 0.25, 2: 0.5, 4: 1.0}
    rng = random.Random(0)
    ids = [str(i) for i in range(20)]
    rel = [{"0", "1"}] * 4000
    ranked = [rng.sample(ids, len(ids)) for _ in rel]
    sim = R.recall_at_n(ranked, rel, [1, 5])
    exact = R.random_recall_at_n(20, rel, [1, 5])
    assert exact[5] == pytest.approx(1 - math.comb(18, 5) / math.comb(20, 5))
    for n in (1, 5):
        assert sim[n] == pytest.approx(exact[n], abs=0.03)


# ------------------------------------------------------------------ BM25
def test_bm25_ranks_exact_words_first() -> None:
    passages = [("p0", "The cat sat on the mat."),
                ("p1", "Emma has 7 red balloons and 3 blue kites."),
                ("p2", "Balloons float; kites fly."),
                ("p3", "Dogs like bones.")]
    r = R.BM25Retriever(passages)
    assert r.search(["Emma has 7 red balloons"], k=2)[0][0] == "p1"
    assert r.search(["dogs bones"], k=1) == [["p3"]]
    # single-digit numbers are tokens too
    assert r.search(["7"], k=1) == [["p1"]]
    # a query of unknown words gets a ranking of the right length, not an error
    assert len(r.search(["zebra quokka"], k=3)[0]) == 3
    assert len(r.search(["cat"], k=10)[0]) == 4          # k is capped at the corpus size


def test_bm25_recall_keeps_rising_up_to_20(corpus: R.Corpus, bm25: R.BM25Retriever) -> None:
    """The committed corpus gives BM25 a Recall@N curve with the shape of an LLM's pass@N:
    low at N=1 and still rising between 5 and 20."""
    grid = [1, 2, 5, 10, 20]
    rec = R.evaluate(bm25, corpus, grid)
    values = [rec[n] for n in grid]
    assert all(a < b for a, b in zip(values, values[1:], strict=False))  # rising up to 20
    assert rec[1] <= 0.6
    assert rec[20] >= rec[5] + 0.05
    assert rec[20] > 0.9                                   # but the gold is near the top
    rnd = R.random_recall_at_n(len(corpus.passages), corpus.relevant, grid)
    assert all(rec[n] > 10 * rnd[n] for n in grid)


# ------------------------------------------------------------------ reranking
def test_verifier_scores_and_rerank_keeps_ties_and_tail() -> None:
    v = R.ArithmeticVerifier()
    q = "Ava has 12 apples and gives away 5 of them. How many apples does Ava have left?"
    gold = "Ava has 12 apples and gives away 5, so 12 - 5 = 7.\n#### 7"
    slip = "Ava has 12 apples and gives away 5, so 12 - 5 = 8.\n#### 8"
    other = "Ava starts with 12 apples and gets 5 more, so 12 + 5 = 17.\n#### 17"
    near = "Ava has 15 apples and gives away 5, so 15 - 5 = 10.\n#### 10"
    assert v.score_one(q, gold) == 2.0
    assert v.score_one(q, other) == 2.0                   # cannot tell the operation
    assert v.score_one(q, slip) == 1.0                    # numbers used, arithmetic wrong
    assert v.score_one(q, near) == 1.5                    # half the numbers, arithmetic right
    texts = {"s": slip, "n": near, "o": other, "g": gold, "t": "tail"}
    out = R.rerank([q], [["s", "n", "o", "g", "t"]], texts, v, depth=4)
    assert out == [["o", "g", "n", "s", "t"]]             # tie o/g keeps first-stage order


def test_reranker_lifts_bm25_recall_at_1(corpus: R.Corpus, bm25: R.BM25Retriever) -> None:
    grid = [1, 2, 20]
    base = R.evaluate(bm25, corpus, grid)
    rr = R.evaluate(R.RerankedRetriever(bm25, R.ArithmeticVerifier(), corpus, depth=20),
                    corpus, grid)
    assert rr[1] > base[1] + 0.1           # the slips drop out of the top
    # a correct calculation of the wrong operation ties with the gold and keeps its BM25 place
    assert rr[1] < base[20] - 0.3
    assert rr[20] == base[20]              # a reranker cannot find what was not retrieved


# ------------------------------------------------------------------ dense
@pytest.mark.slow
def test_dense_retriever_offline_beats_random(corpus: R.Corpus, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    # A slice of the real corpus keeps the test short on 2 CPU cores: the first 24
    # queries, every passage with a query's item and all its numbers (its relevant passages
    # and look-alikes) and a fixed sample of the others.
    queries = corpus.queries[:24]
    keep = {r for q in queries for r in q.relevant}
    for q in queries:
        nums, item = set(re.findall(r"\d+", q.text)), R._parse(q.text).item
        keep |= {p.id for p in corpus.passages
                 if item in p.text and nums <= set(re.findall(r"\d+", p.text))}
    others = [p for p in corpus.passages if p.id not in keep]
    sample = set(p.id for p in random.Random(0).sample(others, 300)) | keep
    passages = [p for p in corpus.passages if p.id in sample]
    dense = R.DenseRetriever(passages, cache_dir=tmp_path)
    assert dense.embeddings.shape == (len(passages), 384)
    grid = [1, 5, 20]
    ranked = dense.search([q.text for q in queries], k=20)
    rec = R.recall_at_n(ranked, [set(q.relevant) for q in queries], grid)
    rnd = R.random_recall_at_n(len(passages), [set(q.relevant) for q in queries], grid)
    assert rec[1] > rnd[1] + 0.1
    assert rec[20] > rnd[20] + 0.5
    # the look-alikes fool the dense retriever too: low at N=1, still rising from 5 to 20
    assert rec[1] <= 0.6 and rec[20] >= rec[5] + 0.05
    # the embedding cache is used on the second build and gives the same vectors
    again = R.DenseRetriever(passages, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    assert (again.embeddings == dense.embeddings).all()
    # the dense model as a second-stage scorer over a toy list
    s = dense.as_scorer()
    scores = s.score(["How many apples does Ava have?"],
                     [["Ava has 3 apples.", "The train left at noon."]])[0]
    assert scores[0] > scores[1]
    # reusing the passage embeddings: a passage scores as in the retriever
    q = queries[0]
    pid = ranked[0][0]
    text = next(p.text for p in passages if p.id == pid)
    direct = float(dense.scores([q.text])[0][[p.id for p in passages].index(pid)])
    assert s.score([q.text], [[text]])[0][0] == pytest.approx(direct, abs=1e-5)


def test_dense_embedding_cache_is_written_whole_or_not_at_all(monkeypatch, tmp_path) -> None:
    """A full disk part way through the ``.npy`` write leaves no cache file and no temp file;
    the next build encodes again and writes it whole; a cut file is encoded again."""
    import errno

    import numpy as np

    vectors = np.arange(6, dtype=np.float32).reshape(3, 2)
    encoded = []
    monkeypatch.setattr(R, "load_dense_model", lambda path, device: object())
    monkeypatch.setattr(R, "encode", lambda model, texts, *a, **k: encoded.append(1) or vectors)
    passages = [("a", "one"), ("b", "two"), ("c", "three")]
    save = np.save

    def full_disk(file, arr, *a, **k):
        target = open(file, "wb") if isinstance(file, str | Path) else file  # noqa: SIM115
        target.write(b"\x93NUMPY partial")
        target.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full_disk)
    with pytest.raises(OSError, match="No space"):
        R.DenseRetriever(passages, model_path="fake-minilm", cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(np, "save", save)
    R.DenseRetriever(passages, model_path="fake-minilm", cache_dir=tmp_path)
    (npy,) = tmp_path.iterdir()
    assert npy.suffix == ".npy" and encoded == [1, 1]
    again = R.DenseRetriever(passages, model_path="fake-minilm", cache_dir=tmp_path)
    assert encoded == [1, 1] and (again.embeddings == vectors).all()  # read back
    npy.write_bytes(npy.read_bytes()[:-5])  # cut
    with pytest.warns(UserWarning, match="unreadable embedding cache"):
        R.DenseRetriever(passages, model_path="fake-minilm", cache_dir=tmp_path)
    assert encoded == [1, 1, 1] and (np.load(npy) == vectors).all()
