"""Fixtures of the data tests."""

from pathlib import Path

import pytest

from medmtl.paths import data_root


@pytest.fixture(scope="module")
def volumes_root() -> Path:
    """``$MEDMTL_DATA/volumes`` (real CT/MR volumes, LIDC nodules, VesselMNIST3D), else a skip."""
    root = data_root()
    if root is None or not (root / "volumes").is_dir():
        pytest.skip("real volumes not found: set MEDMTL_DATA to the folder holding volumes/ (default ../shared/data)")
    return root / "volumes"
