"""Chapter 8's exercise 1 and 2 checkers: pixel shares per part, majority = matched part."""

import torch

from esser_lab.data import figures
from esser_lab.part_discovery import figure_labels, part_iou
from esser_lab.part_discovery.exercises import (
    check_majority_agreement,
    check_part_usage,
    majority_agreement,
    part_usage,
)

K = 7


def labels():
    f = figures.sample(16, 16, generator=torch.Generator().manual_seed(0))
    true = figure_labels(f.part_masks)
    # "discovered" parts: the true parts renamed (class c -> part c + 1), the left half of the
    # torso (class 1) split off as part 6; part 0 is then never used
    pred = true + 1
    pred[..., :8][true[..., :8] == 1] = 6
    return true, pred, f


def test_the_shares_by_hand_and_the_solution_is_accepted():
    true, pred, _ = labels()
    shares = part_usage(pred, K)
    assert shares[0] == 0 and abs(sum(shares) - 1) < 1e-12
    assert shares[1] == (true == 0).float().mean().item()  # the background became part 1
    solution = (torch.bincount(pred.flatten(), minlength=K).float() / pred.numel()).tolist()
    assert check_part_usage(pred, K, solution)
    counts = check_part_usage(pred, K, torch.bincount(pred.flatten(), minlength=K).tolist())
    assert not counts and "sum to 1" in str(counts)
    assert all(f"{share:.3f}"[1:] not in str(counts) for share in shares if share)
    assert not check_part_usage(pred, K, solution[1:])  # the unused part 0 left out
    assert "no answer yet" in str(check_part_usage(pred, K, None))


def test_the_agreement_follows_the_matching_and_the_solution_is_accepted():
    true, pred, f = labels()
    assignment = part_iou(pred, true, K, 5).assignment
    assert assignment[0] == 1 and assignment[1] in (2, 6) and assignment[2:].tolist() == [3, 4, 5]
    rates = majority_agreement(pred, true, K, assignment)
    assert rates[1:] == [1.0, 1.0, 1.0]  # the renamed parts always agree
    assert 0 < rates[0] < 1  # the split torso: its larger half differs between figures
    present = f.part_masks.flatten(2).any(2)
    majority = torch.stack([
        torch.bincount(p[t == c], minlength=K).argmax() if (t == c).any() else torch.tensor(0)
        for p, t in zip(pred, true, strict=True) for c in range(5)
    ]).view(-1, 5)  # fmt: skip
    solution = (((majority[:, 1:] == assignment[1:]) & present).float().sum(0)
                / present.float().sum(0)).tolist()  # fmt: skip
    assert check_majority_agreement(pred, true, K, assignment, solution)
    wrong = check_majority_agreement(pred, true, K, assignment, [1.0] * 4)
    assert not wrong and "[0]" in str(wrong) and f"{rates[0]:.2f}"[1:] not in str(wrong)
    assert "no answer yet" in str(check_majority_agreement(pred, true, K, assignment, None))
