"""Where medmtl finds the shared real data sets."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV_VAR = "MEDMTL_DATA"


def data_root() -> Path | None:
    """The folder of real data sets, or ``None`` when there is none.

    ``$MEDMTL_DATA`` wins; otherwise ``../shared/data`` relative to the working directory or to
    the repository checkout is used when it exists.
    """
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        return Path(env)
    repo_root = Path(__file__).resolve().parents[2]
    for candidate in (Path.cwd() / ".." / "shared" / "data", repo_root / ".." / "shared" / "data"):
        if candidate.is_dir():
            return candidate.resolve()
    return None


def resolve_data_path(path: str | Path) -> Path:
    """Expand ``$MEDMTL_DATA``/``~`` in a configured path (``${MEDMTL_DATA}/busi-256``)."""
    text = str(path)
    root = data_root()
    if root is not None:
        text = text.replace("${MEDMTL_DATA}", str(root)).replace("$MEDMTL_DATA", str(root))
    return Path(os.path.expandvars(os.path.expanduser(text)))
