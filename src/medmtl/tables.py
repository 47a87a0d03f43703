"""Reading CSV tables with clear errors (a low-level helper of data manifests and slide lists)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from medmtl.errors import DataError

if TYPE_CHECKING:
    import pandas as pd


def read_csv_table(csv_path: Path) -> pd.DataFrame:
    """A CSV file as strings (empty cells stay ``""``), column names stripped; clear errors."""
    import pandas as pd  # imported here: pandas takes a while to load and few commands read CSVs

    if not csv_path.is_file():
        raise DataError(csv_path, "file does not exist" if not csv_path.exists() else "is not a file")
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as exc:
        raise DataError(csv_path, f"cannot be read as a CSV table: {exc}") from None
    table.columns = [str(c).strip() for c in table.columns]
    return table
