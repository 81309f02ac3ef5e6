import pytest

from larpo_lite.tasks import answers_equal, extract_answer, is_correct


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("She has 5 + 3 = 8 apples.\n#### 8", "8"),
        ("#### 1,234", "1234"),
        ("first #### 3 then later #### 7", "7"),
        ("#### -5", "-5"),
        ("#### 3.5", "3.5"),
        ("So the answer is 42.", "42"),
        ("The answer is 12 but then 13 more", "12"),
        ("I think the answer is -7 apples", "-7"),
        ("10 - 4 = 6 apples left", "6"),
        ("5-3 makes 2", "2"),
        ("We get 1,000,000 in total", "1000000"),
        ("The value is 3.0.", "3.0"),
        ("no digits here", None),
        ("", None),
        ("#### (no number) but earlier 9", "9"),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_hash_marks_beat_answer_is():
    assert extract_answer("the answer is 4\n#### 5") == "5"


def test_answer_is_beats_last_number():
    assert extract_answer("The answer is 4, checked with 2 + 2") == "4"


def test_is_correct_numeric_equality():
    assert is_correct("#### 3.0", "3")
    assert is_correct("The answer is 1,200", "1200")
    assert is_correct("#### -5", -5)
    assert not is_correct("#### 5", "-5")
    assert not is_correct("nothing", "0")
    assert answers_equal("3.50", "3.5")
    assert not answers_equal(None, "3")


def test_extract_answer_rejects_non_str():
    with pytest.raises(TypeError):
        extract_answer(5)  # type: ignore[arg-type]
