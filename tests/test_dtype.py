"""The configured dtype reaches every model load, also on a CPU with bf16 units.

On such a CPU ``dtype: auto`` means bf16; a load that forgets the run's dtype then samples or
scores in bf16 while the run says float32, and its numbers differ from an AVX2 machine's. The
tests force the bf16 detection on, so an AVX2-only machine runs the same paths.
"""

from __future__ import annotations

import pytest
import torch

from larpo_lite import loop, models, rewards, sampling, tune
from larpo_lite.config import Params, list_presets, load_preset_values
from larpo_lite.models import TINY_RM

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def bf16_cpu(monkeypatch):
    """This CPU, taken for one with bf16 units (AMX / AVX512-BF16)."""
    monkeypatch.setattr(models, "cpu_has_bf16", lambda: True)
    assert models.pick_dtype("auto", "cpu") is torch.bfloat16


def _dtype(model) -> torch.dtype:
    dtypes = {p.dtype for p in model.parameters()}
    assert len(dtypes) == 1, dtypes
    return dtypes.pop()


@pytest.fixture
def loaded(monkeypatch):
    """Spies on every policy load, sampler and reranker: ``{"policy": [...], "sampler": [...],
    "reranker": [...]}`` with the dtype of each model they got."""
    seen: dict[str, list[torch.dtype]] = {"policy": [], "sampler": [], "reranker": []}
    load_policy, make_sampler = models.load_policy, sampling.make_sampler

    def spy_load(*args, **kwargs):
        model, tok = load_policy(*args, **kwargs)
        seen["policy"].append(_dtype(model))
        return model, tok

    def spy_sampler(backend, model, *args, **kwargs):
        seen["sampler"].append(_dtype(model))
        return make_sampler(backend, model, *args, **kwargs)

    def spy_reranker(*args, **kwargs):
        r = rewards.reranker_for(*args, **kwargs)
        if hasattr(r, "model"):
            seen["reranker"].append(_dtype(r.model))
        return r

    monkeypatch.setattr(models, "load_policy", spy_load)
    monkeypatch.setattr(sampling, "make_sampler", spy_sampler)
    monkeypatch.setattr(loop, "reranker_for", spy_reranker)
    return seen


def test_every_preset_names_its_dtype():
    for name in list_presets():
        assert load_preset_values(name).get("dtype", "auto") != "auto", name
    assert Params().dtype == Params.load("default").dtype == "float32"
    assert Params.load("gpu-7b").dtype == "bfloat16"  # bf16 only where a preset asks for it


def test_the_env_variable_overrides_the_detection(monkeypatch):
    monkeypatch.setenv("LARPO_LITE_CPU_BF16", "1")
    assert models.cpu_has_bf16() and models.pick_dtype("auto", "cpu") is torch.bfloat16
    monkeypatch.setenv("LARPO_LITE_CPU_BF16", "0")
    assert not models.cpu_has_bf16() and models.pick_dtype("auto", "cpu") is torch.float32


def test_policy_and_reward_model_follow_the_config(bf16_cpu):
    p = Params.load("default", model_name="tiny-random", device="cpu", reward_model=TINY_RM)
    policy, _ = models.load_policy(p.model_name, device=p.device, dtype=p.dtype)
    assert _dtype(policy) is torch.float32
    rm = rewards.reranker_for(p.reward_model, device=p.device, dtype=p.dtype)
    assert _dtype(rm.model) is torch.float32
    auto = rewards.reranker_for(p.reward_model, device="cpu", dtype="auto")
    assert _dtype(auto.model) is torch.bfloat16  # what a load without the dtype would get


def test_loop_with_a_reward_model_keeps_float32(bf16_cpu, loaded, uf_dir, tmp_path):
    cfg = loop.LoopConfig(model_name="tiny-random", task="ultrafeedback", task_source=str(uf_dir),
                          reward_model=TINY_RM, device="cpu", dtype="float32", batch_size=16,
                          iterations=1, prompts_per_iter=2, k=2, max_new_tokens=4, epochs=1,
                          lists_per_step=2, lora_r=4, lr=1e-3, n_val=2, n_test=2, eval_samples=0,
                          objective="pairwise", show_progress=False)
    rows = loop.run_loop(cfg, tmp_path / "run")
    assert [r["iteration"] for r in rows] == [0, 1]
    assert loaded["reranker"] == [torch.float32]
    assert loaded["policy"] and set(loaded["policy"]) == {torch.float32}
    assert loaded["sampler"] and set(loaded["sampler"]) == {torch.float32}


def test_tune_with_a_reward_model_keeps_float32(bf16_cpu, loaded, uf_dir, tmp_path):
    params = Params.load("smoke", reports_dir=str(tmp_path), n_val=2, n_train_prompts=4,
                         alignment_task="ultrafeedback", alignment_source=str(uf_dir),
                         reward_model=TINY_RM)
    out = tune.run(params, lrs=[1e-3], betas=[0.1])
    assert out["task"] == "ultrafeedback"
    assert loaded["reranker"] == [torch.float32]
    assert loaded["policy"] and set(loaded["policy"]) == {torch.float32}
    assert loaded["sampler"] and set(loaded["sampler"]) == {torch.float32}
