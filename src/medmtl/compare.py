"""Single-task vs multi-task comparison in one command.

For a multi-task configuration, trains every task alone (except auxiliary tasks such as
reconstruction) and all tasks together on each requested partition (``data.fold``), then
tabulates each task's metrics (``Task.summary_metrics``) as mean ± std over the partitions::

    DIR/<variant>/split<k>/      one ordinary run directory per (variant, split), with report/
    DIR/comparison.json          {variant: {task: {metric: {"mean", "std", "values"}}}}
    DIR/comparison.md            the same as a Markdown table

A partition number sets ``data.fold``: it replaces ``{fold}`` in split-file paths (published
splits) or else selects the k-fold fold. Finished runs are skipped, so an interrupted
comparison continues where it stopped.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from medmtl.builders import build_tasks
from medmtl.config import RunConfig, config_from_dict
from medmtl.errors import ConfigError
from medmtl.io_utils import atomic_write_json, atomic_write_text

MULTI_TASK = "multi-task"


def summary_metrics(config: RunConfig) -> dict[str, tuple[str, ...]]:
    """``{task name: the metrics its kind tabulates}`` (``Task.summary_metrics``)."""
    return {task.name: tuple(task.summary_metrics) for task in build_tasks(config)}


def variants(config: RunConfig, single: list[str] | None = None) -> dict[str, RunConfig]:
    """``{name: config}``: the multi-task config and one single-task config per chosen task.

    By default every task except the auxiliary ones (``Task.auxiliary``: reconstruction) gets a
    single-task run.
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
        if one["trainer"].get("monitor") and not one["trainer"]["monitor"].startswith(f"val/{name}/") \
                and one["trainer"]["monitor"] != "val/loss":
            one["trainer"]["monitor"] = None
        result[f"single-{name}"] = config_from_dict(one, source=f"single-task variant '{name}'")
    result[MULTI_TASK] = config
    return result


def for_fold(config: RunConfig, fold: int) -> RunConfig:
    """The config for partition ``fold``: ``data.fold``, which replaces ``{fold}`` in split-file
    paths (published splits) or else selects the k-fold fold."""
    raw = config.model_dump(mode="json")
    raw["data"]["fold"] = fold
    return config_from_dict(raw, source=f"fold {fold}")


def run_comparison(config: RunConfig, out_dir: Path, splits: list[int], single: list[str] | None = None,
                   report: bool = False) -> dict[str, Any]:
    """Train (or read, when finished) every variant on every split; ``report`` writes each new run's report/."""
    from medmtl.training.run import train

    results: dict[str, dict[int, dict]] = {}
    metric_names = summary_metrics(config)
    for name, variant in variants(config, single).items():
        results[name] = {}
        for split in splits:
            run_dir = out_dir / name / f"split{split}"
            metrics_file = run_dir / "metrics.json"
            if metrics_file.exists():
                results[name][split] = json.loads(metrics_file.read_text())
                continue
            results[name][split] = train(for_fold(variant, split), run_dir, report=report).metrics
    summary = summarize(results, metric_names)
    atomic_write_json(out_dir / "comparison.json", summary)
    atomic_write_text(out_dir / "comparison.md", markdown(summary, splits))
    return summary


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


def markdown(summary: dict[str, Any], splits: list[int]) -> str:
    lines = [f"Mean ± std over splits {splits}.", "", "| model | task | metric | mean ± std |", "|---|---|---|---|"]
    for variant, tasks in summary.items():
        for task, metrics in tasks.items():
            for metric, stats in metrics.items():
                mean, std = stats["mean"], stats["std"]
                text = "n/a" if math.isnan(mean) else f"{mean:.3f} ± {std:.3f}"
                lines.append(f"| {variant} | {task} | {metric} | {text} |")
    return "\n".join(lines) + "\n"
