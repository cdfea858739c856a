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
from functools import partial
from pathlib import Path
from typing import Any

from stvg.atomic import write_json_atomic
from stvg.config import require
from stvg.errors import InputError
from stvg.pipelines.inputs import annotation_files, files_state
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


@dataclass(frozen=True)
class Layout:
    """Where each step of a pipeline in ``root`` reads and writes (see the module doc)."""

    root: Path
    data: Path  # synthetic: ROOT/data; real datasets: the --data-root
    features: Path
    run: Path
    predictions: Path
    metrics: Path
    report: Path

    @classmethod
    def of(cls, cfg: PipelineConfig) -> Layout:
        root = Path(cfg.out)
        data = root / "data" if cfg.dataset == "synthetic" else Path(cfg.data_root or "")
        return cls(
            root, data, root / "features", root / "run", root / "predictions.json",
            root / "metrics.json", root / "report.json",
        )  # fmt: skip


# ----------------------------------------------------------------------------- the steps
# Each is ``(cfg, layout, [resolved config,] resume) -> summary``; build_steps binds all but
# ``resume``, which the Pipeline passes (True to continue an interrupted run of the step).
def run_synth(cfg: PipelineConfig, layout: Layout, resume: bool) -> dict[str, Any]:
    """Generate the synthetic dataset into ``layout.data``; returns queries per split."""
    import shutil

    from stvg.data.synth import synthesize

    if resume and layout.data.is_dir():
        # An interrupted generation left videos but no synth.json, which synthesize
        # refuses to overwrite; the folder is the pipeline's own: start it over.
        shutil.rmtree(layout.data)
    result = synthesize(layout.data, progress=cfg.progress, **cfg.synth)
    return {split: len(a.samples) for split, a in result.items()}


def run_extract(
    cfg: PipelineConfig, layout: Layout, extract_cfg: Any, resume: bool
) -> dict[str, Any]:
    """Stage one into ``layout.features`` (train, val and the scored split); a rerun continues
    where it stopped (the store skips complete entries)."""
    from stvg.extract import run

    summary = run(
        extract_cfg,
        layout.data,
        layout.features,
        splits=["train", "val", cfg.split],
        annotations=cfg.annotations,
        boxes_dir=cfg.boxes_dir,
        progress=cfg.progress,
    )
    if summary.failed:
        log.warning(
            "%d video(s) failed to extract; see %s/failures.jsonl",
            len(summary.failed),
            layout.features,
        )
    return summary.to_json()


def run_train(cfg: PipelineConfig, layout: Layout, train_cfg: Any, resume: bool) -> dict[str, Any]:
    """Stage two into ``layout.run``, resumed from its checkpoint with ``resume``."""
    from stvg.train import run

    return run(
        layout.features, layout.run, train_cfg, resume=resume, device=cfg.device,
        progress=cfg.progress,
    )  # fmt: skip


def run_predict(cfg: PipelineConfig, layout: Layout, resume: bool) -> dict[str, Any]:
    """Predict ``cfg.split`` with the run's best weights into ``layout.predictions``."""
    from stvg.evaluate.predict import predict_split, prediction_provenance
    from stvg.evaluate.predictions import write_predictions

    preds, _ = predict_split(
        layout.run, layout.features, cfg.split, device=cfg.device, progress=cfg.progress
    )
    write_predictions(layout.predictions, preds, prediction_provenance(layout.run, cfg.split))
    return {"predictions": len(preds), "split": cfg.split}


def run_score(cfg: PipelineConfig, layout: Layout, resume: bool) -> dict[str, Any]:
    """Score the predictions (``metrics.json``) and compare them with the baselines
    (``report.json``)."""
    from stvg.data.sample import Annotations
    from stvg.evaluate.predictions import read_predictions
    from stvg.evaluate.score import score
    from stvg.features.store import open_store

    store = open_store(layout.features)
    split_annotations = Annotations(samples=store.samples(cfg.split), split=cfg.split)
    train_annotations = Annotations(samples=store.samples("train"), split="train")
    predictions = read_predictions(layout.predictions)
    results = score(split_annotations, predictions, cfg.protocol)
    write_json_atomic(layout.metrics, results, indent=2)
    report = _score_report(split_annotations, train_annotations, predictions, cfg.protocol)
    write_json_atomic(layout.report, report, indent=2)
    return {"all": results["all"]}


def extract_inputs(cfg: PipelineConfig, layout: Layout) -> dict[str, Any]:
    """The extract step's input files: annotation bytes, the other files' size and mtime."""
    splits = ["train", "val", cfg.split]
    notes = annotation_files(cfg.dataset, layout.data, splits, cfg.annotations)
    return files_state(layout.data, notes, exclude=[layout.root])


def build_steps(cfg: PipelineConfig) -> list[Step]:
    """The steps of ``cfg`` in order, each with the config its fingerprint covers."""
    from stvg.extract.config import preset as extract_preset
    from stvg.train.config import resolve

    layout = Layout.of(cfg)
    extract_cfg = extract_preset(cfg.dataset, **cfg.extract)
    train_preset = cfg.dataset if cfg.dataset != "normalized" else "vidstg"
    train_cfg = resolve(train_preset, cfg.train)
    steps: list[Step] = []
    if cfg.dataset == "synthetic":
        synth = partial(run_synth, cfg, layout)
        steps.append(Step("synth", {"synth": cfg.synth}, [layout.data], synth))
    elif cfg.data_root is None:
        raise InputError(f"--dataset {cfg.dataset} needs --data-root", field="--data-root")
    extract_config = {
        "extract": extract_cfg.values_json(),
        "data_root": None if cfg.dataset == "synthetic" else str(cfg.data_root),
        "annotations": cfg.annotations,
    }
    upstream = ["synth"] if cfg.dataset == "synthetic" else []
    extract = partial(run_extract, cfg, layout, extract_cfg)
    train = partial(run_train, cfg, layout, train_cfg)
    predict, score = partial(run_predict, cfg, layout), partial(run_score, cfg, layout)
    outputs = [layout.metrics, layout.report]
    return [
        *steps,
        Step(
            "extract",
            extract_config,
            [layout.features],
            extract,
            after=upstream,
            inputs=partial(extract_inputs, cfg, layout),
            incremental=True,
        ),
        Step("train", {"train": train_cfg.to_json()}, [layout.run], train, after=["extract"]),
        Step("predict", {"split": cfg.split}, [layout.predictions], predict, after=["train"]),
        Step("score", {"protocol": cfg.protocol}, outputs, score, after=["predict"]),
    ]


def run_pipeline(
    cfg: PipelineConfig, start: str | None = None, force: bool = False
) -> tuple[list[StepResult], dict[str, Any]]:
    """Run (or resume) the pipeline into ``cfg.out``; returns the step results and the report."""
    import json

    steps = build_steps(cfg)
    results = Pipeline(cfg.out).run(steps, start=start, force=force)
    report = json.loads((Path(cfg.out) / "report.json").read_text())
    return results, report
