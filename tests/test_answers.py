import pytest

from larpo_lite.tasks import answers_equal, extract_answer, is_correct, normalize_number


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


@pytest.mark.parametrize(
    ("text", "expected", "value"),
    [
        ("#### .5", ".5", "0.5"),
        ("the answer is -.25 now", "-.25", "-0.25"),
        ("#### \u22125", "-5", "-5"),
        ("She ends with \u221212 dollars", "-12", "-12"),
        ("#### 1e3", "1e3", "1000"),
        ("so 2.5E-2 of it", "2.5E-2", "0.025"),
        ("#### 4e", "4", "4"),  # an e without digits ends the number
        ("v1.2.3", "3", "3"),    # a dot after a word or a dot starts no number
    ],
)
def test_minus_sign_leading_dot_and_scientific_notation(text, expected, value):
    assert extract_answer(text) == expected
    assert answers_equal(extract_answer(text), value)


def test_these_forms_are_not_read_as_another_number():
    assert is_correct("#### .5", "0.5") and not is_correct("#### .5", "5")
    assert is_correct("#### \u22125", "-5") and not is_correct("#### \u22125", "5")
    assert is_correct("#### 1e3", "1000") and not is_correct("#### 1e3", "3")
    assert normalize_number("nan") is None and normalize_number("inf") is None


def test_strict_reads_only_the_answer_line():
    from larpo_lite.tasks.answers import answer_rule

    text = "There are 13 placeholders in this greeting: 13"
    assert extract_answer(text) == "13" and answer_rule(text) == "last number"
    assert extract_answer(text, strict=True) is None and not is_correct(text, "13", strict=True)
    assert is_correct("3 + 4 = 7\n#### 7", "7", strict=True)
    assert extract_answer("the answer is 5", strict=True) is None
    assert answer_rule("the answer is 5") == "answer is" and answer_rule("#### 2") == "####"
    assert answer_rule("no number here") == "none"
