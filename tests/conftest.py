"""Shared fixtures: one tiny-random model per session; quiet, repeatable CPU settings."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("CI", "1")  # silence progress bars in test logs
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer) of the 2-layer random Llama, fp32 on CPU."""
    from larpo_lite.models import load_policy

    return load_policy("tiny-random", device="cpu", dtype="float32")
