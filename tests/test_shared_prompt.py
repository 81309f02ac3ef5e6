"""The shared-prompt list forward (larpo_lite.logprobs.list_logprobs): one packed row per list,
the prompt once and its K responses after it. Log-probs and parameter gradients must equal the
unshared path (one full sequence per candidate), and so must training."""

from __future__ import annotations

import copy

import pytest
import torch

from larpo_lite.logprobs import (
    ReferenceCache,
    batched_sequence_logprobs,
    encode_pairs,
    list_attention_mask,
    list_logprobs,
    sequence_logprobs,
    tokenize_lists,
    tokenize_pairs,
)
from larpo_lite.tasks import build_prompt
from larpo_lite.trainer import RankedList, TrainConfig, train_ranking

pytestmark = pytest.mark.usefixtures("one_thread")

RTOL, ATOL = 1e-4, 1e-5
QUESTIONS = ["What is 2 + 2?",
             "Tom has 3 apples and buys 4 more. How many apples does he have now?",
             "A train leaves at 3 pm and travels 120 km at 60 km per hour. When does it arrive?"]
ANSWERS = ["4", "2 + 2 = 4.\n#### 4", "", "I think the answer is five, or maybe 7.",
           "He has 3 + 4 = 7 apples, so the answer is 7.\n#### 7", "#### 12",
           "Two hours later: 5 pm. The answer is 5.", "Not sure"]


def make_lists(tok, k: int) -> tuple[list[str], list[list[str]]]:
    """Two lists of different prompts, K and K // 2 + 1 responses of unequal lengths."""
    prompts = [build_prompt(QUESTIONS[k % 3], tok), build_prompt(QUESTIONS[(k + 1) % 3], tok)]
    first = [ANSWERS[(3 * i) % len(ANSWERS)] + " ok" * i for i in range(k)]
    second = [ANSWERS[(i + 1) % len(ANSWERS)] for i in range(k // 2 + 1)]
    return prompts, [first, second]


def flat(prompts: list[str], responses: list[list[str]]) -> tuple[list[str], list[str]]:
    return ([p for p, rs in zip(prompts, responses, strict=True) for _ in rs],
            [r for rs in responses for r in rs])


def logprobs_and_grads(model, tok, prompts, responses, shared: bool, max_length=None):
    """Per-response log-probs [N] and the gradient of a weighted sum of them, by parameter."""
    model.zero_grad(set_to_none=True)
    if shared:
        lp = list_logprobs(model, tokenize_lists(tok, prompts, responses, max_length))
    else:
        lp = sequence_logprobs(model, tokenize_pairs(tok, *flat(prompts, responses), max_length))
    weights = torch.linspace(-1.0, 1.5, len(lp))  # every response weighs in, differently
    (weights * lp).sum().backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()
             if p.requires_grad and p.grad is not None}
    return lp.detach(), grads


def assert_same(model, tok, prompts, responses, max_length=None, per_tensor=False):
    """Shared and unshared log-probs agree elementwise; so do the gradients, or with
    ``per_tensor`` to within ``ATOL + RTOL * max|grad|`` of each parameter tensor."""
    lp_s, g_s = logprobs_and_grads(model, tok, prompts, responses, True, max_length)
    lp_u, g_u = logprobs_and_grads(model, tok, prompts, responses, False, max_length)
    assert lp_s.shape == (sum(map(len, responses)),)
    torch.testing.assert_close(lp_s, lp_u, rtol=RTOL, atol=ATOL)
    assert g_s.keys() == g_u.keys() and g_s
    assert any(float(g.abs().max()) > 0 for g in g_u.values())
    for name, g in g_u.items():
        if per_tensor:
            diff, scale = float((g_s[name] - g).abs().max()), float(g.abs().max())
            assert diff <= ATOL + RTOL * scale, (name, diff, scale)
        else:
            torch.testing.assert_close(g_s[name], g, rtol=RTOL, atol=ATOL,
                                       msg=lambda m, name=name: f"{name}: {m}")


# --------------------------------------------------------------------------- layout


def test_packed_row_layout(tiny):
    _, tok = tiny
    prompts, responses = make_lists(tok, 4)
    b = tokenize_lists(tok, prompts, responses)
    pairs = encode_pairs(tok, *flat(prompts, responses))
    assert len(b) == 2 and b.counts.tolist() == [4, 3] and b.num_responses == 7
    n = 0
    for row, rs in enumerate(responses):
        plen = pairs[n][1]
        prompt_ids = pairs[n][0][:plen]
        assert b.input_ids[row, :plen].tolist() == prompt_ids
        assert b.position_ids[row, :plen].tolist() == list(range(plen))
        assert (b.segment_ids[row, :plen] == 0).all() and (b.target_index[row, :plen] == -1).all()
        at = plen
        for k in range(len(rs)):
            rids = pairs[n][0][plen:]  # response + EOS, as alone
            end = at + len(rids)
            assert b.input_ids[row, at:end].tolist() == rids
            assert b.position_ids[row, at:end].tolist() == list(range(plen, plen + len(rids)))
            assert (b.segment_ids[row, at:end] == k + 1).all()
            assert (b.target_index[row, at:end] == n).all()
            # the first token is predicted from the prompt's last position
            assert b.source_position[row, at:end].tolist() == [plen - 1, *range(at, end - 1)]
            at, n = end, n + 1
        assert (b.segment_ids[row, at:] == -1).all() and (b.target_index[row, at:] == -1).all()
        assert (b.input_ids[row, at:] == tok.pad_token_id).all()
    # each list's prompt counts once, each response (+ EOS) once
    assert b.num_tokens == pairs[0][1] + pairs[4][1] + sum(len(ids) - plen
                                                           for ids, plen, _ in pairs)
    assert not b.truncated.any() and b.truncated.shape == (7,)


def test_block_attention_mask():
    # prompt of 2, response a of 2, response b of 3, 1 padding
    seg = torch.tensor([[0, 0, 1, 1, 2, 2, 2, -1]])
    m = list_attention_mask(seg)[0, 0]
    assert m.shape == (8, 8)
    allowed = {(q, k) for q in range(8) for k in range(8) if m[q, k]}
    want = {(0, 0), (1, 0), (1, 1)}
    want |= {(q, k) for q in (2, 3) for k in (0, 1, 2, 3) if k <= q}
    want |= {(q, k) for q in (4, 5, 6) for k in (0, 1, 4, 5, 6) if k <= q}
    want |= {(7, 0), (7, 1), (7, 7)}  # padding: the prompt and itself, never seen
    assert allowed == want


def test_empty_list_is_an_error(tiny):
    _, tok = tiny
    with pytest.raises(ValueError, match="list 1"):
        tokenize_lists(tok, ["a", "b"], [["x"], []])


# --------------------------------------------------------------------------- equal to unshared


@pytest.mark.parametrize("k", [2, 4, 8])
def test_logprobs_and_gradients_equal_the_unshared_path(tiny, k):
    model, tok = tiny
    m = copy.deepcopy(model).train()
    assert_same(m, tok, *make_lists(tok, k))


def test_mean_reduction_and_truncation_match(tiny):
    model, tok = tiny
    prompts, responses = make_lists(tok, 4)
    plen = max(len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts)
    cut = plen + 6  # longer responses are cut, as in their own sequences
    lb = tokenize_lists(tok, prompts, responses, max_length=cut)
    pb = tokenize_pairs(tok, *flat(prompts, responses), max_length=cut)
    assert lb.truncated.any() and lb.truncated.tolist() == pb.truncated.tolist()
    with torch.no_grad():
        for red in ("sum", "mean"):
            torch.testing.assert_close(list_logprobs(model, lb, red),
                                       sequence_logprobs(model, pb, red), rtol=RTOL, atol=ATOL)
    m = copy.deepcopy(model)
    assert_same(m, tok, prompts, responses, max_length=cut)


def test_eager_attention_takes_an_additive_mask(tiny):
    model, tok = tiny
    m = copy.deepcopy(model)
    m.set_attn_implementation("eager")
    assert m.config._attn_implementation == "eager"
    assert_same(m, tok, *make_lists(tok, 4))


def test_lora_gradients_equal_the_unshared_path(tiny):
    from peft import LoraConfig, get_peft_model

    model, tok = tiny
    m = get_peft_model(copy.deepcopy(model), LoraConfig(
        r=4, lora_alpha=8, task_type="CAUSAL_LM", target_modules=["q_proj", "k_proj", "v_proj",
                                                                  "o_proj"]))
    torch.manual_seed(0)
    with torch.no_grad():  # lora_B starts at 0, which would leave lora_A without gradient
        for n, p in m.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    _, grads = logprobs_and_grads(m, tok, *make_lists(tok, 4), shared=True)
    assert grads and all("lora_" in n for n in grads)
    assert_same(m, tok, *make_lists(tok, 4))


def test_batched_and_reference_cache_agree_with_the_unshared_path(tiny):
    model, tok = tiny
    prompts, responses = make_lists(tok, 8)
    fp, fr = flat(prompts, responses)
    # interleave the two lists' pairs: grouping by prompt must put results back in input order
    order = [0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 6, 7]
    fp, fr = [fp[i] for i in order], [fr[i] for i in order]
    want = batched_sequence_logprobs(model, tok, fp, fr, batch_size=4, share_prompt=False)
    for bs in (1, 3, 16):
        got = batched_sequence_logprobs(model, tok, fp, fr, batch_size=bs)
        torch.testing.assert_close(got, want, rtol=RTOL, atol=ATOL)
    shared, unshared = ReferenceCache(batch_size=16), ReferenceCache(batch_size=16)
    pairs = list(zip(fp, fr, strict=True))
    shared.compute(model, tok, pairs)
    unshared.compute(model, tok, pairs, share_prompt=False)
    assert shared.n_forward == unshared.n_forward == 1
    torch.testing.assert_close(shared.get(fp, fr), unshared.get(fp, fr), rtol=RTOL, atol=ATOL)
    # 13 responses, at most 4 per forward: the list of 8 in two chunks of 4, the list of 5 in
    # 4 + 1; chunks of one prompt are never mixed with another into more than 4 responses
    few = ReferenceCache(batch_size=4)
    few.compute(model, tok, pairs)
    assert few.n_forward == 4
    torch.testing.assert_close(few.get(fp, fr), want, rtol=RTOL, atol=ATOL)


# --------------------------------------------------------------------------- training


def _lists(tok) -> list[RankedList]:
    out = []
    for k in (2, 4, 3, 8):
        prompts, responses = make_lists(tok, k)
        out.append(RankedList(prompts[0], responses[0]))
    return out


@pytest.mark.parametrize("objective,lora", [("pairwise", False), ("listmle", False),
                                            ("lambdarank", True), ("sft", False)])
def test_two_training_steps_give_the_same_losses(tiny, objective, lora):
    model, tok = tiny
    lists = _lists(tok)
    runs = {}
    for share in (True, False):
        cfg = TrainConfig(objective=objective, beta=0.5, lr=1e-3, epochs=1, lists_per_step=2,
                          warmup_ratio=0.0, show_progress=False, max_length=128, shuffle=False,
                          share_prompt=share,
                          lora={"r": 4, "lora_alpha": 8, "lora_dropout": 0.0,
                                "target_modules": ["q_proj", "v_proj"]} if lora else None)
        runs[share] = train_ranking(copy.deepcopy(model), tok, lists, cfg)
    a, b = runs[True].logs, runs[False].logs
    assert len(a) == len(b) == 2
    for ra, rb in zip(a, b, strict=True):
        assert ra["loss"] == pytest.approx(rb["loss"], abs=1e-4)
        assert ra["grad_norm"] == pytest.approx(rb["grad_norm"], rel=1e-3)
        if objective == "sft":  # one response per list: the same tokens either way
            assert ra["tokens"] == rb["tokens"]
        else:  # the prompt ran once per list
            assert ra["tokens"] < rb["tokens"]
    assert a[1]["loss"] != a[0]["loss"]  # the first step changed the model
    if objective != "sft":
        ref_a, ref_b = runs[True].reference, runs[False].reference
        assert ref_a.values.keys() == ref_b.values.keys()
        for key, v in ref_a.values.items():
            assert v == pytest.approx(ref_b.values[key], rel=RTOL, abs=ATOL)


# --------------------------------------------------------------------------- the real model


@pytest.mark.slow
def test_smollm2_logprobs_and_gradients_equal_the_unshared_path():
    """Gradients are compared per parameter tensor, relative to its largest entry: through 30
    float32 layers a few entries far below a tensor's scale differ by more than 1e-4 of
    themselves, and by as much between the unshared float32 path and a float64 run."""
    from larpo_lite.models import load_policy

    model, tok = load_policy("smollm2-135m-instruct", device="cpu", dtype="float32")
    model.train()
    for k in (2, 4, 8):  # one list per K
        prompts, responses = make_lists(tok, k)
        assert_same(model, tok, prompts[:1], responses[:1], per_tensor=True)
