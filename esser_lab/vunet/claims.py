"""Chapter 1's claims (Variational U-Net, Esser, Sutter & Ommer, CVPR 2018; arXiv:1804.04694).

The paper's claim: trained on single images, the VUNet transfers the appearance of an image ``x``
onto the pose ``ŷ`` of another. Its comparison is PG2 (Ma et al. 2017), a U-Net on the condition
image concatenated with the target pose, trained on *pairs* of one person in two poses (its table
with PG2, recalled in our notes, unverified: SSIM 0.786 against 0.762 on DeepFashion). On real data
there is no ground truth for a transfer; on procedural figures there is, so we score the transfer
itself, against PG2's generator built in the same U-Net (``VUNetConfig.paired_baseline``) and
trained the same way (data, objective, optimiser, steps) but with PG2's supervision, pairs:

* ``transfer-colour``: the part-colour error of the transfer (lower is better);
* ``transfer-ssim``: the SSIM of the transfer against the ground truth (higher is better);
* ``transfer-colour-chance`` (sanity): the part-colour error of random colours.

:func:`transfer_scores` measures a VUNet (or the shape-only U-Net), :func:`paired_transfer_scores`
the paired baseline, :func:`file_claims` files the comparisons on a card.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from esser_lab.cards import Card, PaperPair
from esser_lab.data import figures
from esser_lab.metrics import part_colour_error, ssim
from esser_lab.nn import placement
from esser_lab.vunet.method import reconstruct, transfer
from esser_lab.vunet.model import VUNet

__all__ = [
    "TransferScores",
    "file_claims",
    "paired_transfer_scores",
    "random_colour_error",
    "transfer_scores",
]

BASELINE = (
    "PG2's generator in the same U-Net (input: the source image and the target ŷ), trained the "
    "same way on pairs of one figure in two poses"
)
WHY = (
    "the paper's comparison: PG2 needs pairs of one person in two poses; the VUNet learns from "
    "single images. With paired supervision the baseline can win"
)


@dataclass(frozen=True)
class TransferScores:
    """One model on held-out figures: appearance of figure i, pose of figure π(i)."""

    reconstruction: float  # part-colour error of the reconstruction from its own pose
    transfer: float  # part-colour error of the transfer against the ground truth
    vs_pose_donor: float  # the same transfer against the pose donor's colours
    ssim: float  # SSIM of the transfer against the ground truth image


@torch.no_grad()
def transfer_scores(
    model: VUNet, test: figures.Figures, crops: torch.Tensor, pose_of: torch.Tensor
) -> TransferScores:
    """Score ``model`` on ``test``: each figure's appearance (``crops``) on pose ``pose_of[i]``.

    The ground truth renders the keypoints of ``test[pose_of]`` with the appearance of ``test``.
    """
    if pose_of.shape != (len(test.image),):
        raise ValueError(f"pose_of must be ({len(test.image)},), got {tuple(pose_of.shape)}")
    appearance = figures.Appearance(test.colours, test.background, test.texture)
    truth = figures.render(test.keypoints[pose_of], appearance, test.image.shape[-1])
    out = transfer(model, crops, test.stickman[pose_of])
    rec = reconstruct(model, crops, test.stickman)
    return TransferScores(
        reconstruction=part_colour_error(rec, test.part_masks, test.colours).mean().item(),
        transfer=part_colour_error(out, truth.part_masks, truth.colours).mean().item(),
        vs_pose_donor=part_colour_error(out, truth.part_masks, test.colours[pose_of]).mean().item(),
        ssim=ssim(out, truth.image).mean().item(),
    )


@torch.no_grad()
def paired_transfer_scores(
    model: VUNet, test: figures.Figures, pose_of: torch.Tensor
) -> TransferScores:
    """Score the paired baseline (``VUNetConfig.paired_baseline``) on ``test``: it reads
    ``[ŷ of test[pose_of], the image of test]`` and must paint the figure in the new pose;
    its reconstruction reads the figure's own ŷ and image."""
    if pose_of.shape != (len(test.image),):
        raise ValueError(f"pose_of must be ({len(test.image)},), got {tuple(pose_of.shape)}")
    if model.config.shape_channels != test.stickman.shape[1] + test.image.shape[1]:
        raise ValueError(
            "the paired baseline reads [ŷ, image]: shape_channels must be "
            f"{test.stickman.shape[1] + test.image.shape[1]}, got {model.config.shape_channels}"
        )
    appearance = figures.Appearance(test.colours, test.background, test.texture)
    truth = figures.render(test.keypoints[pose_of], appearance, test.image.shape[-1])
    out = transfer(model, test.image, torch.cat([test.stickman[pose_of], test.image], dim=1))
    rec = reconstruct(model, test.image, torch.cat([test.stickman, test.image], dim=1))
    return TransferScores(
        reconstruction=part_colour_error(rec, test.part_masks, test.colours).mean().item(),
        transfer=part_colour_error(out, truth.part_masks, truth.colours).mean().item(),
        vs_pose_donor=part_colour_error(out, truth.part_masks, test.colours[pose_of]).mean().item(),
        ssim=ssim(out, truth.image).mean().item(),
    )


def random_colour_error(colours: torch.Tensor, generator: torch.Generator) -> float:
    """The part-colour error of uniformly random colours in [-1, 1], in [0, 1] RGB units."""
    random = placement.rand(colours.shape, generator=generator, device=colours.device) * 2 - 1
    return (random - colours).abs().mean().item() / 2


def file_claims(
    card: Card,
    vunet: TransferScores,
    baseline: TransferScores,
    chance: float,
    num_test: int = 512,
) -> Card:
    """File chapter 1's claims on ``card`` (scores on ``num_test`` held-out figures)."""
    card.add(
        "transfer-colour",
        "Trained on single images, the VUNet transfers the appearance of x onto the pose of y: "
        "its transfer's part colours are closer to the ground truth than PG2's, trained on pairs",
        metric="part-colour error of the transfer against the ground truth, [0, 1] RGB units, "
        f"{num_test} held-out figures",
        ours=vunet.transfer,
        baseline=BASELINE,
        baseline_value=baseline.transfer,
        why=WHY,
        better="lower",
    )
    card.add(
        "transfer-ssim",
        "Transfers are structurally closer to the target: a higher SSIM against the ground "
        "truth than PG2's, trained on pairs",
        metric="SSIM of the transfer against the ground truth (torchmetrics, Gaussian window "
        f"σ = 1.5), {num_test} held-out figures",
        ours=vunet.ssim,
        baseline=BASELINE,
        baseline_value=baseline.ssim,
        why=WHY,
        better="higher",
        paper=PaperPair(
            0.786,
            0.762,
            "SSIM on DeepFashion, VUNet vs PG2",
            "the paper's comparison with PG2, recalled in our notes (unverified)",
            better="higher",
        ),
    )
    card.add(
        "transfer-colour-chance",
        "The VUNet's transfer colours are closer to the ground truth than random colours",
        metric="part-colour error, [0, 1] RGB units",
        ours=vunet.transfer,
        baseline="uniformly random part colours",
        baseline_value=chance,
        why="a constant reference (sanity check)",
        better="lower",
        kind="sanity",
    )
    return card
