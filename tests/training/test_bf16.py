"""GPU-safe code, checked on the CPU: bf16 autocast, generators on another device, lazy history.

* one training step of every Lightning system under ``precision="bf16-mixed"`` (CPU autocast to
  bfloat16) ends with a finite loss, finite gradients and finite weights, and its layers did run
  in bfloat16;
* noise is drawn on the *generator's* device and then moved to the model's: with the model on the
  ``meta`` device and a CPU generator, torch's samplers are replaced by strict ones that refuse a
  generator of another device, as CUDA's do (on the CPU alone a mismatch would pass silently);
* the metrics that used to build CPU tensors follow their inputs (checked with the default device
  set to ``meta``, so a tensor made without a device would clash);
* ``History`` reads back exactly the floats ``float(value)`` gave at each step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import lightning as L
import pytest
import torch
from torch import nn

from esser_lab.training.catalog import SYSTEMS, build
from esser_lab.training.history import History

B = 4  # samples per batch

pytestmark = pytest.mark.filterwarnings("ignore")  # Lightning's notes on tiny loaders


# ---- every system with one batch -----------------------------------------------------------------

#: Every player and path on from the first step: both style-transfer players step on every batch
#: (a negative success rate), the discriminators join at step 0, RoDi's constraint is on from
#: step 0, and the optional noise and state (token noise, dropout, caption dropout, EMA) are on.
SWITCHES = dict(success_rate=-1.0, disc_start=0, warmup_steps=0, stochastic=True)


def _one_batch(name: str) -> tuple:
    built = build(name, "tiny", B, **SWITCHES)
    return built.system, built.make(B, torch.Generator().manual_seed(1))


class _Once:
    """One batch, as an iterable that is not a DataLoader (Lightning would re-shard it)."""

    def __init__(self, batch: dict) -> None:
        self.batch = batch

    def __iter__(self):
        return iter([self.batch])

    def __len__(self) -> int:
        return 1


class _Probe(L.Callback):
    """After the step: the losses it reported, and every gradient and weight."""

    def __init__(self) -> None:
        self.losses: dict[str, torch.Tensor] = {}
        self.grads: dict[str, torch.Tensor] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if isinstance(outputs, dict) and "loss" in outputs:
            self.losses["returned loss"] = outputs["loss"].detach().float()
        for key, value in trainer.callback_metrics.items():
            self.losses[f"logged {key}"] = torch.as_tensor(value).float()
        history = getattr(pl_module, "history", None)
        if history:
            self.losses |= {f"history {k}": torch.tensor(v) for k, v in history[-1].items()}
        self.grads = {
            name: p.grad.detach().clone()
            for name, p in pl_module.named_parameters()
            if p.grad is not None
        }


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_one_bf16_step_of_every_system_is_finite(name):
    torch.manual_seed(0)
    system, batch = _one_batch(name)
    seen: set[torch.dtype] = set()
    hooks = [  # the dtype of every module's tensor output
        m.register_forward_hook(lambda m, i, o: seen.add(o.dtype) if torch.is_tensor(o) else None)
        for m in system.modules()
    ]
    probe = _Probe()
    trainer = L.Trainer(
        accelerator="cpu", devices=1, precision="bf16-mixed", max_steps=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, limit_val_batches=0, callbacks=[probe],
    )  # fmt: skip
    trainer.fit(system, train_dataloaders=_Once(batch))
    for hook in hooks:
        hook.remove()
    assert trainer.global_step >= 1  # the style-transfer GAN steps both players: 2
    assert torch.bfloat16 in seen, f"{name}: no layer ran in bfloat16 ({seen})"
    assert probe.losses, f"{name} reported no loss"
    bad = [k for k, v in probe.losses.items() if not torch.isfinite(v).all()]
    assert bad == [], f"{name}: non-finite {bad}"
    assert probe.grads, f"{name}: no parameter got a gradient"
    bad = [k for k, g in probe.grads.items() if not torch.isfinite(g).all()]
    assert bad == [], f"{name}: non-finite gradients in {bad}"
    bad = [k for k, p in system.named_parameters() if not torch.isfinite(p).all()]
    assert bad == [], f"{name}: non-finite weights after the step in {bad}"


# ---- a CPU generator with a model on another device ----------------------------------------------


def _strict(original: Callable, device_of: Callable) -> Callable:
    """``original`` refusing a generator whose device differs from where it draws (as CUDA's)."""

    def strict(*args, generator=None, **kwargs):  # noqa: ANN001, ANN002, ANN003
        where = device_of(args, kwargs)
        if generator is not None and generator.device != where:
            raise RuntimeError(f"a {generator.device} generator drawing on {where}")
        return original(*args, generator=generator, **kwargs)

    return strict


@pytest.fixture
def strict_samplers(monkeypatch):
    """torch's samplers, strict about the generator's device (the meta device has no generator,
    so on it a draw with a CPU generator is refused, where the plain function would accept it)."""

    def requested(args, kwargs):  # noqa: ANN001, ANN202
        return torch.device(kwargs.get("device") or "cpu")

    for fn in ("randn", "rand", "randint"):
        monkeypatch.setattr(torch, fn, _strict(getattr(torch, fn), requested))
    monkeypatch.setattr(
        torch, "multinomial", _strict(torch.multinomial, lambda args, kwargs: args[0].device)
    )


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def test_the_strict_samplers_refuse_what_cuda_refuses(strict_samplers):
    with pytest.raises(RuntimeError, match="generator drawing on meta"):
        torch.randn(3, generator=_generator(), device="meta")
    with pytest.raises(RuntimeError, match="generator drawing on meta"):
        torch.multinomial(torch.ones(2, 3, device="meta"), 1, generator=_generator())


def test_noise_is_drawn_on_a_cpu_generator_for_a_model_on_the_meta_device(strict_samplers):
    from esser_lab.net2net import method as net2net_method
    from esser_lab.net2net.baselines import GaussianTranslator
    from esser_lab.nn.autoencoder import DiagonalGaussian
    from esser_lab.nn.flows import ConditionalFlow, Flow
    from esser_lab.part_discovery.model import FullGaussian, PartDiscovery, PartDiscoveryConfig
    from esser_lab.rodi.model import Posterior
    from esser_lab.taming.model import VQGANConfig, VQModel
    from esser_lab.taming.transformer import TamingTransformer, TamingTransformerConfig

    meta = torch.device("meta")
    out = DiagonalGaussian(torch.zeros(2, 8, device=meta)).sample(_generator())
    assert out.device == meta and out.shape == (2, 4)
    out = Posterior(torch.zeros(2, 3, 4, 4, device=meta), torch.zeros(2, 3, 4, 4, device=meta))
    assert out.sample(_generator()).device == meta
    gaussian = FullGaussian.from_parameters(torch.zeros(2, 3 + 6, device=meta), 3)
    assert gaussian.sample(_generator()).device == meta

    flow = Flow(8, 2, 16).to(meta).eval()
    assert flow.sample(3, generator=_generator()).device == meta
    conditional = ConditionalFlow(8, 4, 2, 16, embedding_dim=8).to(meta).eval()
    z_cond = torch.zeros(3, 4, device=meta)
    assert net2net_method.sample(conditional, z_cond, generator=_generator()).device == meta
    translator = GaussianTranslator(nn.Linear(4, 8).to(meta), torch.eye(8, device=meta))
    assert translator.sample(z_cond, generator=_generator()).shape == (3, 8)

    config = replace(PartDiscoveryConfig.tiny(), batch_size=2)
    parts = PartDiscovery(config).to(meta).train()
    x = torch.zeros(2, 3, config.image_size, config.image_size, device=meta)
    layout = parts.layout(x, _generator())  # π and the mask logits' noise
    assert layout.logits.device == meta

    first_stage = VQGANConfig(
        resolution=16, ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(4,),
        z_channels=8, embed_dim=8, n_embed=64,
    )  # fmt: skip
    config = replace(TamingTransformerConfig.tiny(), pkeep=0.5)
    transformer = TamingTransformer(config, VQModel(first_stage)).to(meta).train()
    codes = torch.zeros(2, 16, dtype=torch.long, device=meta)
    logits, _ = transformer(codes, torch.zeros(2, dtype=torch.long, device=meta), _generator())
    assert logits.device == meta


def test_multinomial_draws_on_the_generators_device_with_a_mocked_transfer(
    strict_samplers, monkeypatch
):
    """Token sampling and k-means++ with probabilities on ``meta``: the copy to the CPU generator
    and back is mocked (a meta tensor cannot be read), the device bookkeeping is real."""
    from esser_lab.diffusion.autoregressive import _next_token
    from esser_lab.nn import placement
    from esser_lab.part_discovery.method import colour_kmeans

    moves: list[tuple[str, str]] = []

    def mocked(x: torch.Tensor, device) -> torch.Tensor:  # noqa: ANN001
        device = torch.device(device)
        moves.append((x.device.type, device.type))
        if x.device == device:
            return x
        fill = 1 if x.is_floating_point() else 0
        return torch.full(x.shape, fill, dtype=x.dtype, device=device)

    monkeypatch.setattr(placement, "to_device", mocked)
    token = _next_token(torch.zeros(2, 5, device="meta"), 1.0, None, None, _generator())
    assert token.device.type == "meta" and token.shape == (2, 1)
    assert ("meta", "cpu") in moves and ("cpu", "meta") in moves
    moves.clear()
    pixels = torch.zeros(10, 3, device="meta")
    centroids = colour_kmeans(pixels, 3, iterations=0, generator=_generator())  # the init only
    assert centroids.shape == (3, 3) and centroids.device.type == "meta"
    assert moves.count(("meta", "cpu")) == 2  # the two k-means++ picks after the first


def test_cpu_noise_is_bitwise_what_it_was():
    """On the CPU the helpers draw the same stream as a plain call (the tiny runs don't move)."""
    from esser_lab.nn import placement

    a = placement.randn((3, 4), generator=_generator(), device="cpu", dtype=torch.float32)
    assert torch.equal(a, torch.randn(3, 4, generator=_generator()))
    b = placement.randint(7, (5,), generator=_generator(), device="cpu")
    assert torch.equal(b, torch.randint(7, (5,), generator=_generator()))
    p = torch.rand(4, 6, generator=_generator())
    c = placement.multinomial(p, 1, generator=_generator())
    assert torch.equal(c, torch.multinomial(p, 1, generator=_generator()))


def test_metrics_follow_their_inputs_not_the_default_device():
    """With the default device set to ``meta``, any tensor made without a device would land there
    and clash with the CPU inputs; the metrics run on their inputs' device instead."""
    from esser_lab.iin.method import linear_probe, linear_r2
    from esser_lab.metrics.landmarks import fit_landmark_regressor, landmark_error

    g = _generator()
    x, y = torch.randn(40, 3, generator=g), torch.randint(2, (40,), generator=g)
    landmarks, keypoints = torch.rand(20, 2, 2, generator=g), torch.rand(20, 3, 2, generator=g)
    with torch.device("meta"):
        accuracy = linear_probe(x[:30], y[:30], x[30:], y[30:], 2, steps=5)
        r2 = linear_r2(x[:30], x[:30, :1] * 2, x[30:], x[30:, :1] * 2)
        regressor = fit_landmark_regressor(landmarks, keypoints)
        error = landmark_error(regressor(landmarks), keypoints)
    assert 0 <= accuracy <= 1 and r2 > 0.99
    assert error.device.type == "cpu" and error.shape == (20,)
    on_meta = regressor(landmarks.to("meta"))  # applied on the landmarks' device
    assert on_meta.device.type == "meta" and on_meta.shape == (20, 3, 2)


# ---- History ------------------------------------------------------------------------------------


def test_history_reads_back_the_floats_of_each_step():
    history = History(flush_every=3)
    buffer = torch.tensor(0.25)
    expected = []
    for step in range(5):
        loss = torch.tensor(1.0 / 3 + step, requires_grad=True) * 2  # holds a graph
        half = (torch.tensor(0.1 + step) * 3).to(torch.bfloat16)
        row = {"step": step, "loss": loss, "half": half, "avg": buffer, "count": torch.tensor(step)}
        row |= {"gamma": 0.5, "flag": torch.tensor(step % 2 == 0)}
        expected.append({k: float(v) for k, v in row.items()})
        history.append(row)
        buffer.fill_(float(buffer) + 1)  # an in-place update after the append: not seen
    assert len(history) == 5
    assert list(history) == expected and history == expected
    assert all(type(v) is float for h in history for v in h.values())
    assert list(history[-1]) == ["step", "loss", "half", "avg", "count", "gamma", "flag"]
    assert history[-2:] == expected[-2:] and history[0]["avg"] == 0.25
    assert [h["step"] for h in history] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_history_waits_until_read_or_full():
    history = History(flush_every=4)
    for step in range(3):
        history.append({"loss": torch.tensor(float(step))})
    assert len(history._pending) == 3 and history._rows == []  # nothing read back yet
    assert history[1] == {"loss": 1.0}
    assert history._pending == []
    for step in range(4):
        history.append({"loss": torch.tensor(float(step))})
    assert len(history._pending) == 0 and len(history) == 7  # the 4th append flushed


@pytest.mark.parametrize(
    "value, error",
    [(torch.zeros(2), ValueError), ("1.0", TypeError), (None, TypeError)],
)
def test_history_refuses_what_float_would_refuse(value, error):
    with pytest.raises(error, match="history values"):
        History().append({"x": value})


HISTORY_KEYS = {  # notebooks/*.py and the tests: the keys read from each system's history
    "LitRoDi": {"step", "gamma", "lambda", "mi_attacked_avg", "mi_honest_avg", "kl", "loss"},
    "LitIIN": {"step", "loss"},
    "LitNet2Net": {"loss", "nll"},
    "LitInvariances": {"step", "loss"},
    "LitPartDiscovery": {"step", "rec", "hard_ce", "compactness", "kl_pi"},
    "LitDataBias": {"step", "loss", "nll", "nlogdet"},
    "LitVQGAN": {"step", "rec", "d_weight", "d_loss"},
    "LitGANAutoencoder": {"step", "rec", "kl", "logvar", "d_weight", "d_loss"},
    "LitTamingTransformer": {"step", "loss"},
    "LitImageBART": {"step", "loss"},
    "LitCodeGPT": {"step", "loss"},
    "LitDenseAutoencoder": {"loss", "rec", "nll", "kl"},
    "LitRegressionBaseline": {"loss"},
    "LitLatentDiffusion": {"step", "loss"},
    "LitMMDiT": {"step", "loss"},
    "LitGeoTransformer": {"step", "loss"},
    "LitExplicitBaseline": {"step", "loss"},
}


@pytest.mark.parametrize("name", list(HISTORY_KEYS))
def test_system_histories_keep_the_keys_chapters_read(name):
    """A system's ``history`` holds floats under the keys the chapters plot, one row a step."""
    from esser_lab.scale import profile
    from esser_lab.training.trainer import make_trainer

    torch.manual_seed(0)
    system, batch = _one_batch(name)
    trainer = make_trainer(profile("tiny"), 2, progress_every=10_000)
    trainer.fit(system, train_dataloaders=_Once(batch))
    history = system.history
    assert isinstance(history, History) and len(history) == 2
    assert HISTORY_KEYS[name] <= set(history[-1]), sorted(history[-1])
    assert all(type(v) is float for h in history for v in h.values())
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in history)
