"""Memory planner: will a preset fit on a GPU? (``larpo-lite plan --preset gpu-7b``)

Introduced in notebooks/08_scaling_up. Estimates, from the model architecture alone (a
built-in table of known models or a local ``config.json``; never the hub):

- policy weights (``n_params * bytes(dtype)``);
- trainable state: LoRA adapters (or all weights) in float32 with their gradients and
  AdamW's two moments, 16 bytes per trainable parameter;
- activations of one training micro-step of our trainer: ``B = lists_per_step * k_train``
  sequences of ``L = prompt_tokens + max_new_tokens`` tokens through every decoder layer
  (per token and layer ``8h + 2kv + 4i`` saved values for a Llama/Mistral block with SDPA
  attention, ``5h + 2kv + 3i`` with LoRA on attention: counted with saved-tensor hooks), plus the response-position logits
  ``B * max_new_tokens * V`` (the saved log-softmax and the gradient buffers alive when the
  backward pass starts: 12 bytes each);
- vLLM's KV cache for the sampling batch (``min(prompts * k, max_num_seqs)`` sequences of
  ``L`` tokens; ``2 * layers * kv_heads * head_dim * bytes`` per token) and vLLM's own copy of
  the weights when it runs in the same process;
- a reward model's weights when the preset names one in the table.

It is an estimate of live tensors: allocator caching and fragmentation are not modelled (a
fixed runtime overhead is added for them and the CUDA context). ``benchmarks/memory_plan.py``
checks the training part against measured peaks of small configurations on the CPU
(``benchmarks/results/memory_plan.json``), with glibc's heap caching turned off so that the
peak counts live tensors, and with the default allocator for comparison.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

GIB = 1024**3
DTYPE_BYTES = {"float32": 4, "fp32": 4, "bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2}
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")  # as notebooks 03-04
RUNTIME_OVERHEAD_GIB = 1.0  # CUDA context, allocator slack (per process, rough)
TRAINING_ITEMS = ("policy weights", "LoRA + grads + AdamW", "grads + AdamW (full FT)",
                  "activations", "logits (responses)")


@dataclass(frozen=True)
class Arch:
    """A decoder-only transformer (Llama / Mistral / SmolLM2 family) as the planner sees it."""

    name: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tie_embeddings: bool
    head_dim: int | None = None

    @property
    def hd(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def q_dim(self) -> int:
        return self.heads * self.hd

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.hd

    def n_params(self) -> int:
        """All parameters (embeddings once when tied)."""
        h = self.hidden
        attn = h * self.q_dim + 2 * h * self.kv_dim + self.q_dim * h
        mlp = 3 * h * self.intermediate
        per_layer = attn + mlp + 2 * h
        emb = self.vocab * h * (1 if self.tie_embeddings else 2)
        return emb + self.layers * per_layer + h

    def lora_params(self, r: int, targets: tuple[str, ...] = LORA_TARGETS) -> int:
        """Adapter parameters: ``r * (in + out)`` per targeted linear layer."""
        h = self.hidden
        shapes = {"q_proj": (h, self.q_dim), "k_proj": (h, self.kv_dim), "v_proj": (h, self.kv_dim),
                  "o_proj": (self.q_dim, h), "gate_proj": (h, self.intermediate),
                  "up_proj": (h, self.intermediate), "down_proj": (self.intermediate, h)}
        unknown = [t for t in targets if t not in shapes]
        if unknown:
            raise ValueError(f"unknown LoRA target(s) {unknown}; valid: {', '.join(shapes)}")
        return self.layers * sum(r * sum(shapes[t]) for t in targets)

    def act_values_per_token_layer(self, lora_r: int = 0,
                                   targets: tuple[str, ...] = LORA_TARGETS) -> int:
        """Activation values autograd saves per token and decoder layer (SDPA, no recompute).

        Full fine-tuning: ``8h + 2kv + 4i``. LoRA on attention (frozen MLP and norms, whose
        inputs then need not be saved): ``5h + 2kv + 3i + r * len(targets)``, plus ``h`` when
        gate/up are adapted and ``i`` when down is. Counted with
        ``torch.autograd.graph.saved_tensors_hooks`` on transformers' Llama decoder layer;
        benchmarks/memory_plan.py records the count beside the formula for each configuration.
        """
        h, kv, i = self.hidden, self.kv_dim, self.intermediate
        if lora_r <= 0:
            return 8 * h + 2 * kv + 4 * i
        values = 5 * h + 2 * kv + 3 * i + lora_r * len(targets)
        if {"gate_proj", "up_proj"} & set(targets):
            values += h
        if "down_proj" in targets:
            values += i
        return values

    def kv_bytes_per_token(self, dtype_bytes: int) -> int:
        return 2 * self.layers * self.kv_dim * dtype_bytes


# Known architectures (values from each model's config.json). Keys are lower-case; a hub id
# matches by its lower-cased name.
ARCHS: dict[str, Arch] = {a.name.lower(): a for a in [
    Arch("tiny-random", 64, 128, 2, 4, 2, 49152, True),
    Arch("HuggingFaceTB/SmolLM2-135M-Instruct", 576, 1536, 30, 9, 3, 49152, True),
    Arch("HuggingFaceTB/SmolLM2-360M-Instruct", 960, 2560, 32, 15, 5, 49152, True),
    Arch("HuggingFaceTB/SmolLM2-1.7B-Instruct", 2048, 8192, 24, 32, 32, 49152, True),
    Arch("mistralai/Mistral-7B-Instruct-v0.2", 4096, 14336, 32, 32, 8, 32000, False),
    Arch("mistralai/Mistral-7B-Instruct-v0.3", 4096, 14336, 32, 32, 8, 32768, False),
    Arch("meta-llama/Meta-Llama-3-8B-Instruct", 4096, 14336, 32, 32, 8, 128256, False),
    Arch("sfairXC/FsfairX-LLaMA3-RM-v0.1", 4096, 14336, 32, 32, 8, 128256, False),
    Arch("Qwen/Qwen2.5-1.5B-Instruct", 1536, 8960, 28, 12, 2, 151936, True),
    Arch("Qwen/Qwen2.5-7B-Instruct", 3584, 18944, 28, 28, 4, 152064, False),
]}
ALIASES = {"smollm2-135m-instruct": "huggingfacetb/smollm2-135m-instruct",
           "smollm2-135m": "huggingfacetb/smollm2-135m-instruct",
           "smollm2-360m": "huggingfacetb/smollm2-360m-instruct",
           "smollm2-1.7b": "huggingfacetb/smollm2-1.7b-instruct",
           "mistral-7b": "mistralai/mistral-7b-instruct-v0.2",
           "mistralai/mistral-7b-v0.1": "mistralai/mistral-7b-instruct-v0.2",
           "mistralai/mistral-7b-instruct-v0.1": "mistralai/mistral-7b-instruct-v0.2",
           "llama-3-8b": "meta-llama/meta-llama-3-8b-instruct"}


def arch_from_config(config: dict[str, Any], name: str = "config") -> Arch:
    """An :class:`Arch` from a transformers ``config.json`` mapping (Llama-like fields)."""
    need = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "vocab_size"]
    missing = [k for k in need if k not in config]
    if missing:
        raise ValueError(f"{name}: config has no {missing}; the planner knows decoder-only "
                         "Llama/Mistral-style configs")
    return Arch(name=name, hidden=int(config["hidden_size"]),
                intermediate=int(config["intermediate_size"]),
                layers=int(config["num_hidden_layers"]), heads=int(config["num_attention_heads"]),
                kv_heads=int(config.get("num_key_value_heads") or config["num_attention_heads"]),
                vocab=int(config["vocab_size"]),
                tie_embeddings=bool(config.get("tie_word_embeddings", False)),
                head_dim=config.get("head_dim"))


def lookup_arch(name: str) -> Arch:
    """The architecture of a model name, hub id or local folder (``config.json``); the hub is
    never contacted. Unknown names raise ValueError listing the known ones."""
    p = Path(name)
    if (p / "config.json").is_file():
        return arch_from_config(json.loads((p / "config.json").read_text()), name=str(p))
    if p.suffix == ".json" and p.is_file():
        return arch_from_config(json.loads(p.read_text()), name=str(p))
    key = ALIASES.get(name.lower(), name.lower())
    if key in ARCHS:
        return ARCHS[key]
    raise ValueError(f"the planner does not know model {name!r}: give a local folder with a "
                     f"config.json, or one of: {', '.join(a.name for a in ARCHS.values())}")


@dataclass
class PlanItem:
    what: str
    gib: float
    detail: str = ""


@dataclass
class Plan:
    """The estimate: items in GiB, the total, and whether it fits ``gpu_gib``."""

    model: str
    n_params: int
    trainable_params: int
    items: list[PlanItem] = field(default_factory=list)
    gpu_gib: float | None = None
    inputs: dict[str, Any] = field(default_factory=dict)

    @property
    def total_gib(self) -> float:
        return sum(i.gib for i in self.items)

    @property
    def fits(self) -> bool | None:
        return None if self.gpu_gib is None else self.total_gib <= self.gpu_gib

    def item(self, what: str) -> float:
        return sum(i.gib for i in self.items if i.what == what)

    @property
    def training_gib(self) -> float:
        """Weights, trainable state, activations and logits: the trainer's part."""
        return sum(self.item(w) for w in TRAINING_ITEMS)

    @property
    def vllm_gib(self) -> float:
        return self.item("vLLM weights") + self.item("vLLM KV cache")

    @property
    def phased_gib(self) -> float:
        """Peak when the phases do not overlap: vLLM asleep (``LLM.sleep``) while training and
        the reward model freed after scoring; the policy weights and trainable state stay."""
        stay = self.item("policy weights") + self.item(self.items[1].what)
        train = self.training_gib - stay
        overhead = self.item("runtime overhead")
        return stay + overhead + max(self.vllm_gib, self.item("reward model"), train)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(total_gib=round(self.total_gib, 3), fits=self.fits,
                 training_gib=round(self.training_gib, 3), vllm_gib=round(self.vllm_gib, 3),
                 phased_gib=round(self.phased_gib, 3))
        return d

    def render(self) -> str:
        """The plan as an aligned text table."""
        width = max(len(i.what) for i in self.items)
        lines = [f"memory plan: {self.model} ({self.n_params / 1e9:.3f} B parameters, "
                 f"{self.trainable_params / 1e6:.2f} M trainable)"]
        for i in self.items:
            lines.append(f"  {i.what:<{width}}  {i.gib:8.2f} GiB  {i.detail}")
        lines.append(f"  {'total (all resident)':<{width}}  {self.total_gib:8.2f} GiB")
        if self.gpu_gib is not None:
            verdict = "fits" if self.fits else "does NOT fit"
            lines.append(f"  on a {self.gpu_gib:g} GiB GPU: {verdict} "
                         f"({self.gpu_gib - self.total_gib:+.2f} GiB to spare)")
            if self.vllm_gib:
                util = min(1.0, (self.vllm_gib + 0.5) / self.gpu_gib)
                lines.append(f"  vLLM needs gpu_memory_utilization >= {util:.2f} of this GPU")
        if self.vllm_gib or self.item("reward model"):
            phased = f"  phases apart (vLLM asleep while training, reward model freed): " \
                     f"{self.phased_gib:.2f} GiB"
            if self.gpu_gib is not None:
                phased += " (fits)" if self.phased_gib <= self.gpu_gib else " (does NOT fit)"
            lines.append(phased)
        return "\n".join(lines)


def plan_memory(
    arch: Arch,
    *,
    weight_dtype: str = "bfloat16",
    act_dtype: str | None = None,
    lora_r: int = 16,
    lora_targets: tuple[str, ...] = LORA_TARGETS,
    lists_per_step: int = 8,
    k_train: int = 4,
    prompt_tokens: int = 256,
    max_new_tokens: int = 256,
    grad_accum: int = 1,
    num_processes: int = 1,
    sharded: bool = False,
    vllm: bool = True,
    vllm_prompts: int = 64,
    n_samples: int = 8,
    vllm_max_num_seqs: int = 256,
    vllm_dtype: str = "bfloat16",
    reward_model: Arch | None = None,
    gpu_gib: float | None = None,
    runtime_overhead_gib: float = RUNTIME_OVERHEAD_GIB,
) -> Plan:
    """Expected peak memory of one process (one GPU) for sampling + training with a preset.

    Args:
        arch: the policy architecture (:func:`lookup_arch`).
        weight_dtype: dtype of the policy weights held for training (frozen base with LoRA).
        act_dtype: activation dtype (defaults to ``weight_dtype``; bf16 autocast: "bfloat16").
        lora_r: LoRA rank; 0 = full fine-tuning (all weights trainable, float32 state).
        lora_targets: the adapted linear layers.
        lists_per_step, k_train, grad_accum, num_processes: the training batch: each process
            runs ``lists_per_step * k_train / (grad_accum * num_processes)`` sequences at once.
        prompt_tokens, max_new_tokens: sequence length ``L = prompt_tokens + max_new_tokens``.
        sharded: FSDP / ZeRO-3 over ``num_processes`` (weights and trainable state divided).
        vllm: whether a vLLM engine (weights + KV cache) lives beside the trainer.
        vllm_prompts, n_samples, vllm_max_num_seqs: the sampling batch (sequences in flight
            = ``min(vllm_prompts * n_samples, vllm_max_num_seqs)``).
        reward_model: a reward model held on the same GPU, or None.
        gpu_gib: the GPU's memory, for the fits / does not fit verdict.

    Returns:
        a :class:`Plan`.
    """
    for d in (weight_dtype, act_dtype or weight_dtype, vllm_dtype):
        if d not in DTYPE_BYTES:
            raise ValueError(f"unknown dtype {d!r}; valid: {', '.join(DTYPE_BYTES)}")
    if lora_r < 0 or lists_per_step < 1 or k_train < 1 or grad_accum < 1 or num_processes < 1:
        raise ValueError("lora_r must be >= 0; lists_per_step, k_train, grad_accum and "
                         "num_processes >= 1")
    if prompt_tokens < 1 or max_new_tokens < 1:
        raise ValueError(f"prompt_tokens (--prompt-tokens) and max_new_tokens must be >= 1, got "
                         f"{prompt_tokens} and {max_new_tokens}")
    if gpu_gib is not None and not (math.isfinite(gpu_gib) and gpu_gib > 0):
        raise ValueError(f"gpu_gib (--gpu-gib) must be a finite number of GiB > 0, got {gpu_gib}")
    wb = DTYPE_BYTES[weight_dtype]
    ab = DTYPE_BYTES[act_dtype or weight_dtype]
    n = arch.n_params()
    shard = num_processes if sharded else 1
    trainable = arch.lora_params(lora_r, lora_targets) if lora_r > 0 else n
    seqs = lists_per_step * k_train / (grad_accum * num_processes)
    length = prompt_tokens + max_new_tokens
    items = [PlanItem("policy weights", n * wb / shard / GIB,
                      f"{n / 1e9:.3f} B x {wb} B ({weight_dtype})"
                      + (f" / {shard} shards" if shard > 1 else ""))]
    if lora_r > 0:
        items.append(PlanItem("LoRA + grads + AdamW", trainable * 16 / shard / GIB,
                              f"{trainable / 1e6:.2f} M x 16 B (fp32 weight, grad, 2 moments), "
                              f"r={lora_r} on {','.join(lora_targets)}"))
    else:
        items.append(PlanItem("grads + AdamW (full FT)", n * (16 - wb) / shard / GIB,
                              f"{n / 1e9:.3f} B x {16 - wb} B (fp32 master/grad/2 moments)"))
    act = seqs * length * arch.layers * arch.act_values_per_token_layer(lora_r, lora_targets) * ab
    emb = seqs * length * arch.hidden * ab * 2  # embedding output + final norm
    items.append(PlanItem("activations", (act + emb) / GIB,
                          f"{seqs:g} seqs x {length} tokens x {arch.layers} layers, {ab} B"))
    items.append(PlanItem("logits (responses)", seqs * max_new_tokens * arch.vocab * 12 / GIB,
                          f"{seqs:g} x {max_new_tokens} x {arch.vocab} x 12 B"))
    if vllm:
        vb = DTYPE_BYTES[vllm_dtype]
        in_flight = min(vllm_prompts * n_samples, vllm_max_num_seqs)
        items.append(PlanItem("vLLM weights", n * vb / GIB, f"its own copy, {vllm_dtype}"))
        items.append(PlanItem("vLLM KV cache", in_flight * length * arch.kv_bytes_per_token(vb) / GIB,
                              f"{in_flight} seqs x {length} tokens x "
                              f"{arch.kv_bytes_per_token(vb) / 1024:.0f} KiB"))
    if reward_model is not None:
        rn = reward_model.n_params() - reward_model.vocab * reward_model.hidden * (
            0 if reward_model.tie_embeddings else 1)  # a classifier head, not an LM head
        items.append(PlanItem("reward model", rn * 2 / GIB, f"{reward_model.name}, bf16"))
    items.append(PlanItem("runtime overhead", runtime_overhead_gib, "CUDA context, allocator"))
    inputs = dict(weight_dtype=weight_dtype, act_dtype=act_dtype or weight_dtype, lora_r=lora_r,
                  lora_targets=list(lora_targets), lists_per_step=lists_per_step, k_train=k_train,
                  prompt_tokens=prompt_tokens, max_new_tokens=max_new_tokens,
                  grad_accum=grad_accum, num_processes=num_processes, sharded=sharded,
                  vllm=vllm, vllm_prompts=vllm_prompts, n_samples=n_samples,
                  vllm_max_num_seqs=vllm_max_num_seqs, vllm_dtype=vllm_dtype)
    return Plan(model=arch.name, n_params=n, trainable_params=trainable, items=items,
                gpu_gib=gpu_gib, inputs=inputs)


# Prompt lengths (chat template included) of each task, for the planner.
PROMPT_TOKENS = {"mini_gsm": 96, "gsm8k": 256, "math": 320, "ultrafeedback": 512}


def plan_preset(params: Any, gpu_gib: float | None = None, prompt_tokens: int | None = None,
                num_processes: int = 1, sharded: bool = False) -> Plan:
    """The plan of a :class:`~larpo_lite.config.Params` (a loaded preset).

    Training: LoRA keeps the frozen base in ``train_dtype`` (peft adapters in float32); full
    fine-tuning keeps float32 weights. Activations in ``train_dtype``. One micro-step holds
    ``lists_per_step / grad_accum`` lists of ``k_train`` responses. Sampling: a vLLM engine in
    ``dtype`` with ``batch_size`` sequences in flight when ``backend`` is vllm.
    """
    from .models import EMBEDDED, TINY

    name = params.model_name
    arch = lookup_arch("smollm2-135m-instruct" if name == EMBEDDED else
                       "tiny-random" if name == TINY else name)
    sample_dtype = params.dtype if params.dtype in DTYPE_BYTES else "bfloat16"
    train_dtype = getattr(params, "train_dtype", "float32")
    rm = lookup_arch(params.reward_model) if getattr(params, "reward_model", "") else None
    task = getattr(params, "task", "mini_gsm")
    return plan_memory(
        arch, weight_dtype=train_dtype if params.lora_r > 0 else "float32", act_dtype=train_dtype,
        lora_r=params.lora_r, lists_per_step=params.lists_per_step, k_train=params.k_train,
        grad_accum=getattr(params, "grad_accum", 1),
        prompt_tokens=PROMPT_TOKENS.get(task, 256) if prompt_tokens is None else prompt_tokens,
        max_new_tokens=params.max_new_tokens, num_processes=num_processes, sharded=sharded,
        vllm=params.backend == "vllm", vllm_prompts=params.n_test, n_samples=params.n_samples,
        vllm_max_num_seqs=params.batch_size, vllm_dtype=sample_dtype, reward_model=rm,
        gpu_gib=gpu_gib)
