"""The loop's list building (``_Run.sample``, ``rank``, ``select``): no label noise, truncated
samples flagged."""

import numpy as np
import pytest

from larpo_lite.evaluate import CandidateSet
from larpo_lite.loop import LoopConfig, _Run
from larpo_lite.sampling import Generation
from larpo_lite.tasks import is_correct


def _stub_samples(problems, plan):
    """A CandidateSet whose responses to problem i follow ``plan[i]``: "R" a right answer,
    "W" a wrong one, "T" a right answer cut at max_new_tokens (no EOS)."""
    gens = []
    for p, codes in zip(problems, plan, strict=True):
        texts = [{"R": f"#### {p.answer}", "T": f"step {j}, cut here\n#### {p.answer}",
                  "W": f"#### {int(p.answer) + 1 + j}"}[c] for j, c in enumerate(codes)]
        gens.append(Generation(prompt=f"Q: {p.question}", texts=texts, num_tokens=[8] * len(codes),
                               finished=[c != "T" for c in codes], temperature=1.0, top_p=1.0,
                               model_name="stub", backend="stub", seed=0))
    correct = np.array([[is_correct(t, p.answer) for t in g.texts]
                        for g, p in zip(gens, problems, strict=True)], dtype=bool)
    return CandidateSet(list(problems), gens, correct)


@pytest.mark.parametrize("selection", ["top1_bottom3", "top2_bottom2"])
def test_lists_hold_no_label_noise_and_no_truncated_sample(tmp_path, monkeypatch, selection):
    cfg = LoopConfig(model_name="tiny-random", device="cpu", iterations=1, prompts_per_iter=5,
                     k=8, temperatures=[1.0], strategy=selection, n_val=0, n_test=1,
                     gold_in_list=False)
    run = _Run(cfg, tmp_path)
    plan = ["RRRRRRWW",   # 6 of 8 right: the bottom 3 used to hold a right answer
            "RRRRRRRW",   # 7 of 8 right: one negative
            "WWWWWWWW",   # no right answer: skipped
            "TWWWWWWW",   # its only right answer was cut at max_new_tokens: still right, on top
            "RTTWWWWW"]   # two right answers cut
    monkeypatch.setattr(run, "sample_set", lambda s, problems, k, t: _stub_samples(problems, plan))
    items = run.select(1, run.rank(run.sample(1)))
    info = run.info
    assert info["truncated_samples"] == 3 and info["skipped_prompts"] == 1
    assert len(items) == 4
    for x in items:
        assert x.rewards[0] == 1.0 and min(x.rewards) == 0.0
        tail = x.rewards[1:] if selection == "top1_bottom3" else x.rewards[2:]
        assert all(r < x.rewards[0] for r in tail)
    want = {"top1_bottom3": [3, 2, 4, 4], "top2_bottom2": [4, 3, 4, 4]}[selection]
    assert [len(x.responses) for x in items] == want
    assert info["shortened_lists"] == sum(n < 4 for n in want)
    # every list entry cut at max_new_tokens is flagged (it trains without an EOS), no other
    cut = {g.texts[j] for g in _stub_samples(run.train_problems[:5], plan).generations
           for j, done in enumerate(g.finished) if not done}
    for x in items:
        flags = x.truncated or [False] * len(x.responses)
        assert flags == [r in cut for r in x.responses]
    assert items[2].truncated[0] and items[0].truncated is None
    second = {"top1_bottom3": [False, False, False, False],
              "top2_bottom2": [False, True, False, False]}[selection]  # R, T, W, W on top2
    assert (items[3].truncated or [False] * 4) == second
    assert info["truncated_in_lists"] == 1 + sum(second)
    # written and read back (other processes, resumed runs) with the flags
    from larpo_lite.run_folder import read_lists, write_lists

    write_lists(tmp_path / "lists.jsonl", items)
    assert read_lists(tmp_path / "lists.jsonl") == items
    assert read_lists(tmp_path / "lists_iter1.jsonl") == items  # what the round wrote
