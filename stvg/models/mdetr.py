"""MDETR checkpoints: read one safely, and map its weights into CSDVL's static stream.

The paper starts the static stream, the image encoder (ResNet101) and the text encoder
(RoBERTa-base) from MDETR's pre-trained checkpoint (the ResNet101 one,
``pretrained_resnet101_checkpoint.pth`` of the MDETR model zoo). MDETR saves
``{"model": state, "model_ema": state or None, "optimizer": ..., "epoch": int, "args":
argparse.Namespace}``. :func:`read_mdetr_checkpoint` loads it with ``weights_only=True``, allowing
only ``argparse.Namespace`` besides tensors and plain containers (no arbitrary unpickling), and
takes ``model_ema`` when present, else ``model`` (as MDETR's own ``--load`` and TubeDETR do).

Key map into :class:`~stvg.models.csdvl.CSDVL` (MDETR key -> ours; ``i`` a layer index):

=============================================================  ==================================
``input_proj.weight`` [d, C, 1, 1] / ``.bias``                 ``static.image_proj`` [d, C] (1x1
                                                               conv = FC)
``transformer.resizer.fc.*``                                   ``static.text_proj.0.*``
``transformer.resizer.layer_norm.*``                           ``static.text_proj.1.*``
``transformer.encoder.layers.i.self_attn.*``                   ``static.encoder.i.self_attn.*``
``transformer.encoder.layers.i.norm1.*`` / ``norm2.*``         ``static.encoder.i.norm.*`` /
                                                               ``static.encoder.i.ffn.norm.*``
``transformer.encoder.layers.i.linear1.*`` / ``linear2.*``     ``static.encoder.i.ffn.linear1/2``
``transformer.decoder.layers.i.self_attn.*``                   ``static.decoder.i.self_attn.*``
``transformer.decoder.layers.i.cross_attn_image.*``            ``static.decoder.i.cross_attn.*``
``transformer.decoder.layers.i.norm1.*`` / ``norm3.*`` /       ``static.decoder.i.norm1.*`` /
``norm4.*``                                                    ``norm2.*`` / ``ffn.norm.*``
``transformer.decoder.layers.i.linear1.*`` / ``linear2.*``     ``static.decoder.i.ffn.linear1/2``
``transformer.decoder.norm.*``                                 ``decoder_norm.*`` (only with
                                                               ``model.decoder_norm=true``)
``bbox_embed.layers.k.*`` (k = 0, 1, 2)                        ``box_head.mlp.layers.k.*``
``query_embed.weight`` [Q, d] (Q = 100)                        ``static.query_embed`` [d]: row 0
=============================================================  ==================================

Attention parameters (``in_proj_weight`` [3d, d], ``in_proj_bias``, ``out_proj.*``) have the same
names and layout in both (``nn.MultiheadAttention``; batch-first changes no parameter).

**One query per frame from MDETR's 100.** CSDVL has one learned object query shared by the
frames; MDETR has 100 slots. We take slot 0, as TubeDETR (the work CSDVL follows for this
initialization) keeps the first ``num_queries`` rows, i.e. row 0 for one query. A slot is a
vector MDETR was trained with; the mean of the 100 slot embeddings is not (it is shorter than any
slot and sits between them), so the decoder's weights were never fitted to it. In MDETR the slot
vector is a *query position* (the decoder's content starts at zero and the vector is added to
every attention's queries and keys); ``model.query_as_position=true`` gives CSDVL the same
layout, otherwise the vector is used as the initial content O^0.

**Not mapped** (returned and logged by :func:`init_from_mdetr`, never silently dropped):
``backbone.0.body.*`` (the ResNet101; ``stvg extract --weights mdetr:PATH`` uses it),
``transformer.text_encoder.*`` (RoBERTa; likewise), ``class_embed.*``, the contrastive
projections, ``transformer.decoder.norm.*`` without ``model.decoder_norm=true``, MDETR layers
beyond the model's ``n_encoder_layers`` / ``n_layers``, and anything else the file holds.

Differences that remain: MDETR's resizer LayerNorm uses eps 1e-12 (ours 1e-5); the static
decoder's self-attention runs over the frames of the clip (see stvg.models.static_stream) rather than over
MDETR's 100 slots, and a frame-index encoding is added to its query position; MDETR's decoder
layers have no collaboration block between them. Fine-tuning absorbs these; the mapping itself
is exact (tensors copied, the 1x1 conv reshaped).
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from stvg.errors import InputError

log = logging.getLogger(__name__)

MDETR_SCHEME = "mdetr:"
QUERY_SLOT = 0  # the MDETR query slot that becomes CSDVL's one object query (see above)

_ENCODER = {
    "self_attn.in_proj_weight": "self_attn.in_proj_weight",
    "self_attn.in_proj_bias": "self_attn.in_proj_bias",
    "self_attn.out_proj.weight": "self_attn.out_proj.weight",
    "self_attn.out_proj.bias": "self_attn.out_proj.bias",
    "linear1.weight": "ffn.linear1.weight",
    "linear1.bias": "ffn.linear1.bias",
    "linear2.weight": "ffn.linear2.weight",
    "linear2.bias": "ffn.linear2.bias",
    "norm1.weight": "norm.weight",
    "norm1.bias": "norm.bias",
    "norm2.weight": "ffn.norm.weight",
    "norm2.bias": "ffn.norm.bias",
}
_ATTN = ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")
_DECODER = {
    **{f"self_attn.{k}": f"self_attn.{k}" for k in _ATTN},
    **{f"cross_attn_image.{k}": f"cross_attn.{k}" for k in _ATTN},
    "linear1.weight": "ffn.linear1.weight",
    "linear1.bias": "ffn.linear1.bias",
    "linear2.weight": "ffn.linear2.weight",
    "linear2.bias": "ffn.linear2.bias",
    "norm1.weight": "norm1.weight",
    "norm1.bias": "norm1.bias",
    "norm3.weight": "norm2.weight",
    "norm3.bias": "norm2.bias",
    "norm4.weight": "ffn.norm.weight",
    "norm4.bias": "ffn.norm.bias",
}
_FIXED = {
    "input_proj.weight": "static.image_proj.weight",
    "input_proj.bias": "static.image_proj.bias",
    "transformer.resizer.fc.weight": "static.text_proj.0.weight",
    "transformer.resizer.fc.bias": "static.text_proj.0.bias",
    "transformer.resizer.layer_norm.weight": "static.text_proj.1.weight",
    "transformer.resizer.layer_norm.bias": "static.text_proj.1.bias",
    "transformer.decoder.norm.weight": "decoder_norm.weight",
    "transformer.decoder.norm.bias": "decoder_norm.bias",
    "query_embed.weight": "static.query_embed",
    **{
        f"bbox_embed.layers.{k}.{p}": f"box_head.mlp.layers.{k}.{p}"
        for k in range(3)
        for p in ("weight", "bias")
    },
}
_LAYER = re.compile(r"^transformer\.(encoder|decoder)\.layers\.(\d+)\.(.+)$")


@dataclass
class InitReport:
    """What :func:`init_from_mdetr` did: ``loaded`` maps our key -> MDETR key; ``unmapped`` are
    the checkpoint's keys used nowhere (sorted); ``not_initialized`` are the model's static-stream
    and box-head tensors the file did not provide (sorted); ``source`` is ``"model_ema"`` or
    ``"model"``."""

    loaded: dict[str, str] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)
    not_initialized: list[str] = field(default_factory=list)
    source: str = ""


def parse_init(value: str) -> Path:
    """The path of an ``mdetr:PATH`` init value (the only scheme so far); refused otherwise."""
    if not value.startswith(MDETR_SCHEME) or not value[len(MDETR_SCHEME) :]:
        raise InputError(
            f"unknown initialization {value!r}",
            field="init",
            hint="Pass mdetr:PATH with the path of an MDETR checkpoint",
        )
    return Path(value[len(MDETR_SCHEME) :]).expanduser()


def read_mdetr_checkpoint(path: str | Path, what: str = "init") -> tuple[dict[str, Tensor], str]:
    """The model state of an MDETR checkpoint file and the entry it came from.

    Loaded with ``weights_only=True`` and only ``argparse.Namespace`` allowed besides tensors
    (MDETR stores its ``args`` that way); memory-mapped when the file allows it, so the 3 GB
    file (optimizer state included) is not read whole. ``model_ema`` is taken when it holds a
    state, else ``model``; a leading ``module.`` (DDP) is stripped. A bare state dict is accepted
    too. Raises :class:`InputError` naming the file and ``what`` (the option) when the file
    cannot be read or holds no state.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such MDETR checkpoint file", file=path, field=what)
    obj = None
    with torch.serialization.safe_globals([argparse.Namespace]):
        for mmap in (True, False):  # mmap needs the zip format; old files fall back
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
                break
            except Exception as exc:  # any failure means "cannot read it safely"
                error = exc
    if obj is None:
        raise InputError(
            f"cannot read the MDETR checkpoint safely ({type(error).__name__}: "
            f"{str(error).splitlines()[0]})",
            file=path,
            field=what,
            hint="If the file holds other Python objects, re-save its weights on a trusted "
            "machine: torch.save({'model': torch.load(PATH, weights_only=False)['model']}, OUT)",
        ) from error
    source = ""
    for key in ("model_ema", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj, source = obj[key], key
            break
    if not isinstance(obj, Mapping) or not any(torch.is_tensor(v) for v in obj.values()):
        raise InputError("the file holds no MDETR model state", file=path, field=what)
    state = {}
    for key, value in obj.items():
        if torch.is_tensor(value):
            state[key[len("module.") :] if key.startswith("module.") else key] = value
    return state, source or "state_dict"


def initialize(model: nn.Module, init: str) -> InitReport:
    """Apply a ``--init`` value (``mdetr:PATH``) to a freshly built model (the trainer's hook)."""
    return init_from_mdetr(model, parse_init(init))


def mdetr_key_map(state: Mapping[str, Tensor]) -> dict[str, str]:
    """MDETR key -> our key for every key of ``state`` that has a place in CSDVL (see the module
    docstring); keys without one are absent. Layer indices are kept as they are."""
    out = {}
    for key in state:
        if key in _FIXED:
            out[key] = _FIXED[key]
            continue
        match = _LAYER.match(key)
        if match:
            part, index, rest = match.groups()
            table = _ENCODER if part == "encoder" else _DECODER
            if rest in table:
                out[key] = f"static.{part}.{index}.{table[rest]}"
    return out


def _convert(key: str, value: Tensor) -> Tensor:
    if key == "input_proj.weight" and value.dim() == 4 and value.shape[2:] == (1, 1):
        return value[:, :, 0, 0]
    if key == "query_embed.weight" and value.dim() == 2:
        return value[QUERY_SLOT]
    return value


def init_from_mdetr(model: nn.Module, path: str | Path, what: str = "init") -> InitReport:
    """Copy an MDETR checkpoint's transformer, input projection, text resizer, box MLP and query
    into ``model`` (a :class:`~stvg.models.csdvl.CSDVL`); nothing else of ``model`` changes.

    Every mapped tensor must have the model's shape (after the 1x1-conv reshape and the query
    pick): a mismatch raises :class:`InputError` naming both keys and shapes, before anything is
    copied. Returns an :class:`InitReport`; unmapped checkpoint keys are logged (grouped by
    prefix) and listed in it.
    """
    state, source = read_mdetr_checkpoint(path, what)
    own = model.state_dict()
    mapping = {k: v for k, v in mdetr_key_map(state).items() if v in own}
    values, bad = {}, []
    for theirs, ours in mapping.items():
        value = _convert(theirs, state[theirs])
        if tuple(value.shape) != tuple(own[ours].shape):
            bad.append(f"{theirs} {tuple(state[theirs].shape)} -> {ours} {tuple(own[ours].shape)}")
        values[ours] = value
    if bad:
        raise InputError(
            f"{len(bad)} MDETR tensor(s) do not fit the model: {'; '.join(bad[:5])}",
            file=path,
            field=what,
            hint="Build the model with MDETR's sizes (model.d_model=256, model.n_heads=8, "
            "model.dim_feedforward=2048, image_channels 2048 = ResNet101 C5)",
        )
    with torch.no_grad():
        params = dict(model.named_parameters())
        buffers = dict(model.named_buffers())
        for ours, value in values.items():
            target = params.get(ours, buffers.get(ours))
            target.copy_(value.to(dtype=target.dtype))
    wanted = [k for k in own if k.startswith(("static.", "box_head.", "decoder_norm."))]
    report = InitReport(
        loaded={ours: theirs for theirs, ours in mapping.items()},
        unmapped=sorted(set(state) - set(mapping)),
        not_initialized=sorted(set(wanted) - set(values)),
        source=source,
    )
    log.info(
        "MDETR init from %s (%s): %d tensors loaded, %d unmapped checkpoint keys%s",
        path,
        source,
        len(report.loaded),
        len(report.unmapped),
        "".join(f"\n  {p}: {n}" for p, n in _group(report.unmapped).items()),
    )
    if report.not_initialized:
        log.warning(
            "MDETR init: %d static-stream tensors keep their random init: %s",
            len(report.not_initialized),
            ", ".join(report.not_initialized),
        )
    return report


def _group(keys: list[str]) -> dict[str, int]:
    """Counts of ``keys`` by prefix (``backbone.0.body``, ``transformer.text_encoder``, ...)."""
    counts: dict[str, int] = {}
    for key in keys:
        parts = key.split(".")
        depth = 3 if parts[0] == "backbone" else 2 if parts[0] == "transformer" else 1
        prefix = ".".join(parts[:depth]) if len(parts) > depth else key
        counts[prefix] = counts.get(prefix, 0) + 1
    return counts
