"""Optional extras: third-party modules that only some features need.

The core install (``pip install medmtl``) is the 2D stack; ``pip install 'medmtl[wsi]'`` adds
whole-slide images (openslide, tifffile, zarr, dask/distributed), ``'medmtl[volumes]'`` 3D volumes
(SimpleITK: NIfTI, NRRD, MHA), ``'medmtl[export]'`` exporting models to ONNX and running them
(onnx, onnxscript, onnxruntime). Modules of an extra are
imported with :func:`require` at first use, so that a missing one gives one clear
:class:`~medmtl.errors.MissingExtraError` naming the extra instead of an ``ImportError`` traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from medmtl.errors import MissingExtraError

#: the extra that provides each optional top-level module
EXTRA_OF = {"openslide": "wsi", "tifffile": "wsi", "zarr": "wsi", "dask": "wsi", "distributed": "wsi",
            "SimpleITK": "volumes", "onnx": "export", "onnxscript": "export", "onnxruntime": "export"}


def require(module: str, extra: str | None = None, feature: str = "this feature") -> ModuleType:
    """``importlib.import_module(module)``, or a :class:`MissingExtraError` naming ``extra``.

    ``extra`` defaults to the one :data:`EXTRA_OF` lists for the module's top-level package
    (else ``"wsi"``); ``feature`` says what needs it ("reading whole-slide images").
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # also a broken install of it: a missing module it needs
        missing = getattr(exc, "name", None) or module
        raise MissingExtraError(missing, extra or EXTRA_OF.get(module.split(".")[0], "wsi"), feature) from None
