"""The README's Python API example runs as written."""

import re
from pathlib import Path

import yaml

from helpers import make_samples

from medmtl.data.collate import collate_samples

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_model_api_example_runs():
    batch = collate_samples(make_samples(n=2, size=32))
    namespace = {"images": batch["image"], "batch": batch}
    exec(_python_blocks()[0], namespace)
    assert namespace["loss"].ndim == 0 and namespace["loss"].requires_grad
    assert set(namespace["outputs"]) == {"classification", "segmentation", "reconstruction"}


def test_readme_commands_exist():
    text = README.read_text()
    assert "make demo" in text and "make test" in text
    makefile = (README.parent / "Makefile").read_text()
    assert "\ndemo:" in makefile and "\ntest:" in makefile
    assert "make test" in (README.parent / ".ci" / "run").read_text()


def test_readme_data_kinds_are_valid_data_sections():
    from medmtl.data.config import DataConfig

    block = re.search(r"### Data kinds.*?```yaml\n(.*?)```", README.read_text(), flags=re.S).group(1)
    chunks = re.split(r"\n(?=data:)", block.split("\n", 1)[1].strip())  # after the "# one of:" line
    kinds = [DataConfig(**yaml.safe_load(chunk)["data"]).kind for chunk in chunks]
    assert sorted(set(kinds)) == ["busi", "grid", "manifest", "npz", "phantom"]
