"""How stored arrays describe themselves to readers without stvg: axis names and attributes.

Every array of an entry carries ``long_name`` and ``units``; feature maps also carry what made
them (from the manifest's ``backbones``: ``backbone``, ``layer``, ``stride``, ``weights``) and,
when stored as int8, how to dequantize them (``scale_array``, ``dequantize``). Frame ids and clip
spans carry the video's ``fps`` when the writer knows it (time in seconds = frame id / fps) and
the sampling rate of the static frames (``sample_fps``). The part itself carries the manifest
(``stvg_manifest``, JSON) and ``stvg_layout``.
"""

from __future__ import annotations

import json
from typing import Any

from stvg.features.contract import Attrs

# Axis names per array. ``frame_ids`` is named after its own axis, so xarray (and HDF5 dimension
# scales) make it the coordinate of ``image``; ``motion`` lists ``clip_spans`` as a coordinate.
DIMS: dict[str, tuple[str, ...]] = {
    "frame_ids": ("frame_ids",),
    "image": ("frame_ids", "image_channel", "image_y", "image_x"),
    "image_scale": ("image_channel",),
    "clip_spans": ("clip", "bound"),
    "motion": ("clip", "motion_channel", "motion_y", "motion_x"),
    "motion_scale": ("motion_channel",),
    "text": ("token", "text_channel"),
    "text_scale": ("text_channel",),
    "text_mask": ("token",),
}

# Feature array -> the manifest's backbone role that made it.
_ROLE = {"image": "image", "motion": "video", "text": "text"}
_BACKBONE_KEYS = {"name": "backbone", "layer": "layer", "stride": "stride", "weights": "weights"}
_LONG_NAMES = {
    "frame_ids": "native frame index (0-based) of each static frame",
    "clip_spans": "half-open [start, end) native frame span of each clip",
    "image": "image backbone feature map of each static frame",
    "motion": "video backbone feature map of each clip",
    "text": "text encoder state of each token",
    "text_mask": "true for a token, false for padding",
}


def array_attrs(
    name: str, dtype: str, backbones: dict[str, Any], sampling: dict[str, Any], entry: Attrs
) -> Attrs:
    """The attributes of stored array ``name`` (``dtype``: the store's feature dtype)."""
    feature = name.removesuffix("_scale")
    if name.endswith("_scale"):
        return {
            "long_name": f"per-channel step of the int8 codes of {feature}",
            "units": "feature units per int8 step",
        }
    attrs: Attrs = {"long_name": _LONG_NAMES[name]}
    if name in ("frame_ids", "clip_spans"):
        attrs["units"] = "frame"
        if isinstance(entry.get("fps"), (int, float)):
            attrs["fps"] = entry["fps"]
        if name == "frame_ids" and isinstance(sampling.get("target_fps"), (int, float)):
            attrs["sample_fps"] = sampling["target_fps"]
        return attrs
    if name == "text_mask":
        return attrs
    attrs["units"] = "backbone activation"
    spec = backbones.get(_ROLE[name])
    for key, attr in _BACKBONE_KEYS.items():
        value = spec.get(key) if isinstance(spec, dict) else None
        if isinstance(value, (str, int, float, bool)):
            attrs[attr] = value
    if name == "motion" and isinstance(spec, dict) and isinstance(spec.get("clip_frames"), int):
        attrs["clip_frames"] = spec["clip_frames"]
    if name == "motion":
        attrs["coordinates"] = "clip_spans"  # CF: xarray attaches clip_spans to motion
    if dtype == "int8":
        channel = DIMS[name][1]
        attrs["scale_array"] = f"{name}_scale"
        attrs["dequantize"] = (
            f"float32({name}) * {name}_scale, the scale broadcast along {channel} (axis 1)"
        )
    return attrs


def part_attrs(manifest_json: dict[str, Any]) -> Attrs:
    """The attributes of a part's root: the layout and the whole manifest as JSON."""
    return {
        "stvg_layout": str(manifest_json["layout"]),
        "stvg_manifest": json.dumps(manifest_json, sort_keys=True),
    }
