"""esser_lab.exercises: verdicts that say right / not yet and why, never the expected value."""

import doctest

import torch

import esser_lab.exercises as ex


def test_close_answers_pass_and_misses_say_which_way_without_the_value():
    assert ex.check_close(0.52, 0.5, what="the fraction", rtol=0.1)
    assert ex.check_close(torch.tensor(0.5), 0.5, what="x")  # a 0-d tensor is a number
    low = ex.check_close(0.2, 0.4321, what="the fraction", too_low="Count both sides.")
    assert not low and "too low" in str(low) and "Count both sides." in str(low)
    assert "0.43" not in str(low)  # the answer is not given away
    high = ex.check_close(9, 0.4321, what="the fraction")
    assert "too high" in str(high) and "0.43" not in str(high)


def test_missing_or_malformed_answers_get_a_clear_message():
    assert "no answer yet" in str(ex.check_close(None, 1.0, what="x"))
    assert "no answer yet" in str(ex.check_close(..., 1.0, what="x"))
    assert "should be a number" in str(ex.check_close("abc", 1.0, what="x"))
    assert "finite" in str(ex.check_close(float("nan"), 1.0, what="x"))
    assert "3 values expected, got 2" in str(
        ex.check_all_close([1, 2], [1, 2, 3], what="v", atol=0.1)
    )


def test_sequences_and_choices():
    assert ex.check_all_close([1.0, 2.0], [1.0, 2.05], what="v", atol=0.1)
    wrong = ex.check_all_close([1.0, 3.0], [1.0, 2.0], what="v", atol=0.1)
    assert not wrong and "entries [1]" in str(wrong)
    assert ex.check_choice("Heun", "heun", ["euler", "heun"], what="the better solver")
    assert not ex.check_choice("euler", "heun", ["euler", "heun"], what="the better solver")
    assert "one of" in str(ex.check_choice("rk4", "heun", ["euler", "heun"], what="s"))


def test_the_module_example_runs():
    assert doctest.testmod(ex).failed == 0
