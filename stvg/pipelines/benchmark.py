"""``stvg pipeline``: synth -> extract -> train -> predict -> score, as resumable steps.

Layout of ``DIR``: ``data/`` (synthetic only), ``features/``, ``run/``, ``predictions.json``,
``metrics.json`` (the ``stvg score --json`` shape, as ``--json-out`` writes it) and ``report.json`` (the same scores grouped
by synthetic kind, next to the two trivial baselines scored by the same scorer: the whole segment
with a centered box, and the training set's mean span and box). See
:mod:`stvg.pipelines.steps` for when a step is skipped, resumed or rerun.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stvg.atomic import write_json_atomic
from stvg.config import require
from stvg.errors import InputError
from stvg.pipelines.steps import Pipeline, Step, StepResult

log = logging.getLogger(__name__)

STEPS = ("synth", "extract", "train", "predict", "score")


@dataclass
class PipelineConfig:
    dataset: str = "synthetic"
    out: Path = Path("runs/synthetic")
    data_root: Path | None = None  # real datasets: where the videos and annotations are
    annotations: str | None = None
    boxes_dir: Path | None = None
    synth: dict[str, Any] = field(default_factory=dict)  # knobs of stvg.data.synth.synthesize
    extract: dict[str, Any] = field(default_factory=dict)  # overrides of the extract preset
    train: list[str] = field(default_factory=list)  # --set key=value for training
    split: str = "test"
    protocol: str = "tubedetr"
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise :class:`~stvg.config.SettingError` for a setting no step can use (the step
        settings themselves are checked by ExtractConfig and TrainConfig when built)."""
        from stvg.evaluate.protocols import PROTOCOLS
        from stvg.extract.config import DATASETS

        where = "PipelineConfig"
        require(
            self.dataset in DATASETS,
            "dataset",
            self.dataset,
            f"expected one of {', '.join(DATASETS)}",
            where,
        )
        require(
            self.protocol in PROTOCOLS,
            "protocol",
            self.protocol,
            f"expected one of {', '.join(PROTOCOLS)}",
            where,
        )
        require(bool(self.split), "split", self.split, "must not be empty", where)
        require(
            isinstance(self.train, list),
            "train",
            self.train,
            "expected a list of key=value strings",
            where,
        )


def _score_report(
    split_annotations: Any, train_annotations: Any, predictions: Any, protocol: str
) -> dict[str, Any]:
    from stvg.evaluate.baselines import center_baseline, mean_baseline
    from stvg.evaluate.score import score

    group = "extra.kind" if any("kind" in s.extra for s in split_annotations.samples) else "qtype"
    report = {
        "protocol": protocol,
        "group_by": group,
        "model": score(split_annotations, predictions, protocol, group_by=group),
        "center": score(
            split_annotations, center_baseline(split_annotations), protocol, group_by=group
        ),
    }
    if train_annotations is not None and train_annotations.samples:
        report["mean"] = score(
            split_annotations,
            mean_baseline(split_annotations, train_annotations),
            protocol,
            group_by=group,
        )
    return report


def format_report(report: dict[str, Any]) -> str:
    """The comparison table: one row per group and method, values in %."""
    metrics = ("m_vIoU", "m_tIoU", "m_sIoU", "vIoU@0.3", "vIoU@0.5", "count")
    methods = [m for m in ("model", "center", "mean") if m in report]
    groups = list(report["model"])
    header = f"{'group':<18} {'method':<7} " + " ".join(f"{m:>8}" for m in metrics)
    lines = [
        f"protocol: {report['protocol']}; groups by {report['group_by']}; values in %",
        header,
        "-" * len(header),
    ]
    for group in groups:
        for method in methods:
            row = report[method][group]
            cells = [
                f"{row[m]:>8d}"
                if m == "count"
                else ("       -" if row[m] is None else f"{100 * row[m]:>8.2f}")
                for m in metrics
            ]
            lines.append(f"{group:<18} {method:<7} " + " ".join(cells))
    return "\n".join(lines)


def build_steps(cfg: PipelineConfig) -> list[Step]:
    from stvg.extract.config import preset as extract_preset
    from stvg.train.config import resolve

    root = Path(cfg.out)
    data = root / "data" if cfg.dataset == "synthetic" else Path(cfg.data_root or "")
    features, run_dir = root / "features", root / "run"
    predictions_path, metrics_path, report_path = (
        root / "predictions.json",
        root / "metrics.json",
        root / "report.json",
    )
    extract_cfg = extract_preset(cfg.dataset, **cfg.extract)
    train_preset = cfg.dataset if cfg.dataset != "normalized" else "vidstg"
    train_cfg = resolve(train_preset, cfg.train)
    steps: list[Step] = []

    if cfg.dataset == "synthetic":

        def synth(resume: bool) -> dict[str, Any]:
            import shutil

            from stvg.data.synth import synthesize

            if resume and data.is_dir():
                # An interrupted generation left videos but no synth.json, which synthesize
                # refuses to overwrite; the folder is the pipeline's own: start it over.
                shutil.rmtree(data)
            result = synthesize(data, progress=cfg.progress, **cfg.synth)
            return {split: len(a.samples) for split, a in result.items()}

        steps.append(Step("synth", {"synth": cfg.synth}, [data], synth))
    elif cfg.data_root is None:
        raise InputError(f"--dataset {cfg.dataset} needs --data-root", field="--data-root")

    def extract(resume: bool) -> dict[str, Any]:
        from stvg.extract import run

        summary = run(
            extract_cfg,
            data,
            features,
            splits=["train", "val", cfg.split],
            annotations=cfg.annotations,
            boxes_dir=cfg.boxes_dir,
            progress=cfg.progress,
        )
        if summary.failed:
            log.warning(
                "%d video(s) failed to extract; see %s/failures.jsonl",
                len(summary.failed),
                features,
            )
        return summary.to_json()

    upstream = ["synth"] if cfg.dataset == "synthetic" else []
    data_key = None if cfg.dataset == "synthetic" else str(cfg.data_root)
    steps.append(
        Step(
            "extract",
            {
                "extract": extract_cfg.values_json(),
                "data_root": data_key,
                "annotations": cfg.annotations,
            },
            [features],
            extract,
            after=upstream,
        )
    )

    def train(resume: bool) -> dict[str, Any]:
        from stvg.train import run

        return run(
            features, run_dir, train_cfg, resume=resume, device=cfg.device, progress=cfg.progress
        )

    steps.append(Step("train", {"train": train_cfg.to_json()}, [run_dir], train, after=["extract"]))

    def predict(resume: bool) -> dict[str, Any]:
        from stvg.evaluate.predict import predict_split, prediction_provenance
        from stvg.evaluate.predictions import write_predictions

        preds, _ = predict_split(
            run_dir, features, cfg.split, device=cfg.device, progress=cfg.progress
        )
        write_predictions(predictions_path, preds, prediction_provenance(run_dir, cfg.split))
        return {"predictions": len(preds), "split": cfg.split}

    steps.append(
        Step("predict", {"split": cfg.split}, [predictions_path], predict, after=["train"])
    )

    def score_step(resume: bool) -> dict[str, Any]:
        from stvg.data.sample import Annotations
        from stvg.evaluate.predictions import read_predictions
        from stvg.evaluate.score import score
        from stvg.features.store import open_store

        store = open_store(features)
        split_annotations = Annotations(samples=store.samples(cfg.split), split=cfg.split)
        train_annotations = Annotations(samples=store.samples("train"), split="train")
        predictions = read_predictions(predictions_path)
        results = score(split_annotations, predictions, cfg.protocol)
        write_json_atomic(metrics_path, results, indent=2)
        report = _score_report(split_annotations, train_annotations, predictions, cfg.protocol)
        write_json_atomic(report_path, report, indent=2)
        return {"all": results["all"]}

    steps.append(
        Step(
            "score",
            {"protocol": cfg.protocol},
            [metrics_path, report_path],
            score_step,
            after=["predict"],
        )
    )
    return steps


def run_pipeline(
    cfg: PipelineConfig, start: str | None = None, force: bool = False
) -> tuple[list[StepResult], dict[str, Any]]:
    """Run (or resume) the pipeline into ``cfg.out``; returns the step results and the report."""
    import json

    steps = build_steps(cfg)
    results = Pipeline(cfg.out).run(steps, start=start, force=force)
    report = json.loads((Path(cfg.out) / "report.json").read_text())
    return results, report
