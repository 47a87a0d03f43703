"""Grid stores: row-wise writing, resume after interruption, atomic completion."""

import numpy as np
import pytest

from medmtl import grid_store
from medmtl.errors import DataError


def geometry(height=3, width=4):
    tissue = np.zeros((height, width), bool)
    tissue[1:, 1:3] = True
    ys, xs = np.mgrid[0:height, 0:width]
    coords = np.stack([xs * 128, ys * 128], axis=-1).astype(np.int64)
    return tissue, coords


ATTRS = {"encoder": "runs/enc", "level": 0, "mpp": 0.5, "patch_size": 128}


def test_write_resume_and_finish(tmp_path):
    tissue, coords = geometry()
    store = grid_store.create_or_resume(tmp_path, "slide", 2, tissue, coords, ATTRS)
    assert store.path.name == "slide.zarr.partial" and store.shape == (2, 3, 4)
    store.write_row(0, np.ones((2, 4)))
    # "killed" here: reopening resumes with row 0 done
    again = grid_store.create_or_resume(tmp_path, "slide", 2, tissue, coords, ATTRS)
    assert again.rows_done().tolist() == [True, False, False]
    with pytest.raises(DataError, match="2 grid row"):
        grid_store.finish(again)
    with pytest.raises(DataError, match="not a finished"):
        grid_store.open_grid(again.path)
    again.write_row(1, np.full((2, 4), 2.0))
    again.write_row(2, np.full((2, 4), 3.0))
    final = grid_store.finish(again)
    assert final.name == "slide.zarr" and grid_store.is_complete(final)
    opened = grid_store.open_grid(final)
    np.testing.assert_array_equal(opened.embeddings()[:, :, 0], [[1, 2, 3], [1, 2, 3]])
    np.testing.assert_array_equal(opened.tissue(), tissue)
    assert opened.attrs["mpp"] == 0.5 and opened.attrs["complete"] is True


def test_partial_store_with_other_settings_starts_over(tmp_path):
    tissue, coords = geometry()
    store = grid_store.create_or_resume(tmp_path, "slide", 2, tissue, coords, ATTRS)
    store.write_row(0, np.ones((2, 4)))
    other = grid_store.create_or_resume(tmp_path, "slide", 2, tissue, coords, {**ATTRS, "mpp": 1.0})
    assert not other.rows_done().any()


def test_torn_row_flag_counts_as_not_done(tmp_path):
    tissue, coords = geometry()
    store = grid_store.create_or_resume(tmp_path, "slide", 2, tissue, coords, ATTRS)
    store.write_row(0, np.ones((2, 4)))
    store.write_row(1, np.ones((2, 4)))
    chunk = store.path / "row_done" / "c" / "1"
    chunk.write_bytes(b"\x00garbage")  # a flag file cut short by a crash
    done = grid_store.create_or_resume(tmp_path, "slide", 2, tissue, coords, ATTRS).rows_done()
    assert done.tolist() == [True, False, False]


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        grid_store.open_grid(tmp_path / "nope.zarr")


def test_write_rows_in_any_order_and_runs(tmp_path):
    tissue, coords = np.ones((5, 4), bool), np.zeros((5, 4, 2), np.int64)
    store = grid_store.create_or_resume(tmp_path, "slide", 2, tissue, coords, ATTRS)
    rows = [4, 0, 1, 3]  # runs 0–1 and 3–4, given out of order
    embeddings = np.stack([np.full((2, 4), float(row)) for row in rows], axis=1)
    store.write_rows(rows, embeddings)
    assert store.rows_done().tolist() == [True, True, False, True, True]
    np.testing.assert_array_equal(store.embeddings()[0, :, 0], [0, 1, 0, 3, 4])
    store.write_rows([], np.zeros((2, 0, 4)))  # nothing to write is not an error
    assert store.rows_done().tolist() == [True, True, False, True, True]
