"""``LitVUNet``: the Lightning system that trains a VUNet (or its baselines without latent:
the shape-only U-Net, and PG2's generator on pairs with ``paired=True``)."""

from __future__ import annotations

from dataclasses import asdict

import torch
from torch import nn

from esser_lab.data import figures
from esser_lab.training.resume import ResumableModule
from esser_lab.training.trainer import log_now
from esser_lab.vunet.layers import WNConv2d, data_dependent_init
from esser_lab.vunet.method import (
    PartBox,
    learning_rate_factor,
    normalize_parts,
    vunet_loss,
)
from esser_lab.vunet.model import VUNet, VUNetConfig


class LitVUNet(ResumableModule):
    """Wires the VUNet to Adam(β = (0.5, 0.9)) with the official linear lr decay.

    Batches are dicts with ``image (b, 3, h, w)``, ``stickman (b, shape_channels, h, w)`` and
    ``keypoints (b, k, 2)`` (for the part crops). The first batch runs the weight-norm layers'
    data-dependent initialisation, as the official code's ``init`` pass does; each layer's
    ``initialised`` buffer is saved with the weights, so a loaded or resumed model skips it.
    """

    def __init__(
        self,
        config: VUNetConfig,
        boxes: list[PartBox],
        perceptual: nn.Module | None = None,
        *,
        paired: bool = False,
    ) -> None:
        super().__init__()
        if len(boxes) != config.num_boxes:
            raise ValueError(
                f"config.num_boxes={config.num_boxes} but {len(boxes)} part boxes given"
            )
        if paired and config.num_latent_scales:
            raise ValueError(
                "paired=True trains PG2's generator: a config from VUNetConfig.paired_baseline() "
                f"(no appearance latent), got num_latent_scales={config.num_latent_scales}"
            )
        self.save_hyperparameters({"config": asdict(config), "paired": paired})
        self.config = config
        self.paired = paired
        self.boxes = list(boxes)
        self.model = VUNet(config)
        self.perceptual = perceptual
        self._init_checked = False  # this process has looked at the layers' init flags

    @property
    def initialised(self) -> bool:
        """Whether every weight-normalised layer has had its data-dependent initialisation."""
        return all(bool(m.initialised) for m in self.model.modules() if isinstance(m, WNConv2d))

    def crops(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The appearance encoder's input: the image's part crops (in-plane normalised)."""
        return normalize_parts(
            batch["image"], batch["keypoints"], self.boxes, self.config.crop_size
        )

    def shape_input(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The U-Net's input: ŷ; for the paired baseline ``[ŷ, source]``, the source being the
        same figure (its colours, background and texture) in the pose of the batch's next
        figure, rendered on the fly: PG2's supervision, a pair of one person in two poses."""
        if not self.paired:
            return batch["stickman"]
        missing = {"keypoints", "colours", "background", "texture"} - set(batch)
        if missing:
            raise ValueError(f"paired training needs figure batches with {sorted(missing)}")
        appearance = figures.Appearance(batch["colours"], batch["background"], batch["texture"])
        source = figures.render(
            batch["keypoints"].roll(1, 0), appearance, batch["image"].shape[-1]
        ).image
        return torch.cat([batch["stickman"], source], dim=1)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        crops = self.crops(batch)
        shape = self.shape_input(batch)
        if not self._init_checked:  # read the flags once per process (a host sync on a GPU)
            if not self.initialised:
                with torch.no_grad(), data_dependent_init(self.model):
                    self.model(shape, crops)
            self._init_checked = True
        terms = vunet_loss(
            self.model, batch["image"], shape, crops, self.global_step, self.perceptual
        )
        if log_now(self):
            self.log_dict(
                {
                    "loss": terms.loss.detach(),
                    "likelihood": terms.likelihood,
                    "kl": terms.kl,
                    "kl_weight": terms.kl_weight,
                },
                on_step=True,
                prog_bar=True,
            )
        return terms.loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        terms = vunet_loss(
            self.model,
            batch["image"],
            self.shape_input(batch),
            self.crops(batch),
            self.global_step,
            self.perceptual,
        )
        self.log_dict({"val_loss": terms.loss, "val_kl": terms.kl}, prog_bar=True)
        return terms.loss

    def configure_optimizers(self):  # noqa: ANN201
        optimizer = torch.optim.Adam(
            self.model.parameters(),
            lr=self.config.learning_rate,
            betas=self.config.betas,
            fused=True,  # one kernel for all parameters (CPU and CUDA)
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: learning_rate_factor(step, self.config)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
