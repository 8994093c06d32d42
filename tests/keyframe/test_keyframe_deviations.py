"""The chapter's deviations list (``esser_lab.keyframe.chapter.DEVIATIONS``) states what the code
does: each behaviour it names is checked here, and the chapter prints the list."""

from pathlib import Path

import pytest
import torch

from esser_lab.data.video import sample_clips
from esser_lab.keyframe.chapter import DEVIATIONS
from esser_lab.keyframe.losses import LamaNLayerDiscriminator
from esser_lab.keyframe.method import keyframe_samples
from esser_lab.keyframe.model import KeyframeConfig, KeyframeGenerator
from esser_lab.keyframe.pretrained import ade20k_encoder
from esser_lab.keyframe.training import LitKeyframe, WarmUpCosine
from esser_lab.scale import profile
from esser_lab.training.trainer import make_trainer

pytestmark = pytest.mark.filterwarnings("ignore")  # Lightning's notes on tiny loaders

NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "15_keyframe.py"


def _samples(n: int):
    g = torch.Generator().manual_seed(7)
    return keyframe_samples(sample_clips(n, generator=g), g)


def test_the_chapter_prints_the_list():
    source = NOTEBOOK.read_text()
    assert "from esser_lab.keyframe.chapter import DEVIATIONS" in source
    assert "DEVIATIONS.items()" in source
    expected = {
        "The tiny loss",
        "Whole keyframes",
        "The data at full scale",
        "The error channel in the hole",
        "One generator pass a batch",
        "The perceptual network in eval mode",
        "The released-weights cell",
    }
    assert set(DEVIATIONS) == expected


def test_whole_keyframes():
    """Keyframes enter with a zero mask channel and their full content."""
    samples = _samples(4)
    _, keys = samples.inputs()
    assert torch.equal(keys[:, :, 3], torch.zeros_like(keys[:, :, 3]))
    assert torch.equal(keys[:, :, :3], samples.keys)


def test_the_perceptual_network_stays_in_eval_mode_and_one_generator_pass_a_batch():
    system = LitKeyframe(
        KeyframeGenerator(KeyframeConfig.tiny()),
        objective="paper",
        perceptual=ade20k_encoder("stand-in"),
        discriminator=LamaNLayerDiscriminator(3, 8, 2),
        accumulate_grad_batches=1,
        schedule=WarmUpCosine(0, 10),
    )
    system.train()
    assert system.generator.training and system.discriminator.training
    assert not system.perceptual.training
    before = {k: v.clone() for k, v in system.perceptual.state_dict().items()}
    calls = []
    system.generator.register_forward_hook(lambda *_: calls.append(1))
    data = _samples(6).as_dict()
    batches = [{k: v[2 * i : 2 * i + 2] for k, v in data.items()} for i in range(3)]

    class Batches:
        def __iter__(self):
            return iter(batches)

        def __len__(self):
            return len(batches)

    trainer = make_trainer(profile("tiny"), 3, progress_every=10_000)
    trainer.fit(system, train_dataloaders=Batches())
    assert trainer.global_step == 3 and len(calls) == 3  # once per batch, not once per player
    after = system.perceptual.state_dict()  # BatchNorm's running statistics never moved
    assert all(torch.equal(before[k], after[k]) for k in before)
