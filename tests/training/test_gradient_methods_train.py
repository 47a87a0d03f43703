"""Every gradient-level balancer trains a small multi-task model end to end (and resumes)."""

import math

import pytest

from helpers import tiny_config

from medmtl.balancing import GRADIENT_BALANCERS
from medmtl.config import config_from_dict


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(GRADIENT_BALANCERS))
def test_gradient_balancer_trains_end_to_end(method, tmp_path):
    from medmtl.training.run import train

    raw = tiny_config(max_epochs=1, n_bootstrap=10, log_every_n_steps=1)
    raw["data"]["phantom"] = {"n_train": 24, "n_val": 8, "seed": 1}
    raw["loss"] = {"balancer": method, "options": {"level": "shared" if method == "pcgrad" else "representation"}}
    result = train(config_from_dict(raw), tmp_path / "run", report=method == "pcgrad")
    assert {"classification", "segmentation", "reconstruction"} <= set(result.metrics)
    assert math.isfinite(result.metrics["segmentation"]["dice"])
    header = (tmp_path / "run" / "logs" / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "grad_cos/classification~segmentation" in header and "weight/segmentation" in header


@pytest.mark.slow
def test_report_draws_weights_and_gradient_cosines(tmp_path):
    from medmtl.training.run import train

    raw = tiny_config(max_epochs=2, n_bootstrap=10, log_every_n_steps=1)
    raw["data"]["phantom"] = {"n_train": 24, "n_val": 8, "seed": 1}
    raw["loss"] = {"balancer": "mgda"}
    train(config_from_dict(raw), tmp_path / "run", report=True)
    report = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "## Loss balancing" in report and (tmp_path / "run" / "report" / "balancing.png").is_file()
