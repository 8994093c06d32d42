"""Chapter 19's exercise checkers accept the answers the package gives and refuse others."""

import torch

from esser_lab.selfflow.exercises import check_masked_tokens, check_teacher_time_in_sit
from esser_lab.selfflow.method import token_mask


def test_the_mask_count_checker_agrees_with_token_mask():
    for tokens, ratio in ((16, 0.25), (16, 0.3), (64, 0.25), (10, 0.25)):
        counts = token_mask(50, tokens, ratio, torch.Generator().manual_seed(0)).sum(1).unique()
        assert len(counts) == 1 and check_masked_tokens(tokens, ratio, int(counts))
    assert not check_masked_tokens(16, 0.25, 0.25)  # the share, not the count
    assert "too low" in str(check_masked_tokens(16, 0.25, 0.25))


def test_the_teacher_time_choice():
    assert check_teacher_time_in_sit("max") and check_teacher_time_in_sit(" MAX ")
    wrong = check_teacher_time_in_sit("min")
    assert not wrong and "larger time means less noise" in str(wrong)
    assert "no answer yet" in str(check_teacher_time_in_sit(None))
    assert "one of" in str(check_teacher_time_in_sit("t"))
