"""Shared fixtures (helpers live in tests/helpers.py, importable as ``helpers``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import make_samples, tiny_config

from medmtl.data.collate import collate_samples


@pytest.fixture
def batch_factory():
    def factory(**kwargs):
        return collate_samples(make_samples(**kwargs))

    return factory


@pytest.fixture
def tiny_config_file(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config()))
    return path
