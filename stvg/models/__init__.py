"""stvg.models: the CSDVL model (static and dynamic VL streams, collaboration, heads)."""

from stvg.models.csdvl import CSDVL, MODEL_PRESETS, CSDVLConfig, build_model
from stvg.models.heads import best_span, proposal_mask

__all__ = ["CSDVL", "CSDVLConfig", "MODEL_PRESETS", "best_span", "build_model", "proposal_mask"]
