"""The chapter's deviations list (``esser_lab.keyframe.chapter.DEVIATIONS``) against the code.

Every entry names where its behaviour is checked (:data:`CHECKED_BY`; the chapter's list and
this table must hold the same titles, and each named test must exist): most here, the error
channel and RAFT's reduction in ``test_keyframe_method.py`` and ``test_keyframe_raft.py``, the
full-scale data in ``test_keyframe_paper_training.py`` where noted. The numbers each statement
types (learning rate, hole sides, precision, config names) are read back from the code in
:func:`test_the_list_states_what_the_code_does`, so a wrong statement fails."""

import math
import re
from pathlib import Path

import pytest
import torch

from esser_lab.data.video import flow_between, sample_clips
from esser_lab.keyframe import run as keyframe_run
from esser_lab.keyframe.chapter import DEVIATIONS
from esser_lab.keyframe.losses import LamaNLayerDiscriminator
from esser_lab.keyframe.method import PAPER_LOSS, keyframe_samples
from esser_lab.keyframe.model import KeyframeConfig, KeyframeGenerator
from esser_lab.keyframe.pretrained import ade20k_encoder
from esser_lab.keyframe.raft import RaftFlow
from esser_lab.keyframe.training import LitKeyframe, WarmUpCosine
from esser_lab.scale import DEVICE_ENV_VAR, profile
from esser_lab.training.trainer import make_trainer

pytestmark = pytest.mark.filterwarnings("ignore")  # Lightning's notes on tiny loaders

HERE = Path(__file__).parent
NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "15_keyframe.py"

#: Each deviation → the tests that check its behaviour (file in tests/keyframe :: function).
CHECKED_BY = {
    "The tiny loss": ["test_keyframe_deviations.py::test_the_tiny_loss_and_optimiser"],
    "Whole keyframes": ["test_keyframe_deviations.py::test_whole_keyframes"],
    "The data at full scale": [
        "test_keyframe_deviations.py::test_the_list_states_what_the_code_does"
    ],
    "The error channel in the hole": [
        "test_keyframe_method.py::test_samples_shapes_flow_and_corruption",
    ],
    "One generator pass a batch": [
        "test_keyframe_deviations.py::"
        "test_the_perceptual_network_stays_in_eval_mode_and_one_generator_pass_a_batch",
    ],
    "The perceptual network in eval mode": [
        "test_keyframe_deviations.py::"
        "test_the_perceptual_network_stays_in_eval_mode_and_one_generator_pass_a_batch",
    ],
    "The released-weights cell": [
        "test_keyframe_deviations.py::test_the_list_states_what_the_code_does",
    ],
    "The tiny optimiser": ["test_keyframe_deviations.py::test_the_tiny_loss_and_optimiser"],
    "Precision": ["test_keyframe_deviations.py::test_the_list_states_what_the_code_does"],
    "Hole masks": ["test_keyframe_deviations.py::test_one_box_hole_per_problem"],
    "The clips' error channel": [
        "test_keyframe_deviations.py::test_the_clips_error_is_the_norm_and_raft_the_official",
        "test_keyframe_raft.py::test_the_error_is_checked_after_the_flows_are_filled",
    ],
}


def _samples(n: int):
    g = torch.Generator().manual_seed(7)
    return keyframe_samples(sample_clips(n, generator=g), g)


def test_the_chapter_prints_the_list():
    source = NOTEBOOK.read_text()
    assert "from esser_lab.keyframe.chapter import DEVIATIONS" in source
    assert "DEVIATIONS.items()" in source
    assert set(DEVIATIONS) == set(CHECKED_BY)  # a new entry needs a check named here
    for title, checks in CHECKED_BY.items():
        for check in checks:
            file, name = check.split("::")
            assert f"def {name}(" in (HERE / file).read_text(), f"{title}: {check} is missing"


def test_the_list_states_what_the_code_does(monkeypatch):
    text = DEVIATIONS
    # precision: bf16-mixed on a GPU at small/full, fp32 at tiny and on the CPU
    monkeypatch.delenv(DEVICE_ENV_VAR, raising=False)
    assert "bf16 mixed" in text["Precision"] and "fp32" in text["Precision"]
    assert profile("small").precision == profile("full").precision == "bf16-mixed"
    assert profile("tiny").precision == "32-true"
    monkeypatch.setenv(DEVICE_ENV_VAR, "cpu")
    assert profile("small").precision == "32-true"
    # the tiny optimiser's rate, and small/full's rule (one GPU)
    tiny, small = keyframe_run._model("tiny"), keyframe_run._model("small")
    assert "2e-3" in text["The tiny optimiser"] and tiny.learning_rate == 2e-3
    assert math.isclose(
        small.learning_rate,
        PAPER_LOSS["base_learning_rate"] * PAPER_LOSS["accumulate_grad_batches"] * small.batch_size,
    )
    assert "accumulation 2" in text["The tiny optimiser"]
    assert PAPER_LOSS["accumulate_grad_batches"] == 2 and PAPER_LOSS["base_learning_rate"] == 1e-5
    # the loss: l1 at tiny, the paper's at small and full
    assert (tiny.objective, small.objective, keyframe_run._model("full").objective) == (
        "l1",
        "paper",
        "paper",
    )
    # full runs the small sizes
    assert keyframe_run._model("full").generator == KeyframeConfig.small()
    # the hole's sides: the defaults of keyframe_samples
    low, high = (int(x) for x in re.search(r"(\d+)–(\d+) %", text["Hole masks"]).groups())
    assert keyframe_samples.__kwdefaults__["hole"] == (low / 100, high / 100)
    # the released-weights cell feeds zero flow and zero error
    source = NOTEBOOK.read_text()
    cell = source[source.index("released = load_keyframe_generator") :]
    assert "torch.zeros(1, 2, 2, 256, 256), torch.zeros(1, 2, 1, 256, 256)" in cell[:600]


def test_the_tiny_loss_and_optimiser():
    """Tiny: the L1 objective, one Adam at a constant rate, no scheduler, no discriminator."""
    system = LitKeyframe(KeyframeGenerator(KeyframeConfig.tiny()))
    assert system.objective == "l1"
    optimiser = system.configure_optimizers()
    assert isinstance(optimiser, torch.optim.Adam)  # one optimiser, no scheduler
    assert optimiser.param_groups[0]["lr"] == 2e-3
    assert getattr(system, "discriminator", None) is None


def test_one_box_hole_per_problem():
    """One axis-aligned box a problem, sides in 35–60 % of the frame (rounded), at any size."""
    for size in (16, 32):
        g = torch.Generator().manual_seed(size)
        samples = keyframe_samples(sample_clips(32, 8, size, generator=g), g)
        for m in samples.mask[:, 0]:
            rows, cols = m.any(dim=1).nonzero()[:, 0], m.any(dim=0).nonzero()[:, 0]
            height, width = len(rows), len(cols)
            assert int(m.sum()) == height * width  # a full rectangle: one box
            assert rows[-1] - rows[0] + 1 == height and cols[-1] - cols[0] + 1 == width
            for side in (height, width):
                assert round(0.35 * size) <= side <= round(0.6 * size)


def test_the_clips_error_is_the_norm_and_raft_the_official():
    """Outside the hole the clips' error is ‖noise‖₂ (+1 where invalid); RaftFlow's default
    reduction is the official mean of the absolute components."""
    g = torch.Generator().manual_seed(5)
    clips = sample_clips(8, generator=g)
    samples = keyframe_samples(clips, torch.Generator().manual_seed(2))
    exact, valid = flow_between(clips, samples.target, 0)
    noise = samples.flows[:, 0] - exact
    expected = noise.norm(dim=1, keepdim=True) + (~valid).float()
    known = samples.mask < 0.5
    assert torch.allclose(samples.flow_errors[:, 0][known], expected[known], atol=1e-5)
    assert not torch.allclose(
        samples.flow_errors[:, 0][known], noise.abs().mean(1, keepdim=True)[known], atol=1e-3
    )
    assert RaftFlow(lambda *a, **k: [], resolution=(8, 8)).official_error is True


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
