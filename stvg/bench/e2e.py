"""``stvg bench e2e``: what a training sample costs end to end, over what it costs from the cache.

End to end is what a codebase that trains from videos (TubeDETR, STCAT, CSDVL's own) pays for
every sample of every epoch: decode and preprocess the sample's Ts static frames and Td clips,
run the backbones, then one step of the heads. The paper's regime (CSDVL supplementary B.1)
fine-tunes the image and text encoders at lr 1e-5 and keeps the video encoder frozen; so, per
sample:

* ``decode``: :func:`stvg.extract.runner.decode_entry` (frames, resize, normalize);
* ``backbones``: SlowFast R50 (AVA architecture) forward; ResNet101 C5 and RoBERTa-base
  (12 layers) forward *and* backward from the heads' loss, plus their AdamW step. ResNet101
  runs in chunks of :data:`IMAGE_CHUNK` frames (forward with grad, backward with that chunk's
  share of the gradient), so 48 frames of 320x568 fit in CPU memory; the arithmetic is the
  same as one big batch;
* ``heads``: one CSDVL step (d 256 as MDETR, N 6 as the paper): the trainer's own
  :func:`stvg.train.trainer.train_step` (forward, weighted losses, backward, clip, AdamW, EMA)
  with the paper's optimization settings (:class:`stvg.train.config.TrainConfig` defaults).

With several ``models`` (``stvg bench e2e --models csdvl,stvgformer,cgstvg,costa``) the
backbones run once per sample and every model's heads take their step on it, each with its own
state; each model gets its own ratio and FLOP ratio, and ``efficiency`` = ratio / FLOP ratio
(1.0 when the heads run as fast per FLOP as the backbones; our target is >= 0.9). The
backbones are tuned from the first model's gradients (the same arithmetic whichever model).

From the cache: read the sample lazily from a zarr store plus the same heads step. Batch 1 on
both sides, the same samples, the first one left out as warm-up; float32, or with ``amp`` bf16
autocast for the heads' steps (``heads``) or for everything (``all``: the backbones' forward and
fine-tuning too, as ``stvg extract --amp`` and ``stvg train --set amp=bf16`` run them). The
result also gives the frozen-backbone variant (forward only, what ``stvg extract`` runs once)
and the floating-point operations of each part counted by
:class:`torch.utils.flop_counter.FlopCounterMode` on one sample, which do not depend on the
machine.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from stvg.bench.timer import Timer
from stvg.device import autocast
from stvg.progress import bar_disabled

IMAGE_CHUNK = 8  # frames per ResNet101 forward/backward when fine-tuning
BACKBONE_LR = 1e-5  # CSDVL supplementary B.1, image and text encoders


def _e2e_settings(quick: bool) -> dict[str, Any]:
    """Sizes of ``bench e2e``. Full: HC-STVG's (Ts 48 frames at Nshort 320 from 568x320 video,
    Td 16 SlowFast clips at 256, RoBERTa-base 12 layers) with heads of d 256 (MDETR) and N 6.
    Quick, a scaled setting: Ts 8 at Nshort 120 (160x120 video), Td 4 clips at 128, same
    backbones and heads. The video lasts exactly Ts frames of the 5 fps grid, so the end-to-end
    side decodes no frame it does not use."""
    if quick:
        return {"ts": 8, "size": (160, 120), "n_short": 120, "td": 4, "clip_size": 128}
    return {"ts": 48, "size": (568, 320), "n_short": 320, "td": 16, "clip_size": 256}


class _Flops:
    """Accumulates FlopCounterMode totals per part while ``active``."""

    def __init__(self) -> None:
        self.active = False
        self.totals: dict[str, int] = {}

    def count(self, part: str, fn: Any, *args: Any) -> Any:
        if not self.active:
            return fn(*args)
        with FlopCounterMode(display=False) as counter:
            result = fn(*args)
        self.totals[part] = self.totals.get(part, 0) + counter.get_total_flops()
        return result


def model_ratios(
    per: dict[str, float], cached: dict[str, float], flops: dict[str, int], models: list[str]
) -> dict[str, dict[str, float]]:
    """Each model's ratios from the per-sample means: ``per`` holds ``decode``, ``video``,
    ``tune``, ``forward`` and ``heads:<model>`` (seconds, end-to-end side), ``cached[model]`` the
    read + step seconds from the cache, ``flops`` the counts of ``video_backbone``,
    ``image_backbone``, ``text_backbone`` and ``heads:<model>``."""
    backbone_flops = flops["video_backbone"] + flops["image_backbone"] + flops["text_backbone"]
    out = {}
    for m in models:
        heads = per[f"heads:{m}"]
        tuned = per["decode"] + per["video"] + per["tune"] + heads
        frozen = per["decode"] + per["forward"] + heads
        ratio = tuned / cached[m]
        flop_ratio = (backbone_flops + flops[f"heads:{m}"]) / flops[f"heads:{m}"]
        out[m] = {
            "ratio_end_to_end_vs_cached": ratio,
            "flop_ratio_end_to_end_vs_cached": flop_ratio,
            "efficiency": ratio / flop_ratio,
            "ratio_frozen_backbones_vs_cached": frozen / cached[m],
            "end_to_end_s_per_sample": tuned,
            "cached_s_per_sample": cached[m],
            "heads_s_per_sample": heads,
            "heads_gflops_per_sample": flops[f"heads:{m}"] / 1e9,
            "heads_gflop_per_s": flops[f"heads:{m}"] / 1e9 / heads,
        }
    return out


def heads_config(model: str) -> dict[str, Any]:
    """``model``'s default (paper-size) heads over this benchmark's store channels."""
    from stvg.models.zoo import model_entry

    return model_entry(model).config(image_channels=2048, motion_channels=2304).to_dict()


AMP_CHOICES = ("off", "heads", "all")


def bench_e2e(quick: bool, models: list[str] | None = None, amp: str = "off") -> dict[str, Any]:
    """Returns ``ratio_end_to_end_vs_cached`` (goal >= 20), the frozen-backbone ratio, the
    per-sample breakdown in seconds and the FLOP ratio (of the first model), and ``models``:
    each model's ratios (:func:`model_ratios`); see the module docstring. ``amp``: ``off``
    (float32), ``heads`` (the heads' steps under bf16 autocast, ``TrainConfig.amp``, on both
    sides; backbones float32) or ``all`` (the backbones too, forward and fine-tuning)."""
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp {amp!r}: expected one of {', '.join(AMP_CHOICES)}")
    from stvg.data.synth import synthesize
    from stvg.extract import load_splits
    from stvg.extract.config import preset
    from stvg.extract.plan import plan_entries
    from stvg.extract.runner import build_encoders, decode_entry, encode_entry, encode_motion
    from stvg.features.dataset import FeatureDataset, collate
    from stvg.features.manifest import Manifest
    from stvg.features.store import create_store
    from stvg.train.config import TrainConfig
    from stvg.train.distributed import Distributed
    from stvg.train.state import new_state
    from stvg.train.trainer import train_step

    models = list(models or ["csdvl"])
    s = _e2e_settings(quick)
    videos = 3 if quick else 4
    config = preset(
        "synthetic",
        image_backbone="resnet101",
        image_layer="layer4",
        video_backbone="slowfast_r50_detection",
        text_layers=12,
        n_short=s["n_short"],
        td=s["td"],
        clip_size=s["clip_size"],
        max_text_len=32,
        batch_size=8,
        amp=amp == "all",
    )
    backbone_amp = "bf16" if amp == "all" else "off"
    heads_amp = "off" if amp == "off" else "bf16"
    torch.manual_seed(0)
    encoders = build_encoders(config)
    tuned = [*encoders.image.body.parameters(), *encoders.text.model.parameters()]
    for p in tuned:  # the extraction encoders are frozen; the paper trains these two
        p.requires_grad_(True)
    backbone_optimizer = torch.optim.AdamW(tuned, lr=BACKBONE_LR, weight_decay=1e-4)
    flops = _Flops()

    def heads_step(model: str, item: dict[str, Any], keep_input_grads: bool = False) -> Any:
        batch = collate([item])
        if keep_input_grads:
            batch["image"].requires_grad_(True)
            batch["text"].requires_grad_(True)

        flops.count(f"heads:{model}", train_step, states[model], batch)
        return batch

    def tune_backbones(decoded: Any, sample: Any, batch: dict[str, Any]) -> None:
        """Forward with grad + backward of ResNet101 and RoBERTa from the heads' gradients."""
        static = decoded.static  # [frames, 3, h, w] normalized
        grad = torch.zeros(static.shape[0], *batch["image"].shape[2:])
        grad.index_add_(0, batch["frame_idx"][0].long(), batch["image"].grad[0])
        backbone_optimizer.zero_grad(set_to_none=True)
        for start in range(0, static.shape[0], IMAGE_CHUNK):
            chunk = slice(start, start + IMAGE_CHUNK)

            def image_part(chunk: slice = chunk) -> None:
                with autocast(torch.device("cpu"), backbone_amp):
                    out = encoders.image.body(static[chunk])
                out.backward(grad[chunk].to(out.dtype))

            flops.count("image_backbone", image_part)
        tokens = encoders.text.tokenizer([sample.caption], return_tensors="pt")

        def text_part() -> None:
            with autocast(torch.device("cpu"), backbone_amp):
                states = encoders.text.model(**tokens).last_hidden_state  # [1, L, 768]
            n = batch["text"].shape[1]
            states[:, :n].backward(batch["text"].grad.to(states.dtype))

        flops.count("text_backbone", text_part)
        backbone_optimizer.step()

    with tempfile.TemporaryDirectory(prefix="stvg-bench-e2e-") as tmp:
        # the heads as `stvg train` builds them (paper optimization settings), seeded above
        states = {
            m: new_state(
                TrainConfig(model_name=m, amp=heads_amp),
                heads_config(m),
                Path(tmp) / m,
                Distributed("cpu"),
                1,
                1,
            )
            for m in models
        }
        data = Path(tmp) / "data"
        seconds = 2 * s["ts"] / 10  # 10 fps video: the 5 fps grid has exactly Ts frames
        synthesize(
            data, videos=videos, seconds=seconds, fps=10.0, size=s["size"],
            queries_per_video=1, progress=False,
        )  # fmt: skip
        entries = plan_entries(load_splits("synthetic", data, ["train", "val", "test"]), data)
        store = create_store(Path(tmp) / "features", Manifest(dataset="bench", backbones={}))
        parts = ("decode", "forward", "video", "tune", "read", *(f"heads:{m}" for m in models))
        cost: dict[str, list[float]] = {k: [] for k in parts}
        items = []
        for n, entry in enumerate(
            tqdm(entries, desc="bench e2e: end to end", unit="sample", disable=bar_disabled())
        ):
            flops.active = n == 0  # count on the warm-up sample (not timed)
            with Timer() as decode:
                decoded = decode_entry(entry, config, encoders)
            with Timer() as forward:
                values = flops.count("frozen_backbones", encode_entry, decoded, config, encoders)
            with Timer() as video:
                flops.count("video_backbone", encode_motion, decoded, config, encoders)
            image = np.clip(values["image"], -6e4, 6e4)  # random C5 exceeds float16
            with store.writer(entry.split, part=(0, 1)) as writer:
                writer.write_video(
                    entry.entry_id, values["frame_ids"], image, values["clip_spans"],
                    values["motion"],
                )  # fmt: skip
                for sample, text, mask in values["texts"]:
                    writer.write_query(sample, text, mask, entry.entry_id)
            ram = FeatureDataset(Path(tmp) / "features", entry.split, s["ts"], in_memory=True)
            item = ram.item(ram.entry_ids.index(entry.entry_id))
            batches = []
            for m in models:
                with Timer() as heads_time:
                    batches.append(heads_step(m, item, keep_input_grads=True))
                cost[f"heads:{m}"].append(heads_time.seconds)
            with Timer() as tune:
                tune_backbones(decoded, entry.samples[0], batches[0])
            items.append((entry.split, entry.entry_id))
            cost["decode"].append(decode.seconds)
            cost["forward"].append(forward.seconds)
            cost["video"].append(video.seconds)
            cost["tune"].append(tune.seconds)
        flops.active = False
        cached: dict[str, list[float]] = {m: [] for m in models}
        for split, entry_id in items:
            lazy = FeatureDataset(Path(tmp) / "features", split, s["ts"])
            index = lazy.entry_ids.index(entry_id)
            with Timer() as read:
                item = lazy[index]
            cost["read"].append(read.seconds)
            for m in models:
                with Timer() as step:
                    heads_step(m, item)
                cached[m].append(read.seconds + step.seconds)
    # the first sample warms up every kernel: leave it out of both sides
    per = {k: float(np.mean(v[1:])) for k, v in cost.items()}
    from_cache = {m: float(np.mean(v[1:])) for m, v in cached.items()}
    # "forward": all three backbones without grad (the frozen variant); fine-tuned, the image
    # and text encoders run forward with grad and backward inside "tune", so the end-to-end
    # side is decode + the video encoder's forward + heads + tune.
    f = flops.totals
    ratios = model_ratios(per, from_cache, f, models)
    first = ratios[models[0]]
    return {
        **{
            k: first[k]
            for k in (
                "ratio_end_to_end_vs_cached",
                "ratio_frozen_backbones_vs_cached",
                "flop_ratio_end_to_end_vs_cached",
                "end_to_end_s_per_sample",
                "cached_s_per_sample",
            )
        },  # fmt: skip
        "models": ratios,
        "breakdown_s_per_sample": per,
        "gflops_per_sample": {k: v / 1e9 for k, v in f.items()},
        "samples_timed": len(items) - 1,
        "settings": {
            **s,
            "size": list(s["size"]),
            "heads": {m: "paper-size defaults" for m in models},
            "batch": 1,
            "fine_tuned": ["resnet101", "roberta-base"],
            "frozen": ["slowfast_r50_detection"],
            "amp": amp,
        },
        "torch_threads": torch.get_num_threads(),
        "quick": quick,
    }
