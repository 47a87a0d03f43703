"""A feature whose optional extra is missing stops with one line that names the extra."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from medmtl.cli import app
from medmtl.data.build import build_datasets
from medmtl.data.config import DataConfig
from medmtl.errors import MedMTLError, MissingExtraError
from medmtl.extras import require
from medmtl.grid_store import create_or_resume, open_grid
from medmtl.wsi import openslide_reader
from medmtl.wsi.slide import open_slide
from medmtl.wsi.synthetic import make_synthetic_slide

WSI_MODULES = ("openslide", "tifffile", "zarr", "dask", "distributed")
ZARR_MESSAGE = ("reading zarr grid stores needs the optional extra 'wsi': pip install 'medmtl[wsi]' "
                "(module 'zarr' is not installed)")


@pytest.fixture
def no_wsi_extra(monkeypatch):
    """The environment of ``pip install medmtl``: the modules of the 'wsi' extra cannot be imported."""
    for name in WSI_MODULES:
        monkeypatch.setitem(sys.modules, name, None)
    openslide_reader.load_openslide.cache_clear()
    yield
    openslide_reader.load_openslide.cache_clear()


def test_require_returns_the_module_or_names_the_extra(monkeypatch):
    assert require("json").dumps({}) == "{}"
    monkeypatch.setitem(sys.modules, "zarr", None)
    with pytest.raises(MissingExtraError) as info:
        require("zarr", feature="reading zarr grid stores")
    assert str(info.value) == ZARR_MESSAGE
    assert isinstance(info.value, MedMTLError) and info.value.extra == "wsi" and info.value.module == "zarr"
    with pytest.raises(MissingExtraError, match=r"needs the optional extra 'plots'.*module 'nope_not_here'"):
        require("nope_not_here", extra="plots", feature="drawing")


def test_wsi_features_without_the_extra(no_wsi_extra, tmp_path):
    with pytest.raises(MissingExtraError, match="module 'zarr'"):
        open_grid(tmp_path / "slide.zarr")
    with pytest.raises(MissingExtraError, match=r"^writing zarr grid stores.*medmtl\[wsi\]"):
        create_or_resume(tmp_path, "slide", 4, None, None, {})  # fails before touching its arguments
    slide = tmp_path / "slide.tif"
    slide.write_bytes(b"II*\x00" + bytes(64))
    with pytest.raises(MissingExtraError, match=r"^reading whole-slide images.*module 'tifffile'"):
        open_slide(slide)
    with pytest.raises(MissingExtraError, match="module 'tifffile'"):
        make_synthetic_slide(tmp_path / "synthetic.tif", 256, 256, label=0, seed=0)
    with pytest.raises(MissingExtraError, match=r"data.kind: grid.*module 'zarr'"):
        build_datasets(DataConfig(kind="grid", manifest=str(tmp_path / "grids.csv"), channels=8))


def test_cli_show_grid_without_the_extra_is_one_line(no_wsi_extra, tmp_path):
    result = CliRunner().invoke(app, ["show-grid", str(tmp_path / "slide.zarr"), "--out", str(tmp_path / "g.png")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"error: {ZARR_MESSAGE}"]
    assert "Traceback" not in result.output and not isinstance(result.exception, ImportError)


def test_commands_in_an_install_without_the_extra(tmp_path):
    """A fresh process where the 'wsi' modules are missing from the start (as after ``pip install medmtl``)."""
    (tmp_path / "slides.csv").write_text("image\nslide.svs\n")
    (tmp_path / "slide.svs").write_bytes(b"II*\x00" + bytes(64))
    commands = {
        "compress": ["compress", str(tmp_path / "slide.svs"), "--encoder", str(tmp_path / "no-run"),
                     "--out", str(tmp_path / "grids")],
        "extract-patches": ["extract-patches", str(tmp_path / "slides.csv"), "--out", str(tmp_path / "patches")],
        "show-grid": ["show-grid", str(tmp_path / "slide.zarr"), "--out", str(tmp_path / "g.png")],
        "train": ["train", "nic-slide", "--out", str(tmp_path / "run"), f"data.manifest={tmp_path / 'grids.csv'}"],
    }
    script = textwrap.dedent(f"""
        import json, sys
        for name in {WSI_MODULES!r}:
            sys.modules[name] = None
        import medmtl.wsi  # the package itself imports without its extra
        from typer.testing import CliRunner
        from medmtl.cli import app
        out = {{}}
        for name, args in {commands!r}.items():
            result = CliRunner().invoke(app, args)
            out[name] = [result.exit_code, result.output, repr(result.exception)]
        print(json.dumps(out))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for name, (code, output, exception) in results.items():
        lines = [line for line in output.splitlines() if line.strip() and not line.startswith("Seed set")]
        assert code == 2, (name, output, exception)
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, output)
        assert "needs the optional extra 'wsi': pip install 'medmtl[wsi]'" in lines[0], (name, output)
        assert "Traceback" not in output, (name, output)
