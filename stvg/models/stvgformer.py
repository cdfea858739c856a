"""STVGFormer (the HC-STVG track report of the 4th Person in Context challenge, 2022).

STVGFormer is the architecture CSDVL later published, so it is built from CSDVL's modules and
adds no parameter of its own. Where each part of the report lives:

* static branch (1.1): :class:`~stvg.models.static_stream.StaticStream`;
* dynamic branch, the STCMT with the cross-attention of eq. (1) (1.2):
  :class:`~stvg.models.dynamic_stream.DynamicStream`;
* static-dynamic interaction block, eq. (2) and the dynamic-to-static query mixing (1.3):
  :class:`~stvg.models.collaboration.CollaborationBlock` (``collab="full"``; ``s2d``, ``d2s``
  and ``none`` are table 1's three ablations);
* heads (1.4): the 3-layer box MLP and the FC frame score ``p^s_t`` on each object query, the
  2D-TAN map of eq. (3) on the spatially pooled dynamic features, and the 3-layer MLP clip score
  ``S_aux`` (:mod:`stvg.models.heads`);
* losses, eqs. (4)-(6) with the report's weights: :mod:`stvg.models.stvgformer_losses`;
* multi-pass inference "until all frames are sampled at least once" (2.1):
  :func:`stvg.evaluate.predict.pass_indices`, with passes of ``test_frames_scale`` times the
  training frame count (48 in training, 96 in testing: ``test_frames_scale = 2``);
* the 5-model ensemble of the challenge entry: ``stvg predict --run A --run B ...``
  (:mod:`stvg.evaluate.ensemble`).

Where :class:`STVGFormerConfig` differs from :class:`~stvg.models.csdvl.CSDVLConfig`:

* ``alpha`` is 1.0 in every preset: the report's eq. (2) uses the decoder's attention weights as
  they are (CSDVL's supplementary scales the attention query by 0.1 on HC-STVG; the report,
  which is on HC-STVG only, has no such factor);
* ``test_frames_scale`` (2): prediction and validation passes show the model this many times
  training's ``num_frames`` frames, unless the run sets ``frames_per_pass``
  (:func:`stvg.evaluate.predict.run_frames_per_pass`).

Every other size is CSDVL's (the report gives none; N and d follow MDETR's, whose weights it
starts from: ``stvg train --init mdetr:PATH`` works as for CSDVL).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stvg.config import config_from_preset, require
from stvg.models.csdvl import CSDVL, MODEL_PRESETS, CSDVLConfig

log = logging.getLogger(__name__)

# CSDVL's presets with eq. (2) unscaled (alpha 1.0; see the module docstring).
STVGFORMER_PRESETS: dict[str, dict[str, Any]] = {
    name: {**values, "alpha": 1.0} for name, values in MODEL_PRESETS.items()
}


@dataclass
class STVGFormerConfig(CSDVLConfig):
    """CSDVL's fields (same meaning) plus ``test_frames_scale``; see the module docstring."""

    # Frames per prediction pass over training's num_frames (report 2.1: 48 train, 96 test).
    test_frames_scale: int = 2

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> STVGFormerConfig:
        """The preset ``name`` (a key of :data:`STVGFORMER_PRESETS`) with ``overrides``."""
        return config_from_preset(cls, STVGFORMER_PRESETS, name, overrides)

    def validate(self) -> None:
        super().validate()
        value = self.test_frames_scale
        require(value >= 1, "test_frames_scale", value, "must be >= 1", "STVGFormerConfig")


class STVGFormer(CSDVL):
    """CSDVL's modules and forward (input and output dicts of :mod:`stvg.models.csdvl`) under
    their own name, so that a run, the zoo and the losses know which model they hold."""

    def __init__(self, cfg: STVGFormerConfig) -> None:
        super().__init__(cfg)


def build_stvgformer(cfg: STVGFormerConfig | Mapping[str, Any]) -> STVGFormer:
    """Build :class:`STVGFormer` from a config or a plain mapping of its fields."""
    if not isinstance(cfg, STVGFormerConfig):
        cfg = STVGFormerConfig.from_dict(cfg)
    model = STVGFormer(cfg)
    log.info(
        "built STVGFormer (collab=%s, d=%d, N=%d): %d parameters",
        cfg.collab,
        cfg.d_model,
        cfg.n_layers,
        sum(p.numel() for p in model.parameters()),
    )
    return model
