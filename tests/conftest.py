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
