"""``stvg bench zoo``: every model of the zoo and CSDVL's collaboration ablation, over seeds, on
one synthetic store, scored by one scorer per synthetic kind.

The work is a list of **trainings** (:func:`plan`): each model of
:data:`stvg.models.zoo.MODELS` with each seed, plus CSDVL with ``model.collab`` set to each
ablation mode other than ``full`` (CSDVL's own runs are the ``full`` arm). Each training is one
child process (``python -m stvg.bench.zoo``) with ``threads`` torch threads: it trains with the
``synthetic`` preset (plus ``epochs``, ``seed``, ``validate=false``: the last EMA weights are
scored, so no arm is picked on the validation split), predicts ``split`` and scores it with the
``tubedetr`` protocol grouped by ``extra.kind``. ``jobs`` children run at a time.

Layout of ``OUT``: ``store/`` (the synthetic videos and their features, made by the pipeline's
own synth and extract steps: :mod:`stvg.pipelines.chain`), ``jobs/<training>/`` (``settings.json``,
``run/``, ``log.txt``, ``result.json``), and the report: ``zoo.json``, ``zoo.md``, ``zoo.png``.

Resuming: a training whose ``result.json`` exists with the same settings is skipped; one that was
killed continues from its last checkpoint (``stvg train --resume``); one whose settings changed
starts over. ``result.json`` also holds the child's wall time and CPU time (user + system, from
``wait4``), so the report gives the machine-independent cost (the sum of CPU times) next to the
wall time, which other jobs on a shared machine inflate.

The aggregation and the verdict on the paper's ordering are the pure functions of
:mod:`stvg.bench.seed_stats`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stvg.atomic import write_json_atomic, write_text_atomic
from stvg.bench.seed_stats import long_table, summarize, verdict, wide_table

log = logging.getLogger(__name__)

ABLATION = ("none", "s2d", "d2s", "full")
PRESET = "synthetic"
PROTOCOL = "tubedetr"
GROUP_BY = "extra.kind"
# The budget (measured, BENCHMARKS.md "Model zoo"): 7 epochs on the demo's store keep the four
# models + the ablation (21 trainings) at 58 min on 2 cores shared with other jobs.
EPOCHS = 7
VIDEOS = 240


@dataclass(frozen=True)
class Training:
    """One training of the comparison: ``arm`` (the row of the table it counts for) and seed."""

    name: str
    arm: str
    model: str
    seed: int
    overrides: tuple[str, ...] = ()


def ablation_arm(mode: str) -> str:
    """The table row of CSDVL with ``model.collab=mode`` (``full`` is plain ``csdvl``)."""
    return "csdvl" if mode == "full" else f"csdvl collab={mode}"


def plan(models: Sequence[str], seeds: int, collab: Sequence[str]) -> list[Training]:
    """The trainings: each of ``models`` with seeds ``0 .. seeds-1``, then (when ``csdvl`` is
    among them and ``collab`` names modes) CSDVL with each ``collab`` mode but ``full``, whose
    runs are the plain ``csdvl`` ones. Seed-major, so that a cut comparison has whole seeds."""
    out = []
    for seed in range(seeds):
        for model in models:
            out.append(Training(f"{model}-seed{seed}", model, model, seed))
        if "csdvl" in models:
            for mode in collab:
                if mode != "full":
                    out.append(
                        Training(
                            f"csdvl-collab-{mode}-seed{seed}",
                            ablation_arm(mode),
                            "csdvl",
                            seed,
                            (f"model.collab={mode}",),
                        )  # fmt: skip
                    )
    return out


@dataclass
class ZooConfig:
    """The knobs of :func:`run_zoo` (see the module doc)."""

    out: Path
    models: tuple[str, ...] = ()  # () = every model of stvg.models.zoo.MODELS
    seeds: int = 3
    collab: tuple[str, ...] = ABLATION  # () = no ablation
    epochs: int = EPOCHS
    videos: int = VIDEOS
    features: Path | None = None  # an existing store instead of OUT/store
    split: str = "test"
    jobs: int = 2
    threads: int = 1
    train: tuple[str, ...] = ()  # more key=value settings for every training
    progress: bool = True

    def check(self) -> None:
        from stvg.config import require
        from stvg.models.zoo import MODELS

        where = "stvg bench zoo"
        for model in self.models:
            require(
                model in MODELS, "--models", model, f"expected some of {', '.join(MODELS)}", where
            )
        for mode in self.collab:
            require(
                mode in ABLATION, "--collab", mode, f"expected some of {', '.join(ABLATION)}", where
            )
        for key in ("seeds", "epochs", "videos", "jobs", "threads"):
            value = getattr(self, key)
            require(value >= 1, f"--{key}", value, "must be >= 1", where)


def build_store(root: Path, videos: int, progress: bool) -> Path:
    """The synthetic videos and their features under ``root`` (the pipeline's synth and extract
    steps, skipped when done); returns the store's folder."""
    from stvg.pipelines.chain import PipelineConfig, build_steps
    from stvg.pipelines.steps import Pipeline

    synth = {} if videos == VIDEOS else {"videos": videos}
    cfg = PipelineConfig(dataset="synthetic", out=root, synth=synth, progress=progress)
    steps = [s for s in build_steps(cfg) if s.name in ("synth", "extract")]
    Pipeline(root).run(steps)
    return root / "features"


def train_settings(cfg: ZooConfig, training: Training) -> list[str]:
    """The ``key=value`` settings of one training (over the ``synthetic`` preset)."""
    return [
        f"model_name={training.model}", f"seed={training.seed}", f"epochs={cfg.epochs}",
        "validate=false", *cfg.train, *training.overrides,
    ]  # fmt: skip


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the child gets SIGTERM when the comparison dies, instead of training on alone."""
    import ctypes
    import signal

    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def run_training(
    training: Training, features: Path, folder: Path, settings: list[str], split: str, threads: int
) -> dict[str, Any]:
    """Train, predict and score one training in a child process; writes and returns its
    ``result.json`` (scores, the child's wall and CPU seconds). A folder left by other settings
    is cleared first; one left by the same settings is resumed."""
    import stvg

    record = {"features": str(features), "split": split, "settings": settings}
    state = folder / "settings.json"
    if folder.exists() and (not state.exists() or json.loads(state.read_text()) != record):
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(state, record, indent=1)
    scores = folder / "scores.json"
    command = [
        sys.executable, "-m", "stvg.bench.zoo", "--features", str(features),
        "--run", str(folder / "run"), "--split", split, "--threads", str(threads),
        "--scores", str(scores), *[a for s in settings for a in ("--set", s)],
    ]  # fmt: skip
    root = str(Path(stvg.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "TQDM_DISABLE": "1",
        "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])]),
    }  # fmt: skip
    start = time.perf_counter()
    with open(folder / "log.txt", "a") as logfile:
        logfile.write(f"$ {' '.join(command)}\n")
        logfile.flush()
        preexec = _die_with_parent if sys.platform.startswith("linux") else None
        child = subprocess.Popen(
            command, stdout=logfile, stderr=subprocess.STDOUT, env=env, preexec_fn=preexec
        )
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if child.returncode != 0:
        raise RuntimeError(
            f"training {training.name} failed (exit {child.returncode}); see {folder / 'log.txt'}"
        )
    done = json.loads(scores.read_text())
    result = {
        "training": training.name, "arm": training.arm, "model": training.model,
        "seed": training.seed, **record, "scores": done["scores"], "train": done["train"],
        "wall_seconds": wall, "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }  # fmt: skip
    write_json_atomic(folder / "result.json", result, indent=1)
    return result


def finished(folder: Path, record: dict[str, Any]) -> dict[str, Any] | None:
    """The training's ``result.json`` when it exists and was made with ``record``'s settings."""
    path = folder / "result.json"
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    same = all(result.get(k) == v for k, v in record.items())
    return result if same else None


def run_zoo(cfg: ZooConfig) -> dict[str, Any]:
    """Run (or resume) the comparison into ``cfg.out``; returns the report (``zoo.json``).

    Raises :class:`RuntimeError` naming the failed trainings after the others finished (their
    results are kept, and the report covers what finished)."""
    from tqdm import tqdm

    from stvg.models.zoo import MODELS
    from stvg.progress import bar_disabled
    from stvg.train.config import resolve

    cfg.check()
    out = Path(cfg.out)
    start, load_start = time.perf_counter(), os.getloadavg()
    models = list(cfg.models or MODELS)
    trainings = plan(models, cfg.seeds, cfg.collab)
    for t in trainings:  # a bad --set is refused before any work, not in every child
        resolve(PRESET, train_settings(cfg, t))
    features = (
        Path(cfg.features) if cfg.features is not None
        else build_store(out / "store", cfg.videos, cfg.progress)
    )  # fmt: skip
    store_seconds = time.perf_counter() - start
    results: dict[str, dict[str, Any]] = {}
    pending = []
    for t in trainings:
        settings = train_settings(cfg, t)
        record = {"features": str(features), "split": cfg.split, "settings": settings}
        done = finished(out / "jobs" / t.name, record)
        if done is not None:
            results[t.name] = done
        else:
            pending.append((t, settings))
    log.info("%d trainings, %d done, %d to run", len(trainings), len(results), len(pending))
    failed: list[str] = []
    collab = [m for m in ABLATION if m in cfg.collab] if "csdvl" in models else []
    meta = {
        "models": models, "seeds": cfg.seeds, "epochs": cfg.epochs,
        "videos": None if cfg.features is not None else cfg.videos, "split": cfg.split,
        "preset": PRESET, "protocol": PROTOCOL, "group_by": GROUP_BY, "jobs": cfg.jobs,
        "threads": cfg.threads, "extra_settings": list(cfg.train),
        "trainings_planned": len(trainings), "store_seconds_this_invocation": store_seconds,
    }  # fmt: skip

    def update_report() -> dict[str, Any]:  # after every training: a cut run leaves a report
        report = make_report(
            [results[t.name] for t in trainings if t.name in results], collab,
            {
                **meta, "missing": [t.name for t in trainings if t.name not in results],
                "failed": list(failed), "wall_seconds_this_invocation": time.perf_counter() - start,
                "load_average_start_now": [load_start[0], os.getloadavg()[0]],
            },
        )  # fmt: skip
        write_outputs(out, report)
        return report

    bar = tqdm(
        total=len(trainings), initial=len(results), desc="zoo", unit="training",
        disable=bar_disabled(cfg.progress),
    )  # fmt: skip
    with bar, ThreadPoolExecutor(max_workers=cfg.jobs) as pool:
        futures = {
            pool.submit(
                run_training, t, features, out / "jobs" / t.name, settings, cfg.split, cfg.threads
            ): t
            for t, settings in pending
        }
        for future in as_completed(futures):
            t = futures[future]
            try:
                results[t.name] = future.result()
                r = results[t.name]
                log.info(
                    "%s: m_vIoU %.2f %%, %.0f s wall, %.0f s CPU", t.name,
                    100 * r["scores"]["all"]["m_vIoU"], r["wall_seconds"], r["cpu_seconds"],
                )  # fmt: skip
            except Exception as error:  # the others go on; reported at the end
                log.error("%s", error)
                failed.append(t.name)
            bar.update(1)
            update_report()
    report = update_report()
    if failed:
        raise RuntimeError(f"{len(failed)} training(s) failed: {', '.join(failed)}")
    return report


def make_report(
    results: list[dict[str, Any]], collab: Sequence[str], meta: dict[str, Any]
) -> dict[str, Any]:
    """``zoo.json``: the settings, each training's result, the summary (mean +- std per arm,
    kind and metric, in %), the verdict on the paper's collaboration ordering (when every
    ablation arm is there) and the time totals."""
    from stvg.bench.seed_stats import PAPER_ORDERING

    summary = summarize((r["arm"], r["scores"]) for r in results)
    arms = {mode: ablation_arm(mode) for mode in collab}
    named = {name for pair in PAPER_ORDERING for name in pair}
    verdicts = {}
    if named <= set(arms) and all(arms[m] in summary for m in named):
        groups = list(summary[arms["full"]])
        verdicts = {g: verdict(summary, arms, group=g) for g in groups}
    return {
        **meta,
        "trainings": len(results),
        "sum_wall_seconds": sum(r["wall_seconds"] for r in results),
        "sum_cpu_seconds": sum(r["cpu_seconds"] for r in results),
        "summary": summary,
        "ablation_verdict": verdicts,
        "results": results,
    }


def markdown(report: dict[str, Any]) -> str:
    """``zoo.md``: the compact m_vIoU table, the full mean ± std table and the verdict."""
    summary = report["summary"]
    models = {a: v for a, v in summary.items() if not a.startswith("csdvl collab=")}
    ablation = {a: v for a, v in summary.items() if a == "csdvl" or a.startswith("csdvl collab=")}
    lines = [
        f"Trainings: {report['trainings']} of {report['trainings_planned']} "
        f"({report['seeds']} seeds, {report['epochs']} epochs, preset {report['preset']}); "
        f"split {report['split']}, protocol {report['protocol']}, by {report['group_by']}; "
        "values in %, mean ± sample std over seeds.",
        "",
        wide_table(models),
        "",
        long_table(models),
    ]
    if len(ablation) > 1:
        lines += [
            "",
            "CSDVL collaboration ablation:",
            "",
            wide_table(ablation),
            "",
            long_table(ablation),
        ]
    if report["ablation_verdict"]:
        lines += ["", f"Rule: {next(iter(report['ablation_verdict'].values()))['rule']}.", ""]
        lines += [f"- {v['text']}" for v in report["ablation_verdict"].values()]
    if report["missing"]:
        lines += ["", f"Missing trainings: {', '.join(report['missing'])}."]
    lines += [
        "",
        f"Time: {report['sum_cpu_seconds'] / 60:.1f} CPU-min summed over the trainings, "
        f"{report['sum_wall_seconds'] / 60:.1f} min of their wall times summed; this invocation "
        f"{report['wall_seconds_this_invocation'] / 60:.1f} min wall with {report['jobs']} at a "
        f"time, {report['threads']} thread each.",
    ]
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, report: dict[str, Any]) -> None:
    """``zoo.json``, ``zoo.md`` and ``zoo.png`` (bars with the seed std as error bars) in ``out``."""
    from stvg.evaluate.curves import plot_bars

    write_json_atomic(out / "zoo.json", report, indent=1)
    write_text_atomic(out / "zoo.md", markdown(report))
    if report["summary"]:
        plot_bars(report["summary"], out / "zoo.png", title="stvg bench zoo: mean ± std over seeds")


# ----------------------------------------------------------------------------- the child
def train_and_score(
    features: Path, run: Path, split: str, settings: list[str], scores: Path
) -> None:
    """One training: train (resuming ``run`` when it holds a checkpoint), predict ``split`` with
    the final EMA weights, score it by kind; writes ``{"scores", "train"}`` to ``scores``
    (``train``: the trainer's summary plus this process's CPU seconds by phase)."""
    from stvg.evaluate.predict import predict_split
    from stvg.evaluate.score import score
    from stvg.train import run as train
    from stvg.train.config import resolve

    config = resolve(PRESET, settings)
    cpu = {"start": time.process_time()}
    summary = train(features, run, config, resume=True, progress=False)
    cpu["train"] = time.process_time()
    predictions, annotations = predict_split(run, features, split, progress=False)
    results = score(annotations, predictions, PROTOCOL, group_by=GROUP_BY)
    cpu["predict_score"] = time.process_time()
    summary["cpu_seconds"] = {  # this process's CPU time (all threads) by phase
        "imports_setup": cpu["start"],
        "train": cpu["train"] - cpu["start"],
        "predict_score": cpu["predict_score"] - cpu["train"],
    }
    write_json_atomic(scores, {"scores": results, "train": summary}, indent=1)


def main(argv: list[str] | None = None) -> None:
    """``python -m stvg.bench.zoo``: one training of the comparison (the child process)."""
    import torch

    parser = argparse.ArgumentParser(prog="python -m stvg.bench.zoo", description=main.__doc__)
    parser.add_argument("--features", type=Path, required=True)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--scores", type=Path, required=True)
    parser.add_argument("--set", dest="settings", action="append", default=[])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    train_and_score(args.features, args.run, args.split, args.settings, args.scores)


if __name__ == "__main__":
    main()
