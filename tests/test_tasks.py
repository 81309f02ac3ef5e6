import json

import pytest

from larpo_lite.tasks import (
    SPLITS,
    TEMPLATES,
    build_prompt,
    extract_answer,
    generate_problems,
    load_gsm8k,
    load_math,
    load_split,
    make_splits,
    read_problems,
)
from larpo_lite.tasks.hub import last_boxed
from larpo_lite.tasks.mini_gsm import split_path


def test_generator_is_deterministic_and_distinct():
    a = generate_problems(50, seed=7)
    b = generate_problems(50, seed=7)
    c = generate_problems(50, seed=8)
    assert a == b
    assert a != c
    assert len({p.question for p in a}) == 50


def test_every_template_and_difficulty_gives_checked_answers():
    for template in TEMPLATES:
        for level in (1, 2, 3):
            for p in generate_problems(20, seed=1, templates=[template], difficulty=level):
                assert p.template == template and p.difficulty == level
                # the worked solution ends with the gold answer, which the verifier reads
                assert extract_answer(p.solution) == p.answer
                assert int(p.answer) >= 0


def test_difficulty_knob_grows_numbers():
    def biggest(level):
        return max(int(p.answer) for p in generate_problems(200, seed=3, difficulty=level,
                                                           templates=["addition"]))
    assert biggest(1) < biggest(2) < biggest(3)


def test_bad_generator_arguments():
    with pytest.raises(ValueError, match="valid"):
        generate_problems(3, seed=0, templates=["division"])
    with pytest.raises(ValueError):
        generate_problems(3, seed=0, difficulty=7)


def test_committed_splits_match_generator_and_are_disjoint():
    fresh = make_splits()
    seen = set()
    for split in SPLITS:
        committed = load_split(split)
        assert committed == fresh[split], f"data/mini_gsm/{split}.jsonl differs from make_splits()"
        qs = {p.question for p in committed}
        assert not qs & seen
        seen |= qs
    assert len(load_split("test")) >= 200


def test_load_split_errors():
    with pytest.raises(ValueError, match="valid"):
        load_split("dev")
    with pytest.raises(ValueError, match="has"):
        load_split("test", n=10_000)


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"id": "a", "question": "q", "answer": "1"})
    path.write_text(good + "\n" + "{not json\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        read_problems(path)
    path.write_text(good + "\n" + json.dumps({"id": "b", "question": "q"}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: missing"):
        read_problems(path)
    assert split_path("test").name == "test.jsonl"


def test_prompt_uses_chat_template_and_asks_for_hashes(tiny):
    _, tok = tiny
    prompt = build_prompt("What is 2 + 2?", tok)
    assert "What is 2 + 2?" in prompt and "####" in prompt
    assert prompt.rstrip().endswith("assistant")  # generation prompt added


def test_gsm8k_loader_on_local_json(tmp_path):
    rows = [{"question": "Tom has 2 apples and buys 3. How many?", "answer": "2+3=5\n#### 5"},
            {"question": "A costs 1,000 and B 200. Total?", "answer": "#### 1,200"}]
    path = tmp_path / "gsm8k.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    probs = load_gsm8k(str(path))
    assert [p.answer for p in probs] == ["5", "1200"]
    assert probs[0].question.startswith("Tom")
    assert len(load_gsm8k(str(path), n=1)) == 1


def test_math_loader_on_local_json(tmp_path):
    rows = [{"problem": "What is $2+3$?", "solution": "It is $\\boxed{5}$."},
            {"problem": "Simplify.", "solution": "$\\boxed{\\frac{1}{2}}$"},
            {"problem": "Big?", "solution": "so \\boxed{1,024}"}]
    path = tmp_path / "math.json"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    probs = load_math(str(path))
    assert [p.answer for p in probs] == ["5", "1024"]  # the fraction is not a plain number
    assert len(load_math(str(path), numeric_only=False)) == 3
    assert last_boxed("a \\boxed{x^{2}} b") == "x^{2}"


def test_hub_loader_error_is_clear(tmp_path):
    with pytest.raises(RuntimeError, match="could not load dataset"):
        load_gsm8k(str(tmp_path / "missing-dir" / "none.jsonl"))


@pytest.mark.parametrize("gold", ["five", "", "1/2", "nan", True, None])
def test_a_gold_answer_that_is_not_a_number_is_refused_when_a_split_loads(tmp_path, monkeypatch,
                                                                          gold):
    from larpo_lite.tasks import mini_gsm

    path = tmp_path / "test.jsonl"
    rows = [{"id": "a", "question": "q", "answer": "1"},
            {"id": "b", "question": "q", "answer": "-.5"},
            {"id": "c", "question": "q", "answer": gold}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(mini_gsm, "split_path", lambda split: path)
    with pytest.raises(ValueError, match=r"test\.jsonl:3: gold answer .* is not a number"):
        load_split("test")
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    assert [p.answer for p in load_split("test")] == ["1", "-.5"]


def test_a_duplicate_problem_id_is_refused_naming_the_id_and_the_file(tmp_path, monkeypatch):
    from larpo_lite.tasks import mini_gsm

    path = tmp_path / "validation.jsonl"
    rows = [{"id": "val-1", "question": "q1", "answer": "1"},
            {"id": "val-2", "question": "q2", "answer": "2"},
            {"id": "val-1", "question": "q3", "answer": "3"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(mini_gsm, "split_path", lambda split: path)
    with pytest.raises(ValueError, match=r"validation\.jsonl:3: duplicate problem id 'val-1' "
                                         r"\(first on line 1\)"):
        load_split("validation")
    with pytest.raises(ValueError, match="duplicate problem id"):
        read_problems(path)


def test_a_duplicate_ultrafeedback_prompt_id_is_refused(tmp_path):
    from larpo_lite.tasks import load_task

    for name, n in (("train_prefs", 10), ("test_prefs", 3)):
        ids = [f"{name}-{i}" for i in range(n)]
        ids[-1] = ids[-2]  # the last row repeats the one before it
        (tmp_path / f"{name}.jsonl").write_text("".join(
            json.dumps({"prompt": f"Say {i}.", "prompt_id": pid}) + "\n" for i, pid in enumerate(ids)))
    with pytest.raises(ValueError, match=r"test_prefs row 2: duplicate problem id "
                                         r"'uf-test-test_prefs-1'.*first in row 1"):
        load_task("ultrafeedback", "test", None, str(tmp_path))
    assert len(load_task("ultrafeedback", "test", 2, str(tmp_path))) == 2  # the first two are fine
    assert len(load_task("ultrafeedback", "train", None, str(tmp_path))) == 8  # rows 8, 9: validation
    with pytest.raises(ValueError, match=r"train_prefs row 9: duplicate .*first in row 8"):
        load_task("ultrafeedback", "validation", None, str(tmp_path))
