import pytest
import torch

from larpo_lite import models


def test_tiny_random_loads_with_smollm2_tokenizer(tiny):
    model, tok = tiny
    assert model.config.num_hidden_layers == 2
    assert tok.padding_side == "left" and tok.pad_token is not None
    assert len(tok) == model.config.vocab_size
    assert model.larpo_name == "tiny-random"


def test_unknown_model_error_names_the_embedded_default(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.ModelLoadError, match="smollm2-135m-instruct"):
        models.load_policy(str(tmp_path / "no-such-model"))
    with pytest.raises(models.ModelLoadError, match="smollm2-135m-instruct"):
        models.load_policy("someone/not-a-real-model-xyz")


@pytest.fixture
def unreachable_hub(monkeypatch):
    """No HF_HUB_OFFLINE, and a hub endpoint where nothing listens (as on a machine without
    network): the name must be refused by one connection attempt, not by download retries."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    models._endpoint_reachable.cache_clear()
    yield
    models._endpoint_reachable.cache_clear()


def test_unknown_hub_name_fails_at_once_with_did_you_mean(unreachable_hub):
    assert not models.hub_reachable()
    with pytest.raises(models.ModelLoadError,
                       match=r"'smollm2-135m-instrut' \(did you mean 'smollm2-135m-instruct'\?\).*"
                             r"hub is unreachable"):
        models.load_policy("smollm2-135m-instrut")
    with pytest.raises(models.ModelLoadError, match="hub is unreachable") as e:
        models.load_tokenizer("someone/not-a-real-model-xyz")
    assert "did you mean" not in str(e.value) and "smollm2-135m-instruct" in str(e.value)
    from larpo_lite.rewards import reranker_for

    with pytest.raises(models.ModelLoadError, match="did you mean 'tiny-random-rm'"):
        reranker_for("tiny-random-r-m", device="cpu", dtype="float32")


def test_offline_mode_is_unreachable_without_a_connection(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(models, "_endpoint_reachable", lambda *a: pytest.fail("connected"))
    assert not models.hub_reachable()


def test_local_folder_loads_like_a_hub_id(tiny, tmp_path):
    model, tok = tiny
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again, _ = models.load_policy(str(tmp_path), device="cpu", dtype="float32")
    for (n1, p1), (_, p2) in zip(model.named_parameters(), again.named_parameters(), strict=True):
        assert torch.equal(p1, p2), n1


def test_dtype_and_device_choice():
    assert models.pick_dtype("float32") is torch.float32
    assert models.pick_dtype("bf16") is torch.bfloat16
    assert models.pick_dtype("auto", "cpu") is (torch.bfloat16 if models.cpu_has_bf16() else torch.float32)
    with pytest.raises(ValueError, match="valid"):
        models.pick_dtype("float8")
    assert models.pick_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA"):
            models.pick_device("cuda")


def test_lora_wrapping(tiny):
    model, _ = models.load_policy("tiny-random", device="cpu", dtype="float32",
                                  lora={"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]})
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora" in n for n in trainable)


@pytest.mark.slow
def test_embedded_model_loads_and_answers():
    from larpo_lite.sampling import HFSampler
    from larpo_lite.tasks import build_prompt

    model, tok = models.load_policy("smollm2-135m-instruct", device="cpu", dtype="float32")
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    assert (models.cache_dir() / "smollm2-135m-instruct" / "model.safetensors").is_file()
    text = HFSampler(model, tok).greedy([build_prompt("What is 2 + 3?", tok)], max_new_tokens=40)[0]
    assert "5" in text, text
