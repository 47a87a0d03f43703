import numpy as np
import pandas as pd

from medmtl.report.plots import plot_loss_curves, plot_overlays, plot_roc


def test_plots_write_pngs(tmp_path):
    log = pd.DataFrame({"epoch": [0, 0, 1, 1], "train/loss": [1.0, None, 0.5, None],
                        "val/loss": [None, 1.2, None, 0.7]})
    log.to_csv(tmp_path / "metrics.csv", index=False)
    assert plot_loss_curves(tmp_path / "metrics.csv", tmp_path / "loss.png").stat().st_size > 1000
    labels = np.array([0, 1, 0, 1, 1])
    probs = np.stack([1 - np.linspace(0, 1, 5), np.linspace(0, 1, 5)], axis=1)
    assert plot_roc(labels, probs, tmp_path / "roc.png").exists()
    assert plot_roc(np.zeros(5, int), probs, tmp_path / "none.png") is None  # one class: no curve
    images = np.random.rand(3, 1, 16, 16)
    masks = [np.pad(np.ones((4, 4)), 6) for _ in range(3)]
    assert plot_overlays(images, masks, [None, masks[1], masks[2]], ["a", "b", "c"], tmp_path / "o.png").exists()


def test_balancing_plot_only_when_weights_move_or_cosines_exist(tmp_path):
    from medmtl.report.plots import plot_balancing, plot_intervals

    fixed = pd.DataFrame({"epoch": [0, 1], "weight/a": [1.0, 1.0], "weight/b": [0.5, 0.5]})
    fixed.to_csv(tmp_path / "fixed.csv", index=False)
    assert plot_balancing(tmp_path / "fixed.csv", tmp_path / "fixed.png") is None
    moving = pd.DataFrame({"epoch": [0, 0, 1], "weight/a": [1.0, 0.8, 0.6], "weight/b": [1.0, 1.2, 1.4],
                           "grad_cos/a~b": [0.2, -0.1, -0.3]})
    moving.to_csv(tmp_path / "moving.csv", index=False)
    assert plot_balancing(tmp_path / "moving.csv", tmp_path / "moving.png").stat().st_size > 1000
    rows = [("a auc", "m1", 0.02, -0.01, 0.05), ("b dice", "m1", -0.03, -0.05, -0.01)]
    assert plot_intervals(rows, tmp_path / "forest.png", "delta").exists()
    assert plot_intervals([("x", "m", float("nan"), 0, 0)], tmp_path / "none.png", "delta") is None


def test_overlay_title_names_mask_colours_only_when_masks_are_drawn():
    import numpy as np

    from medmtl.report.plots import overlay_title

    mask = np.zeros((4, 4), int)
    assert "green" not in overlay_title([None, None], [None, mask])  # classification only: no contours
    mask[1, 1] = 1
    assert overlay_title([mask], [None]).startswith("green: reference mask")


def test_calibration_confusion_and_kaplan_meier_plots(tmp_path):
    from lifelines import KaplanMeierFitter

    from medmtl.metrics import ReliabilityCurve, reliability_curve
    from medmtl.report.plots import plot_calibration, plot_confusion, plot_kaplan_meier

    curve = reliability_curve(np.array([0, 1, 1, 0]), np.array([0.1, 0.9, 0.6, 0.3]))
    assert plot_calibration(curve, tmp_path / "cal.png").stat().st_size > 1000
    edges = np.linspace(0, 1, 11)
    empty = ReliabilityCurve(edges[:-1], edges[1:], np.zeros(10, int), np.full(10, np.nan), np.full(10, np.nan),
                             float("nan"), "confidence")
    assert plot_calibration(empty, tmp_path / "none.png") is None
    counts = np.array([[3, 1, 0], [0, 0, 0], [1, 0, 2]])  # class 1 never true: its fractions are blank
    assert plot_confusion(counts, tmp_path / "cm.png").stat().st_size > 1000
    fitters = [KaplanMeierFitter(label=name).fit([1.0, 2.0, 3.0, 5.0], [1, 0, 1, 1]) for name in ("a", "b")]
    assert plot_kaplan_meier(fitters, tmp_path / "km.png", at_risk_labels=["a", "b"]).stat().st_size > 1000
