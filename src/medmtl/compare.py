"""Single-task vs multi-task comparison in one command.

For a multi-task configuration, trains every task alone (except auxiliary tasks such as
reconstruction) and all tasks together (once per loss balancer with ``balancers``) on each
requested partition (``data.fold``), tabulates each task's metrics (``Task.summary_metrics``) as
mean ± std over the partitions, and compares each multi-task model with each single-task model
image by image on the same validation images (:mod:`medmtl.paired`: paired bootstrap intervals of
the differences, Δm%, a verdict per task)::

    DIR/<variant>/split<k>/      one ordinary run directory per (variant, split), with report/
    DIR/comparison.json          {"variants": {variant: {task: {metric: {"mean", "std", "values"}}}},
                                  "paired": {multi-task variant: per split and over splits}}
    DIR/comparison.md            both as Markdown tables, with DIR/paired_differences.png

A partition number sets ``data.fold``: it replaces ``{fold}`` in split-file paths (published
splits) or else selects the k-fold fold. Finished runs are skipped, so an interrupted
comparison continues where it stopped. ``only`` trains just the named variants and compares
nothing (:func:`train_variants`), so that variants can train in separate processes side by side;
a later run without it reads them as finished.
"""

from __future__ import annotations

import copy
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from medmtl.balancing import balancer_spec
from medmtl.builders import build_tasks
from medmtl.config import RunConfig, config_from_dict
from medmtl.errors import ConfigError
from medmtl.io_utils import atomic_write_json, atomic_write_text
from medmtl.paired import align, combine_verdicts, delta_m, paired_deltas

MULTI_TASK = "multi-task"
SINGLE_PREFIX = "single-"


def summary_metrics(config: RunConfig) -> dict[str, tuple[str, ...]]:
    """``{task name: the metrics its kind tabulates}`` (``Task.summary_metrics``)."""
    return {task.name: tuple(task.summary_metrics) for task in build_tasks(config)}


def variants(config: RunConfig, single: list[str] | None = None,
             balancers: list[str] | None = None) -> dict[str, RunConfig]:
    """``{name: config}``: one single-task config per chosen task, then the multi-task config
    (``multi-task``), or one per loss balancer (``multi-task-<balancer>``) when ``balancers`` are given.

    By default every task except the auxiliary ones (``Task.auxiliary``: reconstruction) gets a
    single-task run. ``loss.weights`` and ``loss.options`` stay with the configured balancer; another
    balancer gets its default options, and one that sets its own weights drops ``loss.weights``
    (with a warning when they were not all 1).
    """
    raw = config.model_dump(mode="json")
    names = [config.task_name(i) for i in range(len(config.model.tasks))]
    if single is None:
        single = [task.name for task in build_tasks(config) if not task.auxiliary]
    unknown = sorted(set(single) - set(names))
    if unknown:
        raise ConfigError("--single", f"names unknown task(s) {unknown}; tasks are {names}")
    result = {}
    for name in single:
        one = copy.deepcopy(raw)
        one["model"]["tasks"] = [t for t, n in zip(one["model"]["tasks"], names) if n == name]
        one["loss"]["weights"] = {name: 1.0}
        if one["loss"]["balancer"] != "fixed":
            one["loss"]["balancer"] = "fixed"
            one["loss"]["options"] = {}
        if one["trainer"].get("monitor") and not one["trainer"]["monitor"].startswith(f"val/{name}/") \
                and one["trainer"]["monitor"] != "val/loss":
            one["trainer"]["monitor"] = None
        result[f"{SINGLE_PREFIX}{name}"] = config_from_dict(one, source=f"single-task variant '{name}'")
    if not balancers:
        result[MULTI_TASK] = config
    for balancer in balancers or []:
        multi = copy.deepcopy(raw)
        if balancer != multi["loss"]["balancer"]:  # options (and fixed weights) belong to the configured balancer
            multi["loss"]["options"] = {}
            if not balancer_spec(balancer).cls.uses_weights:
                ignored = {task: w for task, w in multi["loss"]["weights"].items() if w != 1}
                if ignored:  # a user who set them should hear that this model does not use them
                    warnings.warn(f"--balancers {balancer}: loss.weights {ignored} not applied to "
                                  f"{MULTI_TASK}-{balancer} ({balancer} sets its own weights)", UserWarning,
                                  stacklevel=2)
                multi["loss"]["weights"] = {}
        multi["loss"]["balancer"] = balancer
        result[f"{MULTI_TASK}-{balancer}"] = config_from_dict(multi, source=f"--balancers {balancer}")
    return result


def for_fold(config: RunConfig, fold: int) -> RunConfig:
    """The config for partition ``fold``: ``data.fold``, which replaces ``{fold}`` in split-file
    paths (published splits) or else selects the k-fold fold."""
    raw = config.model_dump(mode="json")
    raw["data"]["fold"] = fold
    return config_from_dict(raw, source=f"fold {fold}")


def train_variants(config: RunConfig, out_dir: Path, splits: list[int], single: list[str] | None = None,
                   report: bool = False, balancers: list[str] | None = None,
                   only: list[str] | None = None) -> tuple[dict[str, dict[int, dict]], dict[str, dict[int, Path]]]:
    """Train (or read, when finished) every variant, or just those named in ``only``, on every split.

    Returns ``({variant: {split: metrics.json contents}}, {variant: {split: run directory}})``.
    """
    from medmtl.training.run import train

    configs = variants(config, single, balancers)
    unknown = sorted(set(only or []) - set(configs))
    if unknown:
        raise ConfigError("--only", f"names unknown variant(s) {unknown}; this comparison's variants are "
                                    f"{list(configs)}")
    results: dict[str, dict[int, dict]] = {}
    run_dirs: dict[str, dict[int, Path]] = {}
    for name, variant in configs.items():
        if only and name not in only:
            continue
        results[name], run_dirs[name] = {}, {}
        for split in splits:
            run_dir = run_dirs[name][split] = out_dir / name / f"split{split}"
            metrics_file = run_dir / "metrics.json"
            if metrics_file.exists():
                results[name][split] = json.loads(metrics_file.read_text())
                continue
            results[name][split] = train(for_fold(variant, split), run_dir, report=report).metrics
    return results, run_dirs


def run_comparison(config: RunConfig, out_dir: Path, splits: list[int], single: list[str] | None = None,
                   report: bool = False, balancers: list[str] | None = None,
                   n_bootstrap: int | None = None, pair_on: str = "val") -> dict[str, Any]:
    """Train (or read, when finished) every variant on every split, then compare them.

    Returns (and writes to ``comparison.json``) ``{"variants": summarize(...), "paired":
    paired_comparison(...), "paired_on": pair_on}``; ``report`` writes each new run's report/.
    ``n_bootstrap`` (default ``trainer.n_bootstrap``) resamples give the paired intervals; ``pair_on``
    names the split whose images are paired (``val``, or ``test`` for a held-out test split, once
    the models are chosen).
    """
    results, run_dirs = train_variants(config, out_dir, splits, single, report, balancers)
    metric_names = summary_metrics(config)
    n_resamples = config.trainer.n_bootstrap if n_bootstrap is None else n_bootstrap
    comparison = {"variants": summarize(results, metric_names),
                  "paired": paired_comparison(run_dirs, splits, n_resamples, config.seed, pair_on),
                  "paired_on": pair_on}
    atomic_write_json(out_dir / "comparison.json", comparison)
    figure = plot_paired(comparison["paired"], out_dir / "paired_differences.png")
    atomic_write_text(out_dir / "comparison.md", markdown(comparison, splits, figure))
    from medmtl.report.html import write_html_report

    write_html_report(out_dir / "comparison.md")  # comparison.html: the same page, its figure embedded
    return comparison


def paired_comparison(run_dirs: dict[str, dict[int, Path]], splits: list[int], n_resamples: int,
                      seed: int = 0, split_name: str = "val") -> dict[str, Any]:
    """Every multi-task variant against each single-task model, on the same images of ``split_name``.

    ``{variant: {"splits": {split: {"tasks": {task: {metric: {multi, single, delta, delta_ci95,
    verdict}}}, "delta_m", "delta_m_ci95"}}, "tasks": {task: {metric: {"delta_mean", "delta_std",
    "verdict"}}}, "delta_m_mean", "delta_m_std"}}`` (see :mod:`medmtl.paired`).
    """
    cache: dict[Path, tuple[Any, dict, dict]] = {}

    def evaluated(run_dir: Path) -> tuple[Any, dict, dict]:
        if run_dir not in cache:
            cache[run_dir] = split_summaries(run_dir, split_name)
        return cache[run_dir]

    singles = {name[len(SINGLE_PREFIX):]: dirs for name, dirs in run_dirs.items() if name.startswith(SINGLE_PREFIX)}
    out: dict[str, Any] = {}
    for variant, dirs in run_dirs.items():
        if variant.startswith(SINGLE_PREFIX):
            continue
        per_split: dict[int, Any] = {}
        for split in splits:
            model, summaries, names = evaluated(dirs[split])
            tasks: dict[str, Any] = {}
            for task_name, single_dirs in singles.items():
                _, single_summaries, single_names = evaluated(single_dirs[split])
                if not summaries.get(task_name) or not single_summaries.get(task_name):
                    continue
                task = model.tasks[task_name]
                _, multi_rows, single_rows = align(names[task_name], summaries[task_name], single_names[task_name],
                                                   single_summaries[task_name])
                tasks[task_name] = paired_deltas(task, multi_rows, single_rows, tuple(task.summary_metrics),
                                                 n_resamples, seed)
            per_split[split] = {"tasks": {t: r["metrics"] for t, r in tasks.items()},
                                "n": {t: r["n"] for t, r in tasks.items()}, **delta_m(tasks, n_resamples)}
        out[variant] = {"splits": per_split, **_over_splits(per_split)}
    return out


def split_summaries(run_dir: str | Path, split_name: str, description: str | None = None,
                    checkpoint: str = "selected", tta: str = "none") -> tuple[Any, dict, dict]:
    """A run's model (``checkpoint``'s weights, with test-time augmentation ``tta``) and its per-sample
    summaries (with sample names) on one of its splits (``val`` falls back to ``train`` for data
    without a validation split); ``description`` labels the progress bar."""
    from medmtl.evaluation import collect_summaries
    from medmtl.training.loaders import build_run_datasets, evaluation_loader
    from medmtl.training.run import load_run
    from medmtl.tta import with_tta

    config, model = load_run(run_dir, checkpoint)
    model = with_tta(model, tta, config.model.spatial_dims or 2)
    datasets = build_run_datasets(config, model)
    names: dict[str, list[str]] = {}
    if split_name not in datasets and split_name != "val":
        raise ConfigError("--pair-on", f"the runs' data have no '{split_name}' split (they have {sorted(datasets)})")
    loader = evaluation_loader(config, datasets[split_name if split_name in datasets else "train"])
    return model, collect_summaries(model, loader, description=description or f"pairing {Path(run_dir).name}",
                                    names=names), names


def _over_splits(per_split: dict[int, Any]) -> dict[str, Any]:
    """Mean ± std of the paired differences and Δm% over splits, and one verdict per task and metric."""
    tasks: dict[str, Any] = {}
    for result in per_split.values():
        for task, metrics in result["tasks"].items():
            for metric, stats in metrics.items():
                tasks.setdefault(task, {}).setdefault(metric, []).append(stats)
    summary = {task: {metric: {**_mean_std([s["delta"] for s in stats], "delta"),
                               "verdict": combine_verdicts([s["verdict"] for s in stats])}
                      for metric, stats in metrics.items()} for task, metrics in tasks.items()}
    return {"tasks": summary, **_mean_std([r["delta_m"] for r in per_split.values()], "delta_m")}


def _mean_std(values: list[float], name: str) -> dict[str, float]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return {f"{name}_mean": math.nan, f"{name}_std": math.nan}
    return {f"{name}_mean": float(np.mean(values)),
            f"{name}_std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}


def summarize(results: dict[str, dict[int, dict]], metric_names: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """``{variant: {task: {metric: {"mean", "std", "values"}}}}`` over the splits of ``results``
    (``{variant: {split: metrics.json contents}}``) for each task's ``metric_names``."""
    summary: dict[str, Any] = {}
    for variant, per_split in results.items():
        summary[variant] = {}
        tasks = {t for metrics in per_split.values() for t in metrics}
        for task in sorted(tasks):
            summary[variant][task] = {}
            for metric in metric_names.get(task, ()):
                values = [m[task][metric] for m in per_split.values() if task in m and metric in m[task]]
                values = [float("nan") if v is None else float(v) for v in values]
                if values:
                    summary[variant][task][metric] = {"mean": float(np.mean(values)),
                                                      "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                                                      "values": values}
    return summary


def markdown(comparison: dict[str, Any], splits: list[int], figure: Path | None = None) -> str:
    """The comparison as Markdown: each model's metrics (mean ± std over splits), then the paired
    differences multi − single with their 95% intervals, Δm% and a verdict per task."""
    lines = [f"Mean ± std over splits {splits}.", "", "| model | task | metric | mean ± std |", "|---|---|---|---|"]
    for variant, tasks in comparison["variants"].items():
        for task, metrics in tasks.items():
            for metric, stats in metrics.items():
                mean, std = stats["mean"], stats["std"]
                text = "n/a" if math.isnan(mean) else f"{mean:.3f} ± {std:.3f}"
                lines.append(f"| {variant} | {task} | {metric} | {text} |")
    paired = comparison.get("paired") or {}
    if not paired:
        return "\n".join(lines) + "\n"
    images = {"val": "validation"}.get(comparison.get("paired_on", "val"), comparison.get("paired_on"))
    lines += ["", f"## Did multi-task help? Paired differences (multi − single, same {images} images)", "",
              "Per split: the difference with its paired bootstrap 95% interval. Verdict per task: *helped* "
              "(*hurt*) when some split's interval lies entirely on the better (worse) side of 0 and none on the "
              "other, *mixed* when both happen, else *no evidence*. Δm%: mean relative change over the metrics "
              "(Maninis et al. 2019; metrics whose single-task value is 0 are left out), positive = multi-task "
              "better.", "",
              "| model | task | metric | " + " | ".join(f"split {k}" for k in splits) + " | mean ± std | verdict |",
              "|---|---|---|" + "---|" * len(splits) + "---|---|"]
    for variant, result in paired.items():
        for task, metrics in result["tasks"].items():
            for metric, over in metrics.items():
                cells = []
                for split in splits:
                    stats = result["splits"].get(split, {}).get("tasks", {}).get(task, {}).get(metric)
                    cells.append(_delta_text(stats["delta"], stats["delta_ci95"]) if stats else "")
                mean = over["delta_mean"]
                total = "n/a" if math.isnan(mean) else f"{mean:+.3f} ± {over['delta_std']:.3f}"
                lines.append(f"| {variant} | {task} | {metric} | " + " | ".join(cells) + f" | {total} | "
                             f"**{over['verdict']}** |")
        cells = [_delta_text(result["splits"][k]["delta_m"], result["splits"][k]["delta_m_ci95"], "%")
                 for k in splits if k in result["splits"]]
        mean = result["delta_m_mean"]
        total = "n/a" if math.isnan(mean) else f"{mean:+.2f} ± {result['delta_m_std']:.2f} %"
        lines.append(f"| {variant} | all | Δm% | " + " | ".join(cells) + f" | {total} | |")
    if figure is not None:
        lines += ["", f"![paired differences]({figure.name})"]
    return "\n".join(lines) + "\n"


def _delta_text(delta: float, ci: list[float], unit: str = "") -> str:
    if delta is None or math.isnan(delta):
        return "n/a"
    low, high = ci
    interval = "" if low is None or math.isnan(low) else f" [{low:+.3f}, {high:+.3f}]"
    return f"{delta:+.3f}{interval}{unit}"


def plot_paired(paired: dict[str, Any], out_png: Path) -> Path | None:
    """Per task and metric, each split's difference multi − single with its interval; one colour per model."""
    if not paired:
        return None
    from medmtl.report.plots import plot_intervals

    rows: list[tuple[str, str, float, float, float]] = []
    for variant, result in paired.items():
        for split, per_split in result["splits"].items():
            for task, metrics in per_split["tasks"].items():
                for metric, stats in metrics.items():
                    low, high = stats["delta_ci95"]
                    rows.append((f"{task} {metric} (split {split})", variant, stats["delta"], low, high))
    return plot_intervals(rows, out_png, "multi − single (paired 95% interval)")
