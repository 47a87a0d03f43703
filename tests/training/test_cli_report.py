"""`medmtl report`: a run's report.md and report.html rewritten from its checkpoint, without training;
a comparison's comparison.html from its comparison.md; the page rendered by a real browser."""

import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import run_cli, tiny_config
from PIL import Image

from medmtl.config import config_from_dict
from medmtl.training.run import train

pytestmark = pytest.mark.slow

CHECK_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_html_report.sh"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "run"
    train(config_from_dict(tiny_config(max_epochs=1)), out, report=True)
    return out


def test_training_writes_html_beside_markdown(tiny_run):
    page = (tiny_run / "report" / "report.html").read_text()
    assert "<table>" in page and page.count('src="data:image/png;base64,') >= 3  # loss, ROC, overlays
    assert 'src="' not in page.replace('src="data:', "")


def test_report_command_rewrites_the_run_report(tiny_run):
    html = tiny_run / "report" / "report.html"
    md = tiny_run / "report" / "report.md"
    html.unlink()
    md.write_text("stale")
    checkpoints = sorted((tiny_run / "checkpoints").iterdir())
    before = {path: path.stat().st_mtime_ns for path in checkpoints}
    result = run_cli("report", str(tiny_run))
    assert result.returncode == 0, result.stdout + result.stderr
    assert str(html) in result.stderr and str(md) in result.stderr and "checkpoint:" in result.stderr
    assert "Split evaluated: **val**" in md.read_text()
    page = html.read_text()
    assert "<h1>medmtl run report</h1>" in page and "data:image/png;base64," in page
    assert {path: path.stat().st_mtime_ns for path in checkpoints} == before  # nothing was trained

    result = run_cli("report", str(tiny_run), "--split", "test")
    assert result.returncode == 2 and "--split" in result.stderr and "Traceback" not in result.stderr


def test_report_command_on_a_comparison_and_on_bad_directories(tmp_path):
    comparison = tmp_path / "cmp"
    comparison.mkdir()
    Image.new("RGB", (10, 10), (0, 90, 200)).save(comparison / "paired_differences.png")
    (comparison / "comparison.md").write_text("| model | auc |\n|---|---|\n| multi-task | 0.8 |\n\n"
                                              "![paired differences](paired_differences.png)\n")
    result = run_cli("report", str(comparison))
    assert result.returncode == 0, result.stdout + result.stderr
    page = (comparison / "comparison.html").read_text()
    assert "<table>" in page and "data:image/png;base64," in page
    result = run_cli("report", str(comparison), "--checkpoint", "last")
    assert result.returncode == 2 and "--checkpoint" in result.stderr

    empty = tmp_path / "empty"
    empty.mkdir()
    for bad in (empty, tmp_path / "missing"):
        result = run_cli("report", str(bad))
        assert result.returncode == 2, result.stdout + result.stderr
        assert str(bad) in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_report_renders_in_headless_chromium(tiny_run, tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not on PATH (Debian: apt-get install -y chromium)")
    screenshot = tmp_path / "report.png"
    result = subprocess.run(["bash", str(CHECK_SCRIPT), str(tiny_run), str(screenshot)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert screenshot.stat().st_size > 10_000 and screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_km_groups_needs_a_survival_head(tiny_run):
    result = run_cli("report", str(tiny_run), "--km-groups", "3")
    assert result.returncode == 2 and "Kaplan" in result.stderr and "Traceback" not in result.stderr


def test_km_groups_sets_every_survival_heads_grouping(tmp_path):
    from medmtl.cli import _set_km_groups
    from medmtl.encoders import create_encoder
    from medmtl.errors import ConfigError
    from medmtl.model import MultiTaskModel
    from medmtl.tasks import ClassificationTask, SurvivalTask

    model = MultiTaskModel(create_encoder("small_cnn", in_channels=1, width=4, stages=2),
                           [ClassificationTask(), SurvivalTask()])
    _set_km_groups(model, 3, tmp_path)
    assert model.tasks["survival"].options.km_groups == 3
    with pytest.raises(ConfigError, match="2 .* or 3"):
        _set_km_groups(model, 4, tmp_path)
