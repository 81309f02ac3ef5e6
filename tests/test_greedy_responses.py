"""loop.policy_after and loop.greedy_responses: a finished run's policies and the texts behind
its recorded per-problem scores."""

import pytest

from larpo_lite.loop import LoopConfig, greedy_responses, policy_after, run_loop
from larpo_lite.loop_policy import sample_seed

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(model_name="tiny-random", device="cpu", dtype="float32", batch_size=16, iterations=2,
            prompts_per_iter=4, k=4, max_new_tokens=8, lr=1e-2, epochs=2, lists_per_step=2,
            lora_r=4, n_val=2, n_test=6, eval_samples=0, gold_in_list=True, show_progress=False)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    cfg = LoopConfig(**TINY)
    out = tmp_path_factory.mktemp("loop") / "run"
    return cfg, out, run_loop(cfg, out)


def test_the_rebuilt_policy_samples_what_the_run_sampled_next(finished):
    """Round 2's candidates were sampled by the policy after round 1: the rebuilt one, with the
    same seed, samples them again word for word (and the initial policy does not)."""
    from larpo_lite.cache import load_candidates
    from larpo_lite.evaluate import sample_candidates
    from larpo_lite.sampling import make_sampler
    from larpo_lite.tasks import load_task

    cfg, out, _ = finished
    problems = load_task("mini_gsm", "train", 8)[4:8]
    recorded = load_candidates(out / "candidates_iter2_T0.7.jsonl", problems)
    texts = {}
    for s in (0, 1):
        model, tok = policy_after(cfg, out, iteration=s)
        got = sample_candidates(make_sampler("hf", model, tok, batch_size=cfg.batch_size), problems,
                                tok, k=cfg.k, temperature=0.7, max_new_tokens=cfg.max_new_tokens,
                                seed=sample_seed(cfg, 2))
        texts[s] = [g.texts for g in got.generations]
    assert texts[1] == [g.texts for g in recorded.generations]
    assert texts[0] != texts[1]  # the check tells the policies apart


def test_greedy_responses_score_as_the_rows_recorded(finished):
    cfg, out, rows = finished
    for s, split in ((0, "test"), (2, "test"), (2, "val")):
        got = greedy_responses(cfg, out, iteration=s, split=split)
        assert got.correct.shape == (TINY["n_test" if split == "test" else "n_val"], 1)
        assert "".join("1" if c else "0" for c in got.correct[:, 0]) == rows[s][f"{split}_correct"]
        assert got.mean_tokens() == pytest.approx(rows[s][f"{split}_tokens"])
    last = greedy_responses(cfg, out)  # None: the last round
    assert [g.texts for g in last.generations] == [
        g.texts for g in greedy_responses(cfg, out, iteration=2).generations]


def test_unfinished_rounds_and_bad_arguments_are_errors(tmp_path):
    cfg = LoopConfig(**TINY)
    with pytest.raises(ValueError, match="has not finished round 1"):
        greedy_responses(cfg, tmp_path / "none", iteration=1)
    with pytest.raises(ValueError, match="has not finished round 2"):
        policy_after(cfg, tmp_path / "none")
    with pytest.raises(ValueError, match=r"iteration must be in 0\.\.2"):
        greedy_responses(cfg, tmp_path / "none", iteration=3)
    with pytest.raises(ValueError, match="split must be"):
        greedy_responses(cfg, tmp_path / "none", split="train")
