"""``stvg visualize``: every picture of one sample of an annotation file."""

from __future__ import annotations

import re
from pathlib import Path

from stvg.errors import InputError
from stvg.evaluate.pictures.attention import attention_strip
from stvg.evaluate.pictures.inference import sample_attention
from stvg.evaluate.pictures.tube import tube_strip


def _safe_name(sample_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", sample_id).strip("._") or "sample"


def visualize_sample(
    annotations: str | Path,
    sample_id: str,
    out_dir: str | Path,
    *,
    predictions: str | Path | None = None,
    num_frames: int = 8,
    gif: bool = False,
    video_root: str | Path | None = None,
    format: str | None = None,
    boxes_dir: str | Path | None = None,
    attention_run: str | Path | None = None,
    features: str | Path | None = None,
    split: str = "test",
    layer: int | None = None,
    device: str = "cpu",
) -> list[Path]:
    """``stvg visualize``: the pictures of one sample of an annotation file, in ``out_dir``.

    Writes ``<id>.png`` (:func:`tube_strip`), with ``gif`` also ``<id>.gif``, and with
    ``attention_run`` (and ``features``) ``<id>-attention.png`` (:func:`attention_strip`);
    ``<id>`` is the sample id with characters other than letters, digits, ``.``, ``_`` and ``-``
    replaced by ``_``. The video is ``video_root / sample.video_path`` (default root: the
    annotation file's folder). Returns the written paths; raises :class:`InputError` for an
    unknown sample id, a sample missing from the predictions, a missing or unreadable video.
    """
    from stvg.data.formats import load_annotations
    from stvg.evaluate.predictions import read_predictions

    annotations = Path(annotations)
    loaded = load_annotations(annotations, format, boxes_dir=boxes_dir)
    by_id = loaded.by_id()
    if sample_id not in by_id:
        known = ", ".join(list(by_id)[:5]) + (", ..." if len(by_id) > 5 else "")
        raise InputError(
            f"no sample with this id in the annotations (they hold {len(by_id)}: {known})",
            file=annotations,
            sample=sample_id,
            field="--sample",
        )
    sample = by_id[sample_id]
    prediction = None
    if predictions is not None:
        preds = read_predictions(predictions)
        if sample_id not in preds.by_id:
            raise InputError(
                "the predictions hold no tube for this sample", file=predictions, sample=sample_id
            )
        prediction = preds.by_id[sample_id]
    root = Path(video_root) if video_root is not None else annotations.parent
    video = root / sample.video_path
    if not video.exists():
        raise InputError(
            f"the video {video} does not exist",
            file=annotations,
            sample=sample_id,
            field="video_path",
            hint="Pass --video-root DIR, the folder the annotation's video paths are relative to",
        )
    out_dir = Path(out_dir)
    name = _safe_name(sample_id)
    written = tube_strip(
        sample,
        prediction,
        video,
        out_dir / f"{name}.png",
        num_frames=num_frames,
        gif=out_dir / f"{name}.gif" if gif else None,
    )
    if attention_run is not None:
        if features is None:
            raise InputError(
                "--attention needs --features DIR (the store the run was trained on)",
                field="--features",
            )
        _, attention, frame_ids = sample_attention(
            attention_run, features, split, sample_id, device
        )
        written.append(
            attention_strip(
                sample,
                attention,
                frame_ids,
                video,
                out_dir / f"{name}-attention.png",
                layer=layer,
                num_frames=num_frames,
            )
        )
    return written
