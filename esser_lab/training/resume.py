"""Exact resume: everything a system's next step depends on goes into Lightning's checkpoint.

``trainer.fit(system, ..., ckpt_path=path, weights_only=True)`` restores the weights, the
optimisers, the lr schedules and the step count by itself. :class:`ResumableModule`, the base of
every ``Lit*`` system, adds what Lightning leaves out, under the checkpoint key ``"esser_lab"``:

- the global torch random state (CPU, and CUDA when initialised): dropout and posterior samples
  draw from it;
- the system's own plain attributes named in ``resume_attributes`` (counters, running rates, the
  per-step ``history``) and its ``torch.Generator`` attributes (their states);

and it puts Lightning's loop counters where the data loader says the run stopped. Lightning 2.x
records a run stopped by ``max_steps`` as a *finished* epoch with the batch counter still full,
so on resume it runs one batch of a new epoch and then starts another (mid-epoch and at an epoch
end alike: a run resumed after 3 of 3 or 3 of 4 batches trained on other batches than the run that
never stopped). When the train loader is a :class:`~esser_lab.data.modules.BatchLoader`, whose
position (data epoch, batches served) is saved with the checkpoint, :func:`align_loops` rewrites
the loop counters so that Lightning continues that epoch at that batch, or starts the next epoch
at its first batch. With both, N steps in one go and N/2 + resume + N/2 give bit-identical weights
on the CPU (``tests/training/test_resume.py``).

On many processes (DDP) every process starts from the same seed, so
:meth:`ResumableModule.on_fit_start` gives each rank a random stream of its own (seeded from one
draw of the shared stream and the rank): the ranks' posterior samples, diffusion times and dropout
masks differ, as a doubled batch's samples would. The model's weights are not drawn from it (they
exist before ``fit``, and DDP starts every rank from rank 0's). One process keeps its stream
untouched. Checkpoints keep every rank's global random state and generator states (gathered when
saved; each rank takes its own back on resume), so a DDP run resumes exactly on the same number of
processes. On another number the run continues with fresh per-rank streams and a warning: it cannot
be the run that never stopped.

Everything stored is a tensor, a number, a string or a list/dict of those, so the checkpoint
loads under ``torch.load(weights_only=True)``. Lightning 2.6 passes ``Trainer.fit``'s
``weights_only`` to ``torch.load``. Left at ``None``, torch ≥ 2.6 resolves it to ``True`` for a
local file, but the environment variable ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` turns that off and
Lightning itself picks ``False`` for an ``http(s)`` checkpoint path; so always pass
``weights_only=True`` (the chapters, the tests and ``python -m esser_lab … fit`` do).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn

from esser_lab.checks import watch_trainer

__all__ = ["CHECKPOINT_KEY", "ResumableModule", "align_loops", "rank_stream_seed"]

#: The key of the system's extra state in a Lightning checkpoint.
CHECKPOINT_KEY = "esser_lab"

_PLAIN = (bool, int, float, str, type(None))


def _check_plain(value: Any, name: str) -> None:
    """Raise unless ``value`` loads under ``weights_only=True`` (no pickled objects)."""
    if isinstance(value, (*_PLAIN, torch.Tensor)):
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_plain(item, name)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str | int):
                raise TypeError(f"{name}: checkpoint dict keys must be str or int, got {key!r}")
            _check_plain(item, name)
        return
    raise TypeError(
        f"{name} holds a {type(value).__name__}; a checkpoint keeps only tensors, numbers, "
        "strings and lists/dicts of them (it must load with torch.load(weights_only=True))"
    )


def _saved(value: Any) -> Any:
    """What goes into the checkpoint for an attribute: its ``state_dict()`` if it has one, a
    sequence other than a list or tuple (:class:`~esser_lab.training.history.History`) as a list,
    anything else as it is."""
    if callable(getattr(value, "state_dict", None)):
        return value.state_dict()
    if isinstance(value, Sequence) and not isinstance(value, str | list | tuple):
        return list(value)
    return value


def _restored(current: Any, saved: Any) -> Any:
    """The attribute's value after loading ``saved``; the inverse of :func:`_saved`."""
    if callable(getattr(current, "load_state_dict", None)):
        current.load_state_dict(saved)
        return current
    if isinstance(current, Sequence) and not isinstance(current, str | list | tuple):
        refilled = type(current)()  # e.g. a History: refilled row by row
        for row in saved:
            refilled.append(row)
        return refilled
    return saved


def _progress(value: int) -> dict[str, int]:
    return {"ready": value, "started": value, "processed": value, "completed": value}


def align_loops(checkpoint: dict[str, Any]) -> None:
    """Set the fit loop's epoch and batch counters to the position of the saved train loader.

    Only when the checkpoint holds exactly one :class:`~esser_lab.data.modules.BatchLoader`
    state (``{"esser_lab.batches": ..., "epoch": e, "position": k}``: ``k`` batches of data epoch
    ``e`` served, ``k = 0`` at an epoch's start); otherwise the checkpoint is left as Lightning
    wrote it. ``k > 0``: epoch ``e`` started and unfinished, ``k`` of its batches done (Lightning
    resumes mid-epoch and asks the loader for the rest). ``k = 0``: ``e`` epochs finished, none
    of the next begun.
    """
    fit_loop = checkpoint.get("loops", {}).get("fit_loop")
    if not fit_loop:
        return
    loaders = fit_loop.get("state_dict", {}).get("combined_loader", [])
    ours = [state for state in loaders if isinstance(state, dict) and "esser_lab.batches" in state]
    if len(ours) != 1 or len(loaders) != 1:
        return
    epoch, position = int(ours[0]["epoch"]), int(ours[0]["position"])
    started = epoch + 1 if position else epoch  # epochs begun; ``epoch`` of them are finished
    progress = {"ready": started, "started": started, "processed": epoch, "completed": epoch}
    fit_loop["epoch_progress"] = {"total": dict(progress), "current": dict(progress)}
    batches = fit_loop["epoch_loop.batch_progress"]
    batches["total"] = _progress(int(batches["total"]["processed"]))
    batches["current"] = _progress(position)
    batches["is_last_batch"] = False


def rank_stream_seed(shared_draw: int, rank: int) -> int:
    """The seed of rank ``rank``'s random stream, from one draw of the stream all ranks share."""
    return (shared_draw * 1_000_003 + rank) % 2**63


def _world(module: L.LightningModule) -> int:
    trainer = module._trainer
    return 1 if trainer is None else int(trainer.world_size)


def _gather(module: L.LightningModule, state: torch.Tensor) -> torch.Tensor:
    """Every rank's ``state`` (a byte tensor of the same size on each), stacked ``(W, n)``."""
    import torch.distributed as dist

    # NCCL moves CUDA tensors only; gloo moves both
    device = module.device if dist.get_backend() == "nccl" else torch.device("cpu")
    mine = state.to(device=device, dtype=torch.int64)  # gloo gathers no 8- or 16-bit integers
    rows = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(rows, mine)
    return torch.stack(rows).to(device="cpu", dtype=torch.uint8)


class ResumableModule(L.LightningModule):
    """A ``LightningModule`` whose checkpoints carry the random state and the system's own state.

    Subclasses list their plain attributes (numbers, strings, lists/dicts of them) in
    ``resume_attributes``; attributes holding a ``torch.Generator`` (or ``None`` until the first
    step) in ``resume_generators``. Buffers need neither: they are in the state dict already.
    The global random state is restored only when resuming a fit (``Trainer.fit(ckpt_path=…)``),
    not by ``load_from_checkpoint``.
    """

    resume_attributes: tuple[str, ...] = ()
    resume_generators: tuple[str, ...] = ()
    _rank_streams_restored = False

    def on_fit_start(self) -> None:
        """Under DDP, give each rank its own random stream, unless a resume restored them; and
        count the trainer's training stage as a training step for the input checks' value reads
        (:func:`esser_lab.checks.watch_trainer`: no host sync inside a step, frozen parts too)."""
        watch_trainer(self.trainer)
        if _world(self) > 1 and not self._rank_streams_restored:
            shared = int(torch.randint(0, 2**62, (1,)))  # the same draw on every rank
            torch.manual_seed(rank_stream_seed(shared, self.global_rank))
        self._rank_streams_restored = False

    def _rank_states(self, generators: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Every rank's global random state and generator states (a collective: all ranks call
        it, as Lightning saves a checkpoint on every rank and writes rank 0's)."""
        ranks: dict[str, Any] = {
            "world": _world(self),
            "torch_rng": _gather(self, torch.get_rng_state()),
            "generators": {k: _gather(self, v["state"]) for k, v in generators.items()},
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            ranks["cuda_rng"] = _gather(self, torch.cuda.get_rng_state())
        return ranks

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        attributes = {name: _saved(getattr(self, name)) for name in self.resume_attributes}
        for name, value in attributes.items():
            _check_plain(value, f"{type(self).__name__}.{name}")
        generators = {}
        for name in self.resume_generators:
            generator = getattr(self, name)
            if generator is not None:
                generators[name] = {
                    "state": generator.get_state(),
                    "device": str(generator.device),
                }
        state: dict[str, Any] = {
            "torch_rng": torch.get_rng_state(),
            "attributes": attributes,
            "generators": generators,
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        if _world(self) > 1:
            state["ranks"] = self._rank_states(generators)
        checkpoint[CHECKPOINT_KEY] = state
        align_loops(checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(CHECKPOINT_KEY)
        if state is None:  # written by plain Lightning or an older esser_lab: weights only
            return
        attributes = state.get("attributes", {})
        unknown = sorted(set(attributes) - set(self.resume_attributes))
        if unknown:
            raise ValueError(
                f"the checkpoint holds {type(self).__name__} attributes {unknown} that this "
                f"system does not keep (it keeps {list(self.resume_attributes)})"
            )
        for name, value in attributes.items():
            setattr(self, name, _restored(getattr(self, name, None), value))
        for name, saved in state.get("generators", {}).items():
            if name not in self.resume_generators:
                raise ValueError(f"the checkpoint holds an unknown generator {name!r}")
            generator = torch.Generator(device=saved["device"])
            generator.set_state(saved["state"])
            setattr(self, name, generator)
        trainer = self._trainer
        if trainer is not None and trainer.state.fn == "fit":
            torch.set_rng_state(state["torch_rng"])
            if "cuda_rng" in state and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda_rng"])
            self._restore_rank_streams(state)
        align_loops(checkpoint)

    def _restore_rank_streams(self, state: dict[str, Any]) -> None:
        """Each rank takes its own random states back from a DDP checkpoint."""
        world, ranks = _world(self), state.get("ranks")
        saved = 1 if ranks is None else int(ranks["world"])
        if saved == world:
            if ranks is not None:
                rank = self.global_rank
                torch.set_rng_state(ranks["torch_rng"][rank].clone())
                if "cuda_rng" in ranks and torch.cuda.is_available():
                    torch.cuda.set_rng_state(ranks["cuda_rng"][rank].clone())
                for name, rows in ranks["generators"].items():
                    getattr(self, name).set_state(rows[rank].clone())
                self._rank_streams_restored = True
            return
        rank_zero_warn(
            f"resuming a run saved on {saved} process(es) on {world}: it continues with new "
            "random streams per process and is not the run that never stopped"
        )
        for name in self.resume_generators:
            setattr(self, name, None)  # re-seeded from the new per-rank stream at the next step
        self._rank_streams_restored = world == 1  # one process keeps rank 0's stream
