import pytest

from uniscale_integrations.answers import canonical_answer, extract_answer, numbers_equal, same_answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("First 3 + 4 = 7.\nAnswer: 7", "7"),
        ("Answer: **1,250**", "1250"),
        ("The answer is 42.", "42"),
        ("so we get -4", "-4"),
        ("Answer: 3.50", "3.5"),
        ("Answer: 12.0 legs", "12"),
        ("answer: Paris.", "Paris"),
        ("no digits here", None),
        ("Step 1: 5. Step 2: 9. Answer: 14\nAnswer: 15", "15"),
        ("The answer to this classic question lies in the anatomy.", None),
        ("It depends. The answer lies in the details.", None),
        ("She answered: 8 apples, then 9.", "9"),
    ],
)
def test_extract_answer(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


def test_numeric_checking_tolerates_formatting() -> None:
    assert numbers_equal("1,000", "1000")
    assert numbers_equal("0.1", ".1")
    assert not numbers_equal("7", "8")
    assert not numbers_equal("seven", "7")
    assert same_answer("14", "14.0")
    assert not same_answer("14", "15")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Therefore, the final answer is:\n\\[\n\\boxed{128}\n\\]", "128"),
        ("60 + 68 = 128. Answer: \\(\\boxed{128}\\)", "128"),
        ("Answer: 3 but really \\boxed{4}", "4"),
        ("the answer is \\[ 5 \\]", "5"),
    ],
)
def test_boxed_answers_win(text: str, expected: str) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answer: 17:37:00", "17:37:00"),
        ("Answer: No.", "No"),
        ("Answer: **Monday**", "Monday"),
        ("Answer: 3/4", "3/4"),
        ("Answer: 2 hours, 15 minutes", "2 hours, 15 minutes"),
        ("Answer: 48 + 37 - 12 = 73", "48 + 37 - 12 = 73"),
        ("Answer: $1,250.00", "1250"),
        ("Answer: x = 12", "12"),
    ],
)
def test_stated_answers_that_are_not_one_number_are_kept_whole(text: str, expected: str) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("3/4", "0.75", True),
        ("\\frac{1}{2}", "0.5", True),
        ("48 + 37 - 12 = 73", "73", True),
        ("2^{10}", "1024", True),
        ("1/3", "0.333333", True),
        ("No", "no.", True),
        ("17:37:00", "17:37", False),
        ("17:37:00", "37", False),
        ("[1, 2, 3]", "3", False),
        ("Monday", "Tuesday", False),
        ("9^{9^{9}}", "1", False),
    ],
)
def test_answers_compare_by_value_or_by_text(a: str, b: str, same: bool) -> None:
    assert same_answer(a, b) is same
    assert same_answer(b, a) is same
    if same and "/" not in a + b:
        assert canonical_answer(a) == canonical_answer(b)
