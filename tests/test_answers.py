import pytest

from uniscale_integrations.core.answers import check_numeric, extract_answer, numbers_equal


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
    assert check_numeric("14", "14")
    assert not check_numeric(None, "14")


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
