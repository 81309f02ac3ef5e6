"""best_of_n_curve hands each problem's question to the reranker: a reward model scores
(prompt, response) pairs and refuses texts without their prompt."""

import numpy as np

from larpo_lite.evaluate import CandidateSet, best_of_n_curve
from larpo_lite.sampling import Generation
from larpo_lite.tasks import load_task


class PromptReader:
    """A reward-model stand-in: needs the prompt; prefers responses that repeat its first word."""

    name = "prompt-reader"

    def score(self, texts, gold=None, prompt=None):
        if prompt is None:
            raise ValueError("a reward model scores (prompt, response) pairs")
        return [1.0 if t.startswith(prompt.split()[0]) else 0.0 for t in texts]


def test_best_of_n_passes_the_question_to_the_reranker():
    problems = load_task("mini_gsm", "test", 2)
    texts = [["wrong #### -1", f"{p.question.split()[0]} #### {p.answer}"] for p in problems]
    gens = [Generation(p.question, t, [3, 3], [True, True], 0.7, 1.0, "stand-in", "hf", 0)
            for p, t in zip(problems, texts, strict=True)]
    cands = CandidateSet(problems, gens,
                         np.array([[False, True]] * len(problems)))
    assert best_of_n_curve(cands, PromptReader(), [2]) == {2: 1.0}
