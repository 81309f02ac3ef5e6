"""Shared fixtures: one tiny-random model per session; quiet, repeatable CPU settings."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("CI", "1")  # silence progress bars in test logs
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(scope="module")
def one_thread():
    """Small tensors: intra-op threads only add contention on a loaded 2-core machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer) of the 2-layer random Llama, fp32 on CPU."""
    from larpo_lite.models import load_policy

    return load_policy("tiny-random", device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def uf_dir(tmp_path_factory):
    """A local folder in UltraFeedback's shape (train_prefs.jsonl, test_prefs.jsonl) made from
    the committed non-math instructions: 40 train_prefs rows (the last 8 are validation) and
    8 test_prefs rows."""
    import json

    from larpo_lite.loop import unrelated_instructions

    texts = unrelated_instructions()
    assert len(texts) >= 48
    folder = tmp_path_factory.mktemp("ultrafeedback")
    for name, chunk in (("train_prefs", texts[:40]), ("test_prefs", texts[40:48])):
        with open(folder / f"{name}.jsonl", "w") as f:
            for i, t in enumerate(chunk):
                f.write(json.dumps({
                    "prompt": t, "prompt_id": f"{name}-{i}",
                    "chosen": [{"role": "user", "content": t},
                               {"role": "assistant", "content": f"A careful answer to: {t}"}],
                    "rejected": [{"role": "user", "content": t},
                                 {"role": "assistant", "content": "No."}],
                    "score_chosen": 8.0, "score_rejected": 2.0}) + "\n")
    return folder
