"""Scaling up: GPU presets, accelerate configs, the memory planner and its CLI, task loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from larpo_lite.config import Params, list_presets, load_preset_values
from larpo_lite.paths import repo_root
from larpo_lite.plan import ARCHS, Arch, arch_from_config, lookup_arch, plan_memory, plan_preset

GPU_PRESETS = ("gpu-small", "gpu-7b")


# ---------------------------------------------------------------------- presets
@pytest.mark.parametrize("name", GPU_PRESETS)
def test_gpu_presets_load_and_ask_for_a_gpu(name):
    assert name in list_presets()
    p = Params.load(name)
    assert p.preset == name and p.device == "cuda" and p.backend == "vllm"
    assert p.figures_dir == f"runs/{name}/figures" and p.reports_dir == f"runs/{name}/reports"
    assert p.lists_per_step % p.grad_accum == 0
    lookup_arch(p.model_name)  # the planner knows the model without the hub
    if p.reward_model:
        lookup_arch(p.reward_model)


def test_gpu_7b_is_mistral_lora_bf16_gsm8k_with_a_reward_model():
    p = Params.load("gpu-7b")
    assert "mistral-7b" in p.model_name.lower() and p.dtype == "bfloat16"
    assert p.lora_r > 0 and p.train_dtype == "bfloat16" and p.task == "gsm8k" and p.reward_model


def test_new_fields_default_to_the_default_behaviour():
    p = Params()
    assert (p.task, p.reward_model, p.train_dtype, p.grad_accum) == ("mini_gsm", "", "float32", 1)
    for name in ("default", "smoke"):
        assert "device" not in load_preset_values(name) or load_preset_values(name)["device"] != "cuda"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here")
@pytest.mark.parametrize("name", GPU_PRESETS)
def test_gpu_preset_without_a_gpu_stops_before_running(name, tmp_path):
    from larpo_lite.models import pick_device
    from larpo_lite.notebooks import run_notebooks

    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        pick_device(Params.load(name).device)
    with pytest.raises(RuntimeError, match=f"preset '{name}'.*no CUDA GPU"):
        run_notebooks(name, out_dir=tmp_path)
    assert not list(tmp_path.glob("*.ipynb"))


# ---------------------------------------------------------------------- accelerate configs
def test_accelerate_configs_parse():
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.utils import DistributedType

    folder = repo_root() / "configs" / "accelerate"
    fsdp = load_config_from_file(str(folder / "fsdp.yaml"))
    zero3 = load_config_from_file(str(folder / "zero3.yaml"))
    assert isinstance(fsdp, ClusterConfig) and isinstance(zero3, ClusterConfig)
    assert fsdp.distributed_type == DistributedType.FSDP
    assert fsdp.fsdp_config["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert zero3.distributed_type == DistributedType.DEEPSPEED
    assert zero3.deepspeed_config["zero_stage"] == 3
    # left out so that DeepSpeed takes the trainer's own grad_accum
    assert "gradient_accumulation_steps" not in zero3.deepspeed_config
    assert fsdp.mixed_precision == zero3.mixed_precision == "bf16"


def test_fsdp_config_builds_accelerates_plugin(monkeypatch):
    """The env `accelerate launch` derives from fsdp.yaml gives a valid FSDP plugin."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_multi_gpu_env

    path = repo_root() / "configs" / "accelerate" / "fsdp.yaml"
    args = launch_command_parser().parse_args(["--config_file", str(path), "train.py"])
    args, _, _ = _validate_launch_command(args)
    env = prepare_multi_gpu_env(args)
    for k, v in env.items():
        if k.startswith(("FSDP_", "ACCELERATE_")):
            monkeypatch.setenv(k, v)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2
    assert env["ACCELERATE_USE_FSDP"] == "true"


# ---------------------------------------------------------------------- planner
def _llama(arch: Arch) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=arch.vocab, hidden_size=arch.hidden,
                      intermediate_size=arch.intermediate, num_hidden_layers=arch.layers,
                      num_attention_heads=arch.heads, num_key_value_heads=arch.kv_heads,
                      tie_word_embeddings=arch.tie_embeddings)
    with torch.device("meta"):
        return LlamaForCausalLM(cfg)


@pytest.mark.parametrize("tie", [True, False])
def test_parameter_counts_match_transformers(tie):
    arch = Arch("t", 96, 256, 3, 6, 2, 1000, tie)
    model = _llama(arch)
    assert arch.n_params() == sum(p.numel() for p in model.parameters())
    from peft import LoraConfig, get_peft_model

    peft = get_peft_model(model, LoraConfig(r=8, target_modules=["q_proj", "k_proj", "v_proj",
                                                                   "o_proj", "down_proj"]))
    trainable = sum(p.numel() for p in peft.parameters() if p.requires_grad)
    assert arch.lora_params(8, ("q_proj", "k_proj", "v_proj", "o_proj", "down_proj")) == trainable


def test_known_architectures_and_local_configs(tmp_path):
    mistral = lookup_arch("mistralai/Mistral-7B-Instruct-v0.2")
    assert 7.2e9 < mistral.n_params() < 7.3e9  # Mistral-7B: 7.24 B
    smol = lookup_arch("smollm2-135m-instruct")
    assert 134e6 < smol.n_params() < 135e6  # SmolLM2-135M: 134.5 M
    (tmp_path / "config.json").write_text(json.dumps({
        "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100}))
    local = lookup_arch(str(tmp_path))
    assert local.kv_dim == 32 and not local.tie_embeddings
    with pytest.raises(ValueError, match="Mistral-7B"):
        lookup_arch("some-org/unknown-model")
    with pytest.raises(ValueError, match="hidden_size"):
        arch_from_config({"vocab_size": 3})
    assert all(k == a.name.lower() for k, a in ARCHS.items())


def test_plan_scales_as_it_should():
    arch = lookup_arch("mistral-7b")
    base = plan_memory(arch, lists_per_step=8, k_train=4, prompt_tokens=256, max_new_tokens=256,
                       vllm=False, runtime_overhead_gib=0.0)
    double = plan_memory(arch, lists_per_step=16, k_train=4, prompt_tokens=256, max_new_tokens=256,
                         vllm=False, runtime_overhead_gib=0.0)
    accum = plan_memory(arch, lists_per_step=16, k_train=4, grad_accum=2, prompt_tokens=256,
                        max_new_tokens=256, vllm=False, runtime_overhead_gib=0.0)
    assert double.item("activations") == pytest.approx(2 * base.item("activations"))
    assert accum.item("activations") == pytest.approx(base.item("activations"))
    assert base.item("policy weights") == pytest.approx(arch.n_params() * 2 / 1024**3)
    sharded = plan_memory(arch, num_processes=8, sharded=True, vllm=False)
    assert sharded.item("policy weights") == pytest.approx(base.item("policy weights") / 8)
    full = plan_memory(arch, lora_r=0, weight_dtype="float32", vllm=False)
    assert full.trainable_params == arch.n_params()
    assert full.item("grads + AdamW (full FT)") == pytest.approx(arch.n_params() * 12 / 1024**3)
    with_vllm = plan_memory(arch, vllm=True, vllm_prompts=4, n_samples=8, prompt_tokens=100,
                            max_new_tokens=100)
    kv = 32 * 200 * 2 * 32 * 8 * 128 * 2 / 1024**3  # seqs x tokens x (K,V) x layers x kv dim x B
    assert with_vllm.item("vLLM KV cache") == pytest.approx(kv)
    with pytest.raises(ValueError, match="dtype"):
        plan_memory(arch, weight_dtype="int3")


def test_plan_of_the_7b_preset_and_its_verdicts():
    p = Params.load("gpu-7b")
    big = plan_preset(p, gpu_gib=80)
    small = plan_preset(p, gpu_gib=24)
    assert big.fits and not small.fits
    names = {i.what for i in big.items}
    assert {"policy weights", "LoRA + grads + AdamW", "activations", "vLLM KV cache",
            "reward model"} <= names
    text = big.render()
    assert "fits" in text and "vLLM" in text and "does NOT fit" in small.render()
    assert big.phased_gib < big.total_gib


def test_cli_plan(capsys, tmp_path):
    from larpo_lite.cli import main

    assert main(["plan", "--preset", "gpu-7b", "--gpu-gib", "80"]) == 0
    out = capsys.readouterr().out
    assert "Mistral-7B" in out and "activations" in out and "fits" in out
    assert main(["plan", "--preset", "gpu-7b", "--gpu-gib", "16", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fits"] is False and data["gpu_gib"] == 16
    assert main(["plan", "--preset", "no-such-preset"]) == 2
    assert "unknown preset" in capsys.readouterr().err


def test_cli_has_no_recall_command():
    from larpo_lite.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["recall"])


# ---------------------------------------------------------------------- tasks
def test_load_task_reads_local_gsm8k_files(tmp_path):
    from larpo_lite.tasks import load_split, load_task
    from larpo_lite.tasks.hub import HUB_VALIDATION

    rows = [{"question": f"What is {i} + 1?", "answer": f"{i} + 1 = {i + 1}\n#### {i + 1}"}
            for i in range(HUB_VALIDATION + 20)]
    path = Path(tmp_path) / "gsm.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    train = load_task("gsm8k", "train", source=str(path))
    val = load_task("gsm8k", "validation", n=5, source=str(path))
    assert len(train) == 20 and len(val) == 5
    assert val[0].question == rows[20]["question"] and val[0].answer == "21"
    assert {p.question for p in train}.isdisjoint(p.question for p in val)
    assert load_task("mini_gsm", "test", 3) == load_split("test", 3)
    with pytest.raises(ValueError, match="valid: mini_gsm"):
        load_task("gsm9k", "test")
    with pytest.raises(ValueError, match="split"):
        load_task("gsm8k", "dev", source=str(path))


def test_presets_tasks_are_known():
    from larpo_lite.tasks import TASKS

    for name in list_presets():
        assert Params.load(name).task in TASKS, name
    assert yaml.safe_load((repo_root() / "params" / "gpu-7b.yaml").read_text())["task"] == "gsm8k"


@pytest.mark.parametrize(("argv", "named"), [
    (["--gpu-gib", "-1"], "--gpu-gib) must be a finite number of GiB > 0, got -1"),
    (["--gpu-gib", "0"], "--gpu-gib) must be a finite number of GiB > 0"),
    (["--gpu-gib", "inf"], "got inf"),
    (["--gpu-gib", "nan"], "got nan"),
    (["--prompt-tokens", "-5"], "--prompt-tokens) and max_new_tokens must be >= 1"),
    (["--prompt-tokens", "0"], "--prompt-tokens) and max_new_tokens must be >= 1, got 0"),
])
def test_cli_plan_refuses_impossible_gpus_and_prompts(argv, named, capsys):
    from larpo_lite.cli import main

    assert main(["plan", "--preset", "gpu-7b", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("larpo-lite: error: ") and named in err
