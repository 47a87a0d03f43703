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
