"""The ``medmtl`` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from medmtl.cli_errors import console, fail as _fail, writes_to as _writes_to
from medmtl.console import say
from medmtl.errors import MedMTLError

#: ``--tta`` of evaluate and predict (the choices: :data:`medmtl.tta.TTA_CHOICES`)
_TTA_HELP = ("test-time augmentation: none, hflip (the identity and a left-right flip), flip (the identity and a "
             "flip of each spatial axis; outputs averaged) or flip+rot90 (also 90/180/270° rotations of square images)")

#: ``--checkpoint`` of evaluate, predict and export (see :func:`medmtl.training.run.run_checkpoint`)
_CHECKPOINT_HELP = ("selected (the weights the run's metrics.json evaluated, by trainer.select; each member's for an "
                    "ensemble), best, last (end of the last finished epoch) or the path of a .ckpt file of this run")

app = typer.Typer(help="Multi-task deep learning on medical images.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)


def _print_version(value: bool) -> None:
    if value:
        from medmtl import __version__

        typer.echo(f"medmtl {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars or tables: only warnings, errors "
                                                              "and the paths written")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="print medmtl's version and exit")] = False,
) -> None:
    """Multi-task deep learning on medical images."""
    from medmtl.console import quiet_dependencies, set_quiet

    quiet_dependencies()
    set_quiet(quiet)


@app.command()
@_writes_to()
def train(
    config: Annotated[str, typer.Argument(help="YAML file or preset name (see `medmtl presets`)")],
    out: Annotated[Path, typer.Option("--out", help="run directory")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key.path=value overrides")] = None,
    resume: Annotated[bool, typer.Option(help="continue the run in --out from its last checkpoint")] = True,
    report: Annotated[bool, typer.Option(help="write report/report.md when training ends")] = True,
) -> None:
    """Train a model; writes config.yaml, checkpoints/, logs/, metrics.json and a report."""
    try:
        from medmtl.config import load_config
        from medmtl.training.run import train as run_training

        cfg = load_config(config, overrides or [])
        result = run_training(cfg, out, resume=resume, report=report)
        chosen = f"{cfg.trainer.select} weights (trainer.select)"
        if result.metrics:
            _show(result.metrics, f"validation metrics, {chosen}")
        if result.test_metrics:
            _show(result.test_metrics, f"test metrics, {chosen}; metrics_test.json")
        if result.report is not None:
            console.print(f"report: {result.report}")
    except MedMTLError as error:
        _fail(error)


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="a run directory made by `medmtl train` (or an ensemble: "
                                                 "`medmtl cv`, `medmtl ensemble`)")],
    split: Annotated[Optional[str], typer.Option(
        help="train, val or test (default val; test for a cross-validation ensemble)")] = None,
    data: Annotated[Optional[str], typer.Option(help="override data.root (e.g. another copy of the data)")] = None,
    out: Annotated[Optional[Path], typer.Option(help="where to write the metrics (default RUN/metrics_<split>.json)")] = None,
    overrides: Annotated[Optional[list[str]], typer.Argument(
        help="data.key=value overrides for the evaluation data, e.g. data.include_normal=true")] = None,
    report: Annotated[bool, typer.Option(help="also (re)write RUN/report/ for this split")] = False,
    checkpoint: Annotated[str, typer.Option(
        help=_CHECKPOINT_HELP)] = "selected",
    tta: Annotated[str, typer.Option("--tta", help=_TTA_HELP)] = "none",
) -> None:
    """Evaluate a checkpoint of a run (default: the best) on a split, with bootstrap 95% CIs.

    Which checkpoint was used is printed and written beside the metrics (<metrics>.checkpoint.json).
    """
    try:
        from medmtl.ensemble import check_evaluation_split, default_split
        from medmtl.errors import ConfigError
        from medmtl.evaluation import collect_summaries, metrics_from_summaries
        from medmtl.io_utils import atomic_write_json
        from medmtl.training.loaders import build_run_datasets, evaluation_loader
        from medmtl.training.run import load_run_checkpoint, with_data_overrides
        from medmtl.tta import tta_transforms, with_tta

        tta_transforms(tta, 2)  # a bad --tta fails before the checkpoint is loaded
        cfg, model, used = load_run_checkpoint(run_dir, checkpoint)
        split = split or default_split(model, "val")
        check_evaluation_split(model, split)
        say(f"checkpoint: {used.describe()}")
        model = with_tta(model, tta, cfg.model.spatial_dims or 2)
        cfg = with_data_overrides(cfg, overrides or [])
        if data is not None:
            cfg.data.root = data
        datasets = build_run_datasets(cfg, model)
        if split not in datasets:
            raise ConfigError("--split", f"'{split}' is not available; the data has {sorted(datasets)}")
        loader = evaluation_loader(cfg, datasets[split])
        summaries = collect_summaries(model, loader)  # one pass over the data, for the metrics and the report
        metrics = metrics_from_summaries(model, summaries, cfg.trainer.n_bootstrap, cfg.seed)
        target = out or run_dir / f"metrics_{split}.json"
        atomic_write_json(target, metrics)
        atomic_write_json(target.with_name(f"{target.stem}.checkpoint.json"), {**used.as_dict(), "split": split})
        _show(metrics, f"{split} metrics")
        console.print(f"wrote {target} (checkpoint {used.path})", markup=False, soft_wrap=True)
        if report:
            from medmtl.report.run_report import write_report

            path = write_report(run_dir, cfg, model, loader, metrics, split=split, summaries=summaries)
            console.print(f"report: {path}")
    except MedMTLError as error:
        _fail(error)


@app.command("report")
def report_command(
    target: Annotated[Path, typer.Argument(help="a run directory (medmtl train) or a comparison directory "
                                                "(medmtl compare: holds comparison.md)")],
    split: Annotated[Optional[str], typer.Option(
        help="runs: train, val or test (default val; train for data without a validation split; test for a "
             "cross-validation ensemble)")] = None,
    checkpoint: Annotated[Optional[str], typer.Option(
        help="runs: selected (default), best, last or the path of a .ckpt file of this run")] = None,
    km_groups: Annotated[Optional[int], typer.Option(
        "--km-groups", help="runs with a survival head: Kaplan–Meier risk groups, 2 (median) or 3 (tertiles)")] = None,
) -> None:
    """(Re)write a report without training: a run's report/report.md and report.html (one self-contained
    page, figures embedded) from its checkpoint on a split; a comparison's comparison.html from its
    comparison.md."""
    try:
        from medmtl.errors import ConfigError, DataError
        from medmtl.report.html import write_html_report

        if not (target / "config.yaml").is_file():
            if not (target / "comparison.md").is_file():
                raise DataError(target, "does not exist" if not target.exists() else
                                "is neither a medmtl run directory (config.yaml) nor a comparison directory "
                                "(comparison.md)")
            for name, value in (("--split", split), ("--checkpoint", checkpoint), ("--km-groups", km_groups)):
                if value is not None:
                    raise ConfigError(name, f"applies to run directories; {target} is a comparison: its "
                                            "comparison.html is rewritten from comparison.md")
            console.print(f"report: {write_html_report(target / 'comparison.md')}", markup=False, soft_wrap=True)
            return

        from medmtl.ensemble import check_evaluation_split, default_split
        from medmtl.evaluation import collect_summaries, metrics_from_summaries
        from medmtl.report.run_report import write_report
        from medmtl.training.loaders import build_run_datasets, evaluation_loader
        from medmtl.training.run import load_run_checkpoint

        cfg, model, used = load_run_checkpoint(target, checkpoint or "selected")
        if km_groups is not None:
            _set_km_groups(model, km_groups, target)
        say(f"checkpoint: {used.describe()}")
        datasets = build_run_datasets(cfg, model)
        chosen = split or default_split(model, "val" if "val" in datasets else "train")
        check_evaluation_split(model, chosen)
        if chosen not in datasets:
            raise ConfigError("--split", f"'{chosen}' is not available; the data has {sorted(datasets)}")
        loader = evaluation_loader(cfg, datasets[chosen])
        summaries = collect_summaries(model, loader, description="report")
        metrics = metrics_from_summaries(model, summaries, cfg.trainer.n_bootstrap, cfg.seed)
        path = write_report(target, cfg, model, loader, metrics, split=chosen, summaries=summaries)
        console.print(f"report: {path}", markup=False, soft_wrap=True)
        console.print(f"report: {path.with_suffix('.html')}", markup=False, soft_wrap=True)
    except MedMTLError as error:
        _fail(error)


@app.command()
@_writes_to()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="a run directory made by `medmtl train` or an ensemble (`medmtl "
                                                 "cv`, `medmtl ensemble`); --backend onnxruntime: an .onnx file "
                                                 "made by `medmtl export`")],
    images: Annotated[list[Path], typer.Argument(help="image files (PNG, JPEG, TIFF…); volumes (NIfTI, NRRD, MHA) for a 3D model; grid stores (.zarr) for a slide-level model")],
    out: Annotated[Path, typer.Option("--out", help="output folder")],
    checkpoint: Annotated[str, typer.Option(
        help=_CHECKPOINT_HELP)] = "selected",
    backend: Annotated[str, typer.Option(help="torch (a run directory) or onnxruntime (an exported .onnx file; "
                                              "the same prediction files)")] = "torch",
    tta: Annotated[str, typer.Option("--tta", help=_TTA_HELP)] = "none",
    window: Annotated[Optional[str], typer.Option(
        help="volumes: sliding-window size, D,H,W or one int (default: the training size, data.image_size)")] = None,
    overlap: Annotated[float, typer.Option(help="volumes: overlap of neighbouring windows, 0 ≤ overlap < 1")] = 0.25,
) -> None:
    """Predict class probabilities, masks (PNG; NIfTI on the input grid for volumes) and boxes (COCO JSON) for image files."""
    try:
        from medmtl.errors import ConfigError
        from medmtl.predict import predict_files
        from medmtl.tta import tta_transforms, with_tta

        tta_transforms(tta, 2)  # a bad --tta fails before the model is loaded
        roi = _window(window, overlap)
        if backend == "onnxruntime":
            from medmtl.exported import OnnxRuntimeModel

            if checkpoint != "selected":
                raise ConfigError("--checkpoint", "applies to the torch backend; an .onnx file holds the weights of "
                                                  "the checkpoint it was exported from (medmtl export --checkpoint)")
            model = OnnxRuntimeModel(run_dir)
            cfg = model.config
            made = model.metadata.checkpoint or {}
            console.print(f"model: {run_dir} (onnxruntime; exported from {made.get('checkpoint', 'an unknown checkpoint')})",
                          markup=False, soft_wrap=True)
        elif backend == "torch":
            from medmtl.training.run import load_run_checkpoint

            if run_dir.suffix.lower() == ".onnx" and run_dir.is_file():
                raise ConfigError("--backend", f"{run_dir} is an ONNX file: predict with it by --backend onnxruntime")
            cfg, model, used = load_run_checkpoint(run_dir, checkpoint)
            say(f"checkpoint: {used.describe()}")
        else:
            raise ConfigError("--backend", f"unknown backend '{backend}'; choose torch or onnxruntime")
        model = with_tta(model, tta, cfg.model.spatial_dims or 2)
        if roi is not None and (cfg.model.spatial_dims or 2) != 3:
            raise ConfigError("--window", "applies to volumes (3D models); 2D images are predicted whole")
        predict_files(cfg, model, list(images), out, window=roi and (roi * 3 if len(roi) == 1 else roi),
                      overlap=overlap)
        console.print(f"wrote predictions for {len(images)} image(s) to {out}")
    except MedMTLError as error:
        _fail(error)


@app.command("export")
def export_command(
    run_dir: Annotated[Path, typer.Argument(help="a run directory made by `medmtl train` or an ensemble (`medmtl "
                                                 "cv`, `medmtl ensemble`: one file holding every member)")],
    out: Annotated[Path, typer.Option("--out", help="file to write (model.onnx, model.pt)")],
    format: Annotated[str, typer.Option("--format", help="onnx (for onnxruntime) or torchscript")] = "onnx",
    checkpoint: Annotated[str, typer.Option(
        help=_CHECKPOINT_HELP)] = "selected",
) -> None:
    """Export a run's model (every head but detection) to ONNX or TorchScript, with a dynamic batch (and
    spatial size) and the run's configuration inside; `medmtl predict --backend onnxruntime FILE.onnx` runs it."""
    try:
        from medmtl.export import check_format, export_run

        check_format(format)
        result, used = export_run(run_dir, out, format, checkpoint)
        say(f"checkpoint: {used.describe()}")
        console.print(f"wrote {result.describe()}", markup=False, soft_wrap=True)
    except MedMTLError as error:
        _fail(error)
    except OSError as error:  # --out on a full or read-only disk, in a folder without write permission
        import errno

        from medmtl.errors import DataError

        if error.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise
        _fail(DataError(error.filename or out, f"cannot be written ({error.strerror or error})"))


@app.command()
def demo(
    out: Annotated[Optional[Path], typer.Option(help="run directory (default runs/demo, or runs/demo-3d)")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="override the number of epochs")] = None,
    three_d: Annotated[bool, typer.Option("--3d", help="the 3D demo on phantom volumes (preset demo-3d)")] = False,
) -> None:
    """Train classification + segmentation + reconstruction on built-in phantom data (about 2 min on
    2 CPU cores; --3d: phantom volumes, under 3 min)."""
    preset = "demo-3d" if three_d else "demo"
    overrides = [f"trainer.max_epochs={epochs}"] if epochs else []
    train(preset, out or Path("runs") / preset, overrides, resume=True, report=True)


@app.command()
def compare(
    config: Annotated[str, typer.Argument(help="a multi-task YAML file or preset name")],
    out: Annotated[Path, typer.Option("--out", help="comparison directory")],
    splits: Annotated[str, typer.Option(help="comma-separated partition numbers, e.g. 1,2,3; each sets data.fold "
                                             "(a published split's {fold} in split-file paths, else a k-fold fold)")] = "1",
    single: Annotated[Optional[str], typer.Option(help="comma-separated tasks to train alone (default: all but reconstruction)")] = None,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key.path=value overrides for every run")] = None,
    report: Annotated[bool, typer.Option(help="write each run's report/ (ROC/FROC curves, overlays)")] = True,
    balancers: Annotated[Optional[str], typer.Option(help="comma-separated loss balancers: one multi-task model "
                                                          "each (default: the configuration's)")] = None,
    pair_on: Annotated[str, typer.Option(help="split whose images the paired differences use: val, or test "
                                              "(a held-out test split, after the models are chosen on val)")] = "val",
    only: Annotated[Optional[str], typer.Option(help="comma-separated variants to train now (e.g. single-segmentation), "
                                                     "nothing compared: run several side by side, then once without "
                                                     "--only to compare the finished runs")] = None,
) -> None:
    """Train each task alone and all tasks together on each split; tabulate mean ± std and the paired
    differences multi − single on the same validation (or, with --pair-on test, test) images (95% intervals,
    Δm%, a verdict per task)."""
    try:
        from medmtl.compare import run_comparison, train_variants
        from medmtl.config import load_config
        from medmtl.errors import ConfigError

        try:
            split_numbers = [int(s) for s in splits.split(",") if s.strip()]
        except ValueError:
            raise ConfigError("--splits", f"'{splits}' is not a comma-separated list of integers") from None
        cfg = load_config(config, overrides or [])
        chosen = [s.strip() for s in single.split(",")] if single else None
        methods = [b.strip() for b in balancers.split(",") if b.strip()] if balancers else None
        if only:
            names = [v.strip() for v in only.split(",") if v.strip()]
            _, run_dirs = train_variants(cfg, out, split_numbers, chosen, report, methods, only=names)
            for name, dirs in run_dirs.items():
                console.print(f"{name}: " + ", ".join(str(d) for d in dirs.values()), markup=False, soft_wrap=True)
            return
        run_comparison(cfg, out, split_numbers, chosen, report=report, balancers=methods, pair_on=pair_on)
        typer.echo((out / "comparison.md").read_text())
    except MedMTLError as error:
        _fail(error)


@app.command("cv")
@_writes_to()
def cross_validate(
    config: Annotated[str, typer.Argument(help="a YAML file or preset name")],
    out: Annotated[Path, typer.Option("--out", help="cross-validation directory (fold runs, cv.md, the ensemble)")],
    folds: Annotated[int, typer.Option(help="number of folds (grouped by data.group_col when the data has one)")] = 5,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key.path=value overrides for every fold")] = None,
    report: Annotated[bool, typer.Option(help="write each fold run's report/")] = False,
) -> None:
    """Cross-validate: train one model per fold of the train + validation data, report out-of-fold metrics
    with 95% CIs (cv.md, cv.html), and write the fold models' ensemble, which evaluate, predict, export and
    report take like a run directory (and which is evaluated on the test split when there is one)."""
    try:
        from medmtl.config import load_config
        from medmtl.cv import run_cv

        result = run_cv(load_config(config, overrides or []), out, folds, report=report)
        _show(result.out_of_fold, f"out-of-fold metrics ({folds} folds)")
        if result.test:
            _show(result.test["ensemble"], "test metrics of the ensemble (metrics_test.json)")
        console.print(f"wrote {out / 'cv.md'}, {out / 'cv.html'} and the ensemble {out / 'ensemble.json'}",
                      markup=False, soft_wrap=True)
    except MedMTLError as error:
        _fail(error)


@app.command("ensemble")
@_writes_to()
def ensemble_command(
    runs: Annotated[list[Path], typer.Argument(help="run directories whose models agree (tasks, input size)")],
    out: Annotated[Path, typer.Option("--out", help="ensemble directory to write")],
    checkpoint: Annotated[str, typer.Option(help="selected, best or last: which checkpoint of every member")] = "selected",
) -> None:
    """Make an ensemble of trained runs (e.g. several seeds): the mean of their probabilities, risk scores
    and segmentation probabilities; evaluate, predict, export and report take it like a run directory."""
    try:
        from medmtl.ensemble import write_ensemble
        from medmtl.errors import ConfigError

        if checkpoint not in ("selected", "best", "last"):
            raise ConfigError("--checkpoint", f"choose selected, best or last for every member, not '{checkpoint}'")
        path = write_ensemble(out, runs, checkpoint=checkpoint)
        console.print(f"wrote {path} ({len(runs)} members)", markup=False, soft_wrap=True)
    except MedMTLError as error:
        _fail(error)


@app.command()
@_writes_to()
def compress(
    slides: Annotated[list[Path], typer.Argument(help="whole-slide images (.svs, .tif, .ndpi, .mrxs, plain TIFF…), "
                                                      "ordinary images (PNG, JPEG: give --slide-mpp), or one CSV "
                                                      "(column image = their paths, optional column mpp = µm/px)")],
    encoder: Annotated[Path, typer.Option(help="run directory of the patch encoder (medmtl train)")],
    out: Annotated[Path, typer.Option("--out", help="folder for the <slide>.zarr grid stores")],
    mpp: Annotated[float, typer.Option(help="µm/px of the patches (NIC: 0.5)")] = 0.5,
    level: Annotated[Optional[int], typer.Option(help="read this pyramid level instead of choosing by --mpp")] = None,
    slide_mpp: Annotated[Optional[float], typer.Option(help="µm/px of level 0 for slides without it in the file "
                                                            "(a CSV's mpp column wins)")] = None,
    patch_size: Annotated[int, typer.Option(help="patch side in pixels")] = 128,
    stride: Annotated[Optional[int], typer.Option(help="patch step (default: the patch size)")] = None,
    min_tissue: Annotated[float, typer.Option(help="smallest tissue fraction of a patch that is encoded")] = 0.25,
    batch_size: Annotated[int, typer.Option(help="patches per encoder batch")] = 64,
    readers: Annotated[int, typer.Option(help="tile-reading threads per slide")] = 4,
    workers: Annotated[int, typer.Option(help="slides in parallel (Dask worker processes, one per device)")] = 1,
    scheduler: Annotated[Optional[str], typer.Option(help="address of a running Dask scheduler")] = None,
    overwrite: Annotated[bool, typer.Option(help="recompute stores made with another encoder or settings "
                                                 "(replaced once the new one is finished)")] = False,
) -> None:
    """Compress whole-slide images into grids of patch embeddings (Neural Image Compression).

    Slides finished with the same encoder weights and settings are skipped; an interrupted slide
    resumes from its finished rows. A store made otherwise is an error (or, with --overwrite, recomputed).
    """
    try:
        from medmtl.extras import require

        for module in ("tifffile", "zarr"):  # before the encoder is loaded: a missing extra stops at once
            require(module, feature="compressing whole-slide images")
        from medmtl.wsi.compress import CompressionSettings, compress_slides
        from medmtl.wsi.patch_encoder import PatchEncoder
        from medmtl.wsi.patches import read_slide_list

        source = slides[0] if len(slides) == 1 and slides[0].suffix.lower() == ".csv" else list(slides)
        entries, _ = read_slide_list(source)  # missing files fail here, before the encoder is loaded
        slides = [entry.path for entry in entries]
        slide_mpps = {str(entry.path): entry.mpp for entry in entries if entry.mpp is not None}

        settings = CompressionSettings(patch_size=patch_size, stride=stride, target_mpp=None if level is not None else mpp,
                                       level=level, slide_mpp=slide_mpp, min_tissue_fraction=min_tissue,
                                       batch_size=batch_size, readers=readers)
        if workers > 1 or scheduler:
            from medmtl.wsi.parallel import compress_in_parallel

            results = compress_in_parallel(slides, encoder, out, settings, workers=workers, scheduler=scheduler,
                                           overwrite=overwrite, slide_mpps=slide_mpps)
        else:
            results = compress_slides(slides, PatchEncoder.from_run(encoder), out, settings, overwrite=overwrite,
                                      slide_mpps=slide_mpps)
        for result in results:
            state = "already done" if result.skipped else (
                f"{result.tiles} patches, {result.tiles_per_second:.1f}/s, grid {result.grid_shape[0]}×"
                f"{result.grid_shape[1]}" + (f", {result.failed_tiles} unreadable" if result.failed_tiles else ""))
            console.print(f"{result.slide.name} → {result.store}: {state}")
    except MedMTLError as error:
        _fail(error)


@app.command("extract-patches")
def extract_patches(
    slides: Annotated[list[Path], typer.Argument(help="a CSV (column image = slide or image paths; optional mask = "
                                                       "mask images, mpp = µm/px; other columns = slide-level "
                                                       "targets) or slide files")],
    out: Annotated[Path, typer.Option("--out", help="folder for the patch PNGs and patches.csv")],
    per_slide: Annotated[int, typer.Option(help="patches sampled per slide")] = 64,
    mpp: Annotated[float, typer.Option(help="µm/px of the patches")] = 0.5,
    patch_size: Annotated[int, typer.Option(help="patch side in pixels")] = 128,
    min_tissue: Annotated[float, typer.Option(help="smallest tissue fraction of a sampled patch")] = 0.5,
    slide_mpp: Annotated[Optional[float], typer.Option(help="µm/px of level 0 for slides without it (a CSV's "
                                                            "mpp column wins)")] = None,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
) -> None:
    """Sample tissue patches from slides into PNGs and a manifest for training a patch encoder.

    Slide-level targets are copied onto the patches (weak labels); a `slide` column names the
    source slide. Re-running skips the patches already written.
    """
    try:
        from medmtl.wsi.patches import extract_patches as extract

        source = slides[0] if len(slides) == 1 and slides[0].suffix.lower() == ".csv" else list(slides)
        manifest = extract(source, out, per_slide, patch_size=patch_size, target_mpp=mpp,
                           min_tissue_fraction=min_tissue, seed=seed, slide_mpp=slide_mpp)
        console.print(f"wrote {manifest}")
    except MedMTLError as error:
        _fail(error)


@app.command("show-grid")
def show_grid(
    store: Annotated[Path, typer.Argument(help="a <slide>.zarr grid store made by `medmtl compress`")],
    out: Annotated[Path, typer.Option("--out", help="PNG file to write")],
    explain: Annotated[Optional[Path], typer.Option(
        "--explain", help="run directory of a slide-level model (data.kind: grid): draw, per head, how much each "
                          "tissue cell drives its prediction, and write the values to <out stem>_<head>.npy")] = None,
    method: Annotated[Optional[str], typer.Option(
        "--method", help="with --explain: gradient (gradient × input, the default: one backward pass, signed) or "
                         "occlusion (blocks of cells set to the background embedding: one forward pass per block)")
    ] = None,
    occlusion_size: Annotated[Optional[int], typer.Option(
        "--occlusion-size", help="with --method occlusion: side of the occluded blocks in cells (default 1)")] = None,
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="with --explain: " + _CHECKPOINT_HELP)] = "selected",
) -> None:
    """Render a compressed slide: thumbnail, tissue mask and the embedding grid (PCA → RGB); with
    --explain, a slide-level model's attribution map per head over the thumbnail."""
    try:
        from medmtl.grid_store import open_grid

        grid = open_grid(store)
        if explain is None:
            from medmtl.wsi.visualize import render_grid

            _explain_options_unused(method, occlusion_size)
            console.print(f"wrote {render_grid(grid, out)}")
            return
        from medmtl.wsi.explain import explain_run, write_maps
        from medmtl.wsi.visualize import render_attributions

        explanation = explain_run(explain, grid, *_explain_method(method, occlusion_size), checkpoint=checkpoint)
        console.print(f"wrote {render_attributions(grid, explanation, out)}")
        for path in write_maps(explanation, out):
            console.print(f"wrote {path}")
    except MedMTLError as error:
        _fail(error)


def _explain_method(method: str | None, occlusion_size: int | None) -> tuple[str, int]:
    """show-grid's ``--method`` (default gradient) and ``--occlusion-size`` (default 1; occlusion only), checked."""
    from medmtl.errors import ConfigError
    from medmtl.wsi.explain import METHODS, check_method

    method = METHODS[0] if method is None else method
    check_method(method, 1 if occlusion_size is None else occlusion_size)
    if occlusion_size is not None and method != "occlusion":
        raise ConfigError("--occlusion-size", f"applies to --method occlusion only, not {method}")
    return method, 1 if occlusion_size is None else occlusion_size


def _explain_options_unused(method: str | None, occlusion_size: int | None) -> None:
    """A :class:`ConfigError` for show-grid's --method / --occlusion-size without --explain."""
    from medmtl.errors import ConfigError

    for option, value in (("--method", method), ("--occlusion-size", occlusion_size)):
        if value is not None:
            raise ConfigError(option, "applies to --explain RUN only")


@app.command()
def presets() -> None:
    """List the configurations shipped with medmtl."""
    from medmtl.config import PRESETS_DIR

    for path in sorted(PRESETS_DIR.glob("*.yaml")):
        typer.echo(f"{path.stem:16s} {preset_description(path)}")


def _window(text: str | None, overlap: float) -> tuple[int, ...] | None:
    """``--window`` as one or three positive ints (None when not given); checks ``--overlap`` too."""
    from medmtl.errors import ConfigError

    if not 0.0 <= overlap < 1.0:
        raise ConfigError("--overlap", f"must be in [0, 1), not {overlap}")
    if text is None:
        return None
    try:
        sizes = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        sizes = ()
    if len(sizes) not in (1, 3) or min(sizes) < 1:
        raise ConfigError("--window", f"must be one positive int or three (D,H,W), not '{text}'")
    return sizes


def _set_km_groups(model: Any, groups: int, run: Path) -> None:
    """``--km-groups``: the Kaplan–Meier grouping of every task that draws one (its options have
    ``km_groups``); a :class:`ConfigError` when no task does or the number is not offered."""
    from medmtl.errors import ConfigError

    drawing = [task for task in model.tasks.values() if "km_groups" in type(task.options).model_fields]
    if not drawing:
        raise ConfigError("--km-groups", f"{run} has no task with Kaplan–Meier curves (a survival head); its tasks: "
                                         + ", ".join(f"{n} ({t.kind})" for n, t in model.tasks.items()))
    for task in drawing:
        try:
            task.options = type(task.options).model_validate({**task.options.model_dump(), "km_groups": groups})
        except ValueError:
            raise ConfigError("--km-groups", f"must be 2 (split at the median risk) or 3 (tertiles), not {groups}") \
                from None


def preset_description(path: Path) -> str:
    """The first sentence of the comment block a preset file starts with (whole, over its lines)."""
    import re

    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    text = " ".join(part for part in lines if part)
    end = re.search(r"\.(?=\s+[A-Z0-9`]|\s*$)", text)  # "et al. (" does not end a sentence
    return text[:end.end()] if end else text


def _show(metrics: dict, title: str) -> None:
    from medmtl.console import is_quiet
    from medmtl.report.tables import rich_table

    if not is_quiet():
        Console().print(rich_table(metrics, title))


def main() -> None:  # pragma: no cover - entry point
    app(sys.argv[1:])


if __name__ == "__main__":  # pragma: no cover
    main()
