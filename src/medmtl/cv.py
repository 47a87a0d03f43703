"""Cross-validation: one model per fold, out-of-fold metrics with CIs, and the folds' ensemble.

``medmtl cv CONFIG --folds K --out DIR`` trains fold k = 1..K of a k-fold partition of the data's
train and validation images (stratified on the label; records that share a group, ``data.group_col``
such as a patient or a slide, stay in one fold; a test split is left out and untouched)::

    DIR/fold<k>/            one ordinary run directory per fold (finished folds are skipped, so an
                            interrupted cross-validation continues where it stopped)
    DIR/cv.json             {"folds", "grouped_by", "n": {task: out-of-fold samples},
                             "out_of_fold": {task: metrics with 95% CIs},
                             "per_fold": {task: {metric: {"mean", "std", "values"}}},
                             "test": null or {"ensemble": metrics, "members": mean/std/values}}
    DIR/cv.md, DIR/cv.html  the same as tables
    DIR/ensemble.json       the K fold models as one model (:mod:`medmtl.ensemble`): evaluate, predict,
    DIR/config.yaml         export and report take DIR like a run directory
    DIR/metrics_test.json   the ensemble on the test split, when the data has one

The partition: split files that choose train and validation (``data.split_train``/``split_val``,
e.g. BUSI's published splits) are set aside, a ``split_test`` file is kept; an ``.npz`` archive's
train and val images are pooled (:mod:`medmtl.data.build`). Phantom data are generated, so each
fold draws its own images: its "out-of-fold" metrics are then those of the pooled validation draws.

**Out-of-fold metrics**: each fold's model (the weights its metrics.json evaluated,
``trainer.select``) predicts its own validation fold, so every sample is predicted once, by the model
that did not train on it; the per-sample summaries of all folds are pooled and each task's metrics
computed once over them, with bootstrap 95% intervals over the pooled samples. (Each fold's model was
also *selected* on that fold, which makes these slightly optimistic for ``trainer.select: best``.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medmtl.compare import for_fold, split_summaries, summarize, summary_metrics
from medmtl.config import RunConfig, config_from_dict
from medmtl.console import say
from medmtl.errors import ConfigError
from medmtl.io_utils import atomic_write_json, atomic_write_text
from medmtl.report.tables import markdown_table

CV_FILE = "cv.json"


@dataclass
class CVResult:
    """What :func:`run_cv` computed and wrote (see the module docstring)."""

    out_dir: Path
    out_of_fold: dict[str, dict[str, Any]]
    test: dict[str, Any] | None
    summary: dict[str, Any]


def cv_config(config: RunConfig, folds: int) -> RunConfig:
    """``config`` partitioned by a ``folds``-fold k-fold (train/val split files set aside, no fold chosen)."""
    if folds < 2:
        raise ConfigError("--folds", f"cross-validation needs at least 2 folds, got {folds}")
    raw = config.model_dump(mode="json")
    raw["data"].update(folds=folds, fold=None, split_train=None, split_val=None)
    return config_from_dict(raw, source=f"--folds {folds}")


def run_cv(config: RunConfig, out_dir: str | Path, folds: int, report: bool = False,
           n_bootstrap: int | None = None) -> CVResult:
    """Train (or, when finished, reuse) every fold, then compute the out-of-fold metrics, write the
    ensemble and evaluate it on the test split when there is one. ``report`` writes each fold run's report/."""
    from medmtl.training.run import train
    from medmtl.training.run_dir import check_rerun

    out_dir = Path(out_dir)
    base = cv_config(config, folds)
    _check_partition(base)
    run_dirs = [out_dir / f"fold{k}" for k in range(1, folds + 1)]
    for k, run_dir in enumerate(run_dirs, start=1):
        fold_config = for_fold(base, k)
        # a finished fold is reused as it is; one of another configuration is an error, resumable changes
        # (e.g. more epochs) continue it
        if (run_dir / "metrics.json").exists() and not check_rerun(fold_config, run_dir, True).changes:
            say(f"fold {k}/{folds}: finished, reused ({run_dir})")
            continue
        say(f"fold {k}/{folds} → {run_dir}")
        train(fold_config, run_dir, report=report)

    resamples = base.trainer.n_bootstrap if n_bootstrap is None else n_bootstrap
    out_of_fold, counts = out_of_fold_metrics(run_dirs, resamples, base.seed)
    per_fold = {k: json.loads((run_dir / "metrics.json").read_text()) for k, run_dir in enumerate(run_dirs, 1)}
    metric_names = summary_metrics(base)
    summary = {"folds": folds, "grouped_by": base.data.group_col, "n": counts, "out_of_fold": out_of_fold,
               "per_fold": summarize({"cv": per_fold}, metric_names)["cv"],
               "test": _ensemble_on_test(out_dir, run_dirs, resamples, base.seed, metric_names)}
    atomic_write_json(out_dir / CV_FILE, summary)
    atomic_write_text(out_dir / "cv.md", markdown(summary))
    from medmtl.report.html import write_html_report

    write_html_report(out_dir / "cv.md")
    return CVResult(out_dir, out_of_fold, summary["test"], summary)


def out_of_fold_metrics(run_dirs: list[Path], n_bootstrap: int, seed: int = 0
                        ) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """Each fold run's model on its own validation split, pooled: ``({task: metrics with CIs},
    {task: samples})``."""
    from medmtl.evaluation import metrics_from_summaries
    from medmtl.tasks.base import concat_summaries

    parts: dict[str, list[dict[str, Any]]] = {}
    model = None
    for k, run_dir in enumerate(run_dirs, start=1):
        model, summaries, _ = split_summaries(run_dir, "val", description=f"out of fold {k}/{len(run_dirs)}")
        for task, summary in summaries.items():
            parts.setdefault(task, []).append(summary)
    pooled = {task: concat_summaries(summaries) for task, summaries in parts.items()}
    counts = {task: len(next(iter(summary.values()))) for task, summary in pooled.items() if summary}
    return metrics_from_summaries(model, pooled, n_bootstrap, seed), counts


def _ensemble_on_test(out_dir: Path, run_dirs: list[Path], n_bootstrap: int, seed: int,
                      metric_names: dict[str, tuple[str, ...]]) -> dict[str, Any] | None:
    """Write the fold models' ensemble; when the data has a test split, its metrics there
    (``metrics_test.json``) beside the members' own (each fold run's metrics_test.json)."""
    from medmtl.ensemble import load_ensemble, write_ensemble
    from medmtl.evaluation import evaluate
    from medmtl.training.loaders import build_run_datasets, evaluation_loader

    write_ensemble(out_dir, run_dirs, checkpoint="selected", made_by="cv", splits_differ=True)
    member_files = [run_dir / "metrics_test.json" for run_dir in run_dirs]
    if not all(path.is_file() for path in member_files):
        return None
    config, ensemble, _ = load_ensemble(out_dir)
    loader = evaluation_loader(config, build_run_datasets(config, ensemble)["test"])
    metrics = evaluate(ensemble, loader, n_bootstrap, seed)
    atomic_write_json(out_dir / "metrics_test.json", metrics)
    members = {k: json.loads(path.read_text()) for k, path in enumerate(member_files, start=1)}
    return {"ensemble": metrics, "members": summarize({"members": members}, metric_names)["members"]}


def _check_partition(config: RunConfig) -> None:
    """Build fold 1's datasets before anything is trained: too few records or groups for the folds is a
    :class:`ConfigError` on ``--folds``."""
    from medmtl.data.build import build_datasets

    try:
        build_datasets(for_fold(config, 1).data)
    except ConfigError as error:
        if error.key == "data.folds":
            raise ConfigError("--folds", error.problem) from None
        raise


def markdown(summary: dict[str, Any]) -> str:
    """cv.json as a page: out-of-fold metrics, per-fold spread, and the ensemble on the test split."""
    folds, group = summary["folds"], summary["grouped_by"]
    counts = ", ".join(f"{task}: {n}" for task, n in summary["n"].items())
    lines = [f"# Cross-validation, {folds} folds", "",
             f"Folds {'grouped by `' + group + '` (a group stays in one fold)' if group else 'not grouped'}, "
             f"stratified on the label. Out-of-fold samples per task: {counts}.", "",
             "## Out-of-fold metrics", "",
             "Every sample predicted once, by the fold model that did not train on it; 95% bootstrap "
             "intervals over the pooled samples.", "", markdown_table(summary["out_of_fold"]), "",
             "## Per fold (validation)", "", "| task | metric | mean ± std | folds |", "|---|---|---|---|"]
    for task, metrics in summary["per_fold"].items():
        for metric, stats in metrics.items():
            values = ", ".join(_number(v) for v in stats["values"])
            lines.append(f"| {task} | {metric} | {_number(stats['mean'])} ± {_number(stats['std'])} | {values} |")
    test = summary.get("test")
    if test:
        lines += ["", "## Test split: the ensemble of the fold models", "",
                  "Mean of the members' probabilities / risk scores / segmentation probabilities "
                  "(`DIR` works as a run directory in evaluate, predict, export and report).", "",
                  "| task | metric | ensemble [95% CI] | members mean ± std |", "|---|---|---|---|"]
        for task, metrics in test["members"].items():
            for metric, stats in metrics.items():
                value = test["ensemble"].get(task, {}).get(metric)
                ci = test["ensemble"].get(task, {}).get(f"{metric}_ci95")
                shown = _number(value) + (f" [{_number(ci[0])}, {_number(ci[1])}]" if ci else "")
                lines.append(f"| {task} | {metric} | {shown} | {_number(stats['mean'])} ± {_number(stats['std'])} |")
    return "\n".join(lines) + "\n"


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"
