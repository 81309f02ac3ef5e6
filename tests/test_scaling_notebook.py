"""Notebook 08's steps (larpo_lite/scaling.py): the benchmark ranks backends inside one run, the
live speed is read against the same backend there or called not comparable, and the figure and
the paragraph say the same."""

import json

import matplotlib.pyplot as plt
import pytest

from larpo_lite import plotting, scaling
from larpo_lite.config import Params
from larpo_lite.notebooks import notebook_paths
from larpo_lite.plan import plan_preset

BENCH = {"model": "smollm2-135m-instruct", "cpu": "AMD EPYC", "cpu_has_bf16": False,
         "settings": {"prompts": 8, "k": 8, "max_new_tokens": 48, "temperature": 0.7},
         "weight_refresh": [{"dtype": "float32", "fresh_engine_startup_s": 8.3}],
         "results": [
             {"backend": "vllm", "dtype": "float32", "tokens": 1377, "seconds": 36.09, "tokens_per_s": 38.2,
              "greedy_vs_hf_float32": {"problems": 16, "identical_text": 1.0},
              "measured": "2026-11-23T21:28:41+00:00", "torch_threads": 1},
             {"backend": "hf", "dtype": "bfloat16", "tokens": 1311, "seconds": 255.59, "tokens_per_s": 5.1,
              "measured": "2026-11-23T21:36:58+00:00", "torch_threads": 1},
             {"backend": "hf", "dtype": "float32", "tokens": 1325, "seconds": 52.35, "tokens_per_s": 25.3,
              "measured": "2026-11-23T21:27:24+00:00", "torch_threads": 1},
             {"backend": "vllm", "dtype": "bfloat16", "startup_seconds": 7.1}]}  # no speed: left out


def _live(tokens_per_s=68.9, model="smollm2-135m-instruct", device="cpu", backend="hf"):
    return {"backend": backend, "dtype": "float32", "model": model, "preset": "default",
            "device": device, "threads": 1, "prompts": 8, "k": 8, "tokens": 1595,
            "seconds": 1595 / tokens_per_s, "tokens_per_s": tokens_per_s, "first_sample": "x"}


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_the_benchmark_is_read_in_order_with_ratios_inside_its_run():
    bench = scaling.benchmark(json.dumps(BENCH))
    assert [r["name"] for r in bench["rows"]] == ["hf float32", "hf bfloat16", "vllm float32"]
    assert [round(r["vs_baseline"], 3) for r in bench["rows"]] == [1.0, round(5.1 / 25.3, 3), round(38.2 / 25.3, 3)]
    assert bench["rows"][2]["greedy_same"] == 1.0 and bench["date"] == "2026-11-23"
    assert list(scaling.benchmark_table(bench).index) == ["hf float32", "hf bfloat16", "vllm float32"]
    empty = scaling.benchmark("")
    assert empty["rows"] == [] and "no sampling_backends.json yet" in scaling.benchmark_sentence(empty)


def test_live_speed_is_compared_with_its_own_backend_only_when_comparable():
    bench = scaling.benchmark(json.dumps(BENCH))
    same = scaling.live_vs_benchmark(_live(), bench)
    assert same["why_not"] == "" and same["ratio"] == pytest.approx(68.9 / 25.3, rel=1e-9)
    assert "tiny-random" in scaling.live_vs_benchmark(_live(model="tiny-random"), bench)["why_not"]
    assert "cuda" in scaling.live_vs_benchmark(_live(device="cuda:0"), bench)["why_not"]
    assert scaling.live_vs_benchmark(_live(backend="vllm"), bench)["ratio"] == pytest.approx(68.9 / 38.2, rel=1e-9)
    no_row = dict(_live(), dtype="bfloat16", backend="vllm")
    assert "no vllm bfloat16 row" in scaling.live_vs_benchmark(no_row, bench)["why_not"]
    assert "close to the 25.3" in scaling.live_sentence(_live(27.0), bench)


def test_the_paragraph_ranks_backends_inside_the_benchmark_and_reads_the_live_run_against_it():
    """Issue 22: 08 called vLLM fastest at 38.2 tokens/s beside its own live run at 68.9."""
    bench = scaling.benchmark(json.dumps(BENCH))
    plan = plan_preset(Params.load("gpu-7b"), gpu_gib=scaling.GPU_GIB)
    check = scaling.planner_check(scaling.read_results(scaling.MEMORY_BENCHMARK))
    text = scaling.findings(bench, _live(), plan, check)
    assert "In the benchmark run of 2026-11-23" in text
    assert "vllm float32 was the fastest backend at 38.2 tokens per second, 1.51 times hf float32 in that run" in text
    assert "This run's hf float32 sampler wrote 68.9 tokens per second" in text
    assert "2.7 times the 25.3 of the same backend in the benchmark run" in text
    assert "compared only inside one run" in text
    title = scaling.throughput_title(bench, _live())
    assert title == ("one benchmark run: vllm float32 1.5x hf float32\n"
                     "this run's hf float32: 69 tokens/s, 2.7x the benchmark's")
    assert "not comparable" in scaling.findings(bench, _live(model="tiny-random"), plan, check)


def test_the_figure_shows_every_memory_item_on_linear_axes(tmp_path):
    bench = scaling.benchmark(json.dumps(BENCH))
    plan = plan_preset(Params.load("gpu-7b"), gpu_gib=scaling.GPU_GIB)
    check = scaling.planner_check(scaling.read_results(scaling.MEMORY_BENCHMARK))
    fig = scaling.figure(bench, _live(), plan, check)
    assert [ax.get_xscale() for ax in fig.axes] == ["linear"] * 3  # no overlapping log ticks
    assert all(ax.get_legend() is None for ax in fig.axes[:2])  # labels on the axis, not a legend
    plotting.savefig(fig, "fig", tmp_path)
    data = json.loads((tmp_path / "fig.data.json").read_text())
    items = [i for i in plan.items if i.gib > 0]
    assert len(data[1]["bars"]) == len(items)  # one bar per item, each labelled with its GiB
    assert {f"{i.gib:.2f}" for i in items} <= set(data[1]["texts"])
    assert data[0]["title"] == scaling.throughput_title(bench, _live())
    assert plotting.missing_error_bars(data, "fig") == []  # no accuracy plotted


def test_sharding_divides_weights_and_commands_cover_every_notebook():
    table = scaling.sharding_table(Params.load("gpu-7b"))
    assert table.loc["8 GPUs, FSDP / ZeRO-3", "total GiB"] < table.loc["8 GPUs, DDP", "total GiB"]
    assert table.loc["8 GPUs, DDP", "policy weights"] == table.loc["1 GPU", "policy weights"]
    commands = scaling.gpu_commands("smoke")
    papermill = [c for c in commands if c.startswith("papermill")]
    assert len(papermill) == len(notebook_paths()) and all("gpu-7b" in c for c in papermill)
    assert scaling.gpu_commands("gpu-small")[0].endswith("-f params/gpu-small.yaml")
