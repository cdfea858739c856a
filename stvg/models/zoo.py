"""The model zoo: the one place that maps a model name to its parts.

``MODELS[name]`` is a :class:`ModelEntry` ``(config, build, losses, weights, span)``:

* ``config``: the model's config dataclass (``from_preset``, ``from_dict``, ``to_dict``);
  ``stvg train``'s ``model.KEY=VALUE`` overrides go to it;
* ``build``: config (or its dict) -> ``nn.Module`` taking the feature batch dict;
* ``losses``: ``(outputs, batch, train_config) -> {term: tensor}`` (unweighted);
* ``weights``: ``train_config -> {term: weight}``, summed by
  :func:`stvg.train.losses.total_loss` in that order;
* ``span``: one query's span in native frames ``(start, end)`` (half-open) from its prediction
  passes (see :func:`csdvl_span`, :func:`start_end_span`); ``with_score=True`` adds the span's
  score (higher is better; comparable between queries of one model only).

``csdvl`` (the default) weighs its terms with the ``loss_*`` settings of
:class:`stvg.train.config.TrainConfig`; ``cgstvg`` and ``costa`` with their papers' weights
(:data:`~stvg.models.cgstvg_losses.CGSTVG_LOSS_WEIGHTS`,
:data:`~stvg.train.losses_costa.COSTA_LOSS_WEIGHTS`), which the ``loss_*`` settings do not change,
plus CSDVL's ``loss_att`` (the ``synthetic`` preset's scratch aid; the term needs the model's
``s2d_attention``, see :func:`stvg.train.losses.attention_term`).
``stvgformer`` (CSDVL's modules) too, with its report's weights
(:data:`~stvg.models.stvgformer_losses.STVGFORMER_LOSS_WEIGHTS`), plus CSDVL's ``loss_att`` and
``aux_loss`` extras.

Pass records. For each pass, :func:`stvg.evaluate.predict.predict_dataset` keeps the model's
per-query outputs the span needs: ``prob`` [Td, Td] (the sigmoid of a 2D ``score_map``) and
``map_mask`` [Td, Td] for a model with no ``start_logits``; ``start_logits`` / ``end_logits``
[Ts] otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from stvg.models.cgstvg import CGSTVGConfig, build_cgstvg
from stvg.models.costa import CoSTAConfig, build_costa
from stvg.models.csdvl import CSDVLConfig, build_model
from stvg.models.stvgformer import STVGFormerConfig, build_stvgformer

Record = Mapping[str, Tensor]


class ModelEntry(NamedTuple):
    config: type
    build: Callable[[Any], nn.Module]
    losses: Callable[[Mapping[str, Tensor], Mapping[str, Tensor], Any], dict[str, Tensor]]
    weights: Callable[[Any], dict[str, float]]
    span: Callable[..., tuple]


# ----------------------------------------------------------------------------- losses
def csdvl_losses(
    outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor], config: Any
) -> dict[str, Tensor]:
    """CSDVL's terms (:func:`stvg.train.losses.compute_losses`), plus DETR's auxiliary box
    terms with ``config.aux_loss`` (the model then ran with ``aux=True``)."""
    from stvg.train.losses import aux_box_losses, compute_losses

    terms = compute_losses(
        outputs,
        batch,
        attention=config.loss_att > 0,
        d2s_attention=config.loss_d2s_att > 0,
        presence=getattr(config, "loss_presence", 0.0) > 0,
    )
    if config.aux_loss:
        terms.update(aux_box_losses(outputs["aux_boxes"], batch))
    return terms


def cgstvg_losses(
    outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor], config: Any
) -> dict[str, Tensor]:
    """CG-STVG's eqs. (13)-(14), each term summed over the stages (per-stage terms dropped),
    plus ``att`` with ``config.loss_att``."""
    from stvg.models.cgstvg_losses import cgstvg_losses as terms_of

    terms = terms_of(outputs, batch, attention=config.loss_att > 0)
    return {k: terms[k] for k in cgstvg_weights(config) if k in terms}


def costa_losses(
    outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor], config: Any
) -> dict[str, Tensor]:
    """CoSTA's eqs. (6)-(8) terms (:func:`stvg.train.losses_costa.compute_costa_losses`), plus
    ``att`` with ``config.loss_att``."""
    from stvg.train.losses_costa import compute_costa_losses

    return compute_costa_losses(outputs, batch, attention=config.loss_att > 0)


def stvgformer_losses(
    outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor], config: Any
) -> dict[str, Tensor]:
    """STVGFormer's eqs. (4)-(6) terms, plus ``att`` and DETR's auxiliary box terms as CSDVL."""
    from stvg.models.stvgformer_losses import stvgformer_losses as terms_of
    from stvg.train.losses import aux_box_losses

    terms = terms_of(outputs, batch, attention=config.loss_att > 0)
    if config.aux_loss:
        terms.update(aux_box_losses(outputs["aux_boxes"], batch))
    return terms


def stvgformer_weights(config: Any) -> dict[str, float]:
    from stvg.models.stvgformer_losses import STVGFORMER_LOSS_WEIGHTS as weights

    out = {**weights, "att": config.loss_att}
    if config.aux_loss:
        out.update(aux_l1=weights["l1"], aux_giou=weights["giou"])
    return out


def cgstvg_weights(config: Any) -> dict[str, float]:
    from stvg.models.cgstvg_losses import CGSTVG_LOSS_WEIGHTS

    return {**CGSTVG_LOSS_WEIGHTS, "att": config.loss_att}


def costa_weights(config: Any) -> dict[str, float]:
    from stvg.train.losses_costa import COSTA_LOSS_WEIGHTS

    return {**COSTA_LOSS_WEIGHTS, "att": config.loss_att}


# ----------------------------------------------------------------------------- spans
def csdvl_span(
    records: Sequence[Record],
    pass_frames: Sequence[np.ndarray],
    stored_ids: np.ndarray,
    clip_spans: np.ndarray,
    segment: tuple[int, int],
    with_score: bool = False,
) -> tuple:
    """The passes' probability maps averaged; the best valid proposal ``(i, j)`` (clips ``i``
    to ``j`` inclusive) gives ``[clip_spans[i].start, clip_spans[j].end)`` (``with_score``:
    and its mean probability, as a third value)."""
    from stvg.models.heads import best_span

    prob = torch.stack([r["prob"] for r in records]).mean(0)
    start, end, score = best_span(prob[None], records[-1]["map_mask"])  # clips [start, end)
    span = int(clip_spans[int(start)][0]), int(clip_spans[int(end) - 1][1])
    return (*span, float(score)) if with_score else span


def presence_score(
    records: Sequence[Record],
    pass_frames: Sequence[np.ndarray],
    stored_ids: np.ndarray,
    span: Sequence[int],
) -> float | None:
    """How present the described event is in the chosen ``span`` (native frames, half-open):
    the mean presence probability of the stored frames inside it, each frame's probability the
    mean over the passes that saw it (``records[p]["presence"]`` [Ts] on stored frames
    ``pass_frames[p]``); the highest frame's when no stored frame falls inside. ``None`` when
    the records carry no ``presence`` (a model without a presence head). Unlike the span's own
    score, comparable between segments: ``stvg ground`` ranks windows by it."""
    if not records or any("presence" not in r for r in records):
        return None
    ids, prob = presence_by_frame(records, pass_frames, stored_ids)
    inside = (ids >= span[0]) & (ids < span[1])
    return float(prob[inside].mean()) if inside.any() else float(prob.max())


def presence_by_frame(
    records: Sequence[Record], pass_frames: Sequence[np.ndarray], stored_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The stored frame ids the passes saw, in order, and each one's presence probability: the
    mean over the passes that saw it (``records[p]["presence"]`` [Ts] on stored frames
    ``pass_frames[p]``)."""
    total = np.zeros(len(stored_ids))
    seen = np.zeros(len(stored_ids))
    for record, idx in zip(records, pass_frames, strict=True):
        np.add.at(total, np.asarray(idx), record["presence"].float().numpy())
        np.add.at(seen, np.asarray(idx), 1)
    kept = seen > 0
    return np.asarray(stored_ids)[kept], total[kept] / seen[kept]


def native_span(start: int, end: int, stored_ids: np.ndarray, segment: tuple[int, int]) -> tuple:
    """Stored frames ``[start, end)`` -> native frames: stored frame ``k`` stands for the native
    frames from the midpoint with its predecessor to the midpoint with its successor,
    ``[c_k, c_{k+1})`` with ``c_k = (ids[k-1] + ids[k] + 1) // 2`` (rounding up), ``c_0`` the
    segment's start and ``c_S`` its end."""
    ids = np.asarray(stored_ids, dtype=np.int64)
    s0, s1 = segment
    first = s0 if start == 0 else int((ids[start - 1] + ids[start] + 1) // 2)
    last = s1 if end >= len(ids) else int((ids[end - 1] + ids[end] + 1) // 2)
    return first, max(last, first + 1)


def cgstvg_span(
    records: Sequence[Record],
    pass_frames: Sequence[np.ndarray],
    stored_ids: np.ndarray,
    clip_spans: np.ndarray,
    segment: tuple[int, int],
    with_score: bool = False,
) -> tuple:
    """:func:`stvg.models.cgstvg.stored_frame_span` over the passes, then :func:`native_span`
    (``with_score``: and its log probability, as a third value)."""
    from stvg.models.cgstvg import stored_frame_span

    start, end, score = stored_frame_span(
        [np.asarray(f) for f in pass_frames],
        [r["start_logits"] for r in records],
        [r["end_logits"] for r in records],
        len(stored_ids),
    )
    span = native_span(start, end, stored_ids, segment)
    return (*span, score) if with_score else span


def costa_span(
    records: Sequence[Record],
    pass_frames: Sequence[np.ndarray],
    stored_ids: np.ndarray,
    clip_spans: np.ndarray,
    segment: tuple[int, int],
    with_score: bool = False,
) -> tuple:
    """:func:`stvg.models.costa.stored_frame_span` over the passes, then :func:`native_span`
    (``with_score``: and its score, as a third value)."""
    from stvg.models.costa import stored_frame_span

    start, end, score = stored_frame_span(
        torch.stack([r["start_logits"] for r in records]),
        torch.stack([r["end_logits"] for r in records]),
        torch.as_tensor(np.stack(pass_frames), dtype=torch.long),
        len(stored_ids),
    )
    span = native_span(start, end, stored_ids, segment)
    return (*span, score) if with_score else span


def csdvl_weights(config: Any) -> dict[str, float]:
    return config.loss_weights()


MODELS: dict[str, ModelEntry] = {
    "csdvl": ModelEntry(CSDVLConfig, build_model, csdvl_losses, csdvl_weights, csdvl_span),
    "cgstvg": ModelEntry(CGSTVGConfig, build_cgstvg, cgstvg_losses, cgstvg_weights, cgstvg_span),
    "costa": ModelEntry(CoSTAConfig, build_costa, costa_losses, costa_weights, costa_span),
    "stvgformer": ModelEntry(
        STVGFormerConfig, build_stvgformer, stvgformer_losses, stvgformer_weights, csdvl_span
    ),
}
DEFAULT_MODEL = "csdvl"


def model_entry(name: str) -> ModelEntry:
    """``MODELS[name]``; an unknown name is an :class:`~stvg.errors.InputError` naming it."""
    from stvg.errors import InputError

    if name not in MODELS:
        raise InputError(f"unknown model {name!r}; known: {', '.join(MODELS)}", field="model_name")
    return MODELS[name]


def name_of(model: nn.Module) -> str:
    """The ``MODELS`` name of a built model (a DistributedDataParallel wrapper is looked
    through); any other module is taken for CSDVL (its outputs read as a 2D ``score_map``)."""
    from stvg.models.cgstvg import CGSTVG
    from stvg.models.costa import CoSTA
    from stvg.models.csdvl import CSDVL
    from stvg.models.stvgformer import STVGFormer

    model = getattr(model, "module", model)
    classes = (("stvgformer", STVGFormer), ("csdvl", CSDVL), ("cgstvg", CGSTVG), ("costa", CoSTA))
    for name, cls in classes:  # a subclass before its base
        if isinstance(model, cls):
            return name
    return DEFAULT_MODEL
