"""Paired differences of several models against a reference on the same test images (issue 16).

Each model is ``label=RUN[@CHECKPOINT][+TTA]``: a run or ensemble directory, optionally a checkpoint
(``selected``, ``best``, ``last``) and a test-time augmentation (``flip``, ``flip+rot90``), or
``label=FILE.npz``: per-sample test predictions saved by a model outside medmtl (``task``, ``names``
and the task's per-sample summary arrays, as ``benchmarks/lidc_baselines.py`` writes them), paired
on that task with the first model, which must be a run. Every run predicts the test split of its data; the per-image summaries are aligned by image name
and each metric's difference ``model − reference`` gets a paired bootstrap 95% interval
(:func:`medmtl.paired.paired_deltas`: the same resampled images for both) and a verdict: ``better`` or
``worse`` than the reference (the interval entirely on one side of 0), or ``no evidence``.

Usage::

    .venv/bin/python benchmarks/remedies_paired.py plain=runs/vessel/plain \\
        last=runs/vessel/plain@last tta=runs/vessel/plain+flip ema=runs/vessel/ema ensemble=runs/vessel/cv5
    .venv/bin/python benchmarks/remedies_paired.py medmtl=runs/lidc/rating \
        monai-resnet18=runs/lidc/baselines/resnet18/predictions_test.npz
"""

from __future__ import annotations

import sys

#: ``multi − single`` verdicts of :mod:`medmtl.paired` read as ``model − reference`` here: a baseline
#: paired against a medmtl run is not a remedy that "helped".
VERDICT_WORDS = {"helped": "better", "hurt": "worse"}


def parse(spec: str) -> tuple[str, str, str, str]:
    """``label=RUN[@CHECKPOINT][+TTA]`` → (label, run, checkpoint, tta)."""
    label, _, rest = spec.partition("=")
    rest, _, tta = rest.partition("+")
    run, _, checkpoint = rest.partition("@")
    return label, run, checkpoint or "selected", tta or "none"


def saved_summaries(path: str) -> tuple[None, dict, dict]:
    """A ``.npz`` of per-sample predictions: ``(None, {task: summary}, {task: names})``."""
    import numpy as np

    with np.load(path) as saved:
        task = str(saved["task"])
        summary = {key: saved[key] for key in saved.files if key not in ("task", "names")}
        return None, {task: summary}, {task: [str(name) for name in saved["names"]]}


def main(specs: list[str], n_resamples: int = 1000) -> str:
    from medmtl.compare import split_summaries
    from medmtl.paired import align, paired_deltas

    models = [parse(spec) for spec in specs]
    evaluated = {label: (saved_summaries(run) if run.endswith(".npz") else
                         split_summaries(run, "test", f"{label}: test", checkpoint, tta))
                 for label, run, checkpoint, tta in models}
    reference = models[0][0]
    ref_model, ref_summaries, ref_names = evaluated[reference]
    lines = [f"Paired against `{reference}` on the same test images (95% paired bootstrap intervals).", "",
             "| model | task | metric | value | Δ vs reference [95% CI] | verdict |", "|---|---|---|---|---|---|"]
    for label, _, _, _ in models:
        _, summaries, names = evaluated[label]
        for task_name, task in ref_model.tasks.items():
            if task_name not in summaries:
                continue
            _, own, ref = align(names[task_name], summaries[task_name], ref_names[task_name], ref_summaries[task_name])
            result = paired_deltas(task, own, ref, tuple(task.summary_metrics), n_resamples)
            for metric, stats in result["metrics"].items():
                low, high = stats["delta_ci95"]
                delta = "–" if label == reference else f"{stats['delta']:+.3f} [{low:+.3f}, {high:+.3f}]"
                verdict = "reference" if label == reference else VERDICT_WORDS.get(stats["verdict"], stats["verdict"])
                lines.append(f"| {label} | {task_name} | {metric} | {stats['multi']:.3f} | {delta} | {verdict} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(main(sys.argv[1:]))
