"""A run directory cannot be corrupted: reruns with another configuration, concurrent runs, interrupted writes."""

import csv
import json
import os
import socket
import stat
import subprocess
import sys
import time

import pytest
import torch
import yaml
from helpers import run_cli, tiny_config

from medmtl.config import config_from_dict, save_config
from medmtl.errors import ConfigError, DataError
from medmtl.io_utils import atomic_write_text
from medmtl.training.run_dir import (CHANGES_NAME, LOCK_NAME, RunLock, check_rerun, clean_partial_writes,
                                     commit_config, config_changes)


def _config(**trainer):
    return config_from_dict(tiny_config(**trainer))


@pytest.fixture
def run_dir(tmp_path):
    """A folder that looks like a finished run of ``tiny_config()`` (the checkpoint is not read)."""
    folder = tmp_path / "run"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    save_config(_config(), folder / "config.yaml")
    return folder


# ------------------------------------------------------------------------------- configuration check
def test_fresh_folder_and_identical_rerun(tmp_path, run_dir):
    assert not check_rerun(_config(), tmp_path / "new", resume=True).resume
    plan = check_rerun(_config(), run_dir, resume=True)
    assert plan.resume and plan.changes == {}
    before = (run_dir / "config.yaml").stat().st_mtime_ns
    commit_config(_config(), run_dir, plan)  # unchanged: left as it is, nothing recorded
    assert (run_dir / "config.yaml").stat().st_mtime_ns == before and not (run_dir / CHANGES_NAME).exists()


def test_resumable_change_is_recorded_and_written_on_commit(run_dir):
    new = _config(max_epochs=5, progress_bar=True)
    plan = check_rerun(new, run_dir, resume=True)
    assert plan.resume and plan.changes == {"trainer.max_epochs": (2, 5), "trainer.progress_bar": (False, True)}
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["trainer"]["max_epochs"] == 2  # not yet
    with pytest.warns(UserWarning, match="trainer.max_epochs: 2 -> 5"):
        commit_config(new, run_dir, plan)
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["trainer"]["max_epochs"] == 5
    history = yaml.safe_load((run_dir / CHANGES_NAME).read_text())
    assert history[0]["resumed_with"]["trainer.max_epochs"] == {"from": 2, "to": 5}
    with pytest.warns(UserWarning):
        commit_config(_config(max_epochs=7, progress_bar=True), run_dir,
                      check_rerun(_config(max_epochs=7, progress_bar=True), run_dir, resume=True))
    assert len(yaml.safe_load((run_dir / CHANGES_NAME).read_text())) == 2  # appended


def test_a_changed_patience_wins_over_the_restored_one():
    from types import SimpleNamespace

    from lightning.pytorch.callbacks import EarlyStopping

    from medmtl.training.resume import ResumeBookkeeping

    stopping = EarlyStopping(monitor="val/loss", patience=5)
    stopping.load_state_dict({**stopping.state_dict(), "patience": 2})  # what Lightning does on resume
    trainer = SimpleNamespace(loggers=[], callbacks=[stopping], max_epochs=None, lr_scheduler_configs=[])
    ResumeBookkeeping(patience=5).on_train_start(trainer, None)
    assert stopping.patience == 5


def test_other_changes_are_refused_with_the_keys(run_dir):
    raw = tiny_config()
    raw["model"]["encoder"]["options"]["width"] = 16
    raw["model"]["tasks"] = raw["model"]["tasks"][:2]
    raw["trainer"]["max_epochs"] = 4
    with pytest.raises(ConfigError) as info:
        check_rerun(config_from_dict(raw), run_dir, resume=True)
    text = str(info.value)
    assert "model.encoder.options.width: 8 -> 16" in text and "model.tasks.2: {'kind': 'reconstruction'" in text and "-> '<absent>'" in text
    assert "trainer.max_epochs" not in text.split("Only")[0]  # resumable: not listed as a refused change
    assert "new --out" in text and "--no-resume" in text


def test_old_key_names_in_the_stored_config_are_migrated(run_dir):
    stored = yaml.safe_load((run_dir / "config.yaml").read_text())
    stored["model"]["encoder"]["options"]["depth"] = stored["model"]["encoder"]["options"].pop("stages")
    (run_dir / "config.yaml").write_text(yaml.safe_dump(stored))
    with pytest.warns(FutureWarning, match="old names"):
        assert check_rerun(_config(), run_dir, resume=True).changes == {}


def test_no_resume_on_a_run_and_unreadable_stored_configs(run_dir):
    with pytest.raises(ConfigError, match="already holds a run.*delete"):
        check_rerun(_config(), run_dir, resume=False)
    (run_dir / "config.yaml").write_text("model: [unclosed\n")
    with pytest.raises(DataError, match="config.yaml: cannot be read as a run configuration"):
        check_rerun(_config(), run_dir, resume=True)
    (run_dir / "config.yaml").unlink()
    with pytest.raises(DataError, match="no config.yaml"):
        check_rerun(_config(), run_dir, resume=True)


def test_loading_a_run_with_an_unreadable_config_names_the_file(tmp_path):
    from medmtl.training.run import load_run

    with pytest.raises(DataError, match="is not a medmtl run directory"):
        load_run(tmp_path)
    (tmp_path / "config.yaml").write_text("model: [unclosed\n")
    with pytest.raises(DataError, match="config.yaml: cannot be read as a run configuration"):
        load_run(tmp_path)


def test_config_changes_lists_nested_and_list_keys():
    raw = tiny_config()
    raw["loss"] = {"weights": {"segmentation": 0.5}}
    changes = config_changes(_config(), config_from_dict(raw))
    assert changes == {"loss.weights.segmentation": ("<absent>", 0.5)}
    raw["model"]["tasks"][1]["loss"] = "dice"
    raw["model"]["tasks"].append({"kind": "regression"})
    changes = config_changes(_config(), config_from_dict(raw))
    assert changes["model.tasks.1.loss"][1] == "dice" and changes["model.tasks.3"][0] == "<absent>"
    assert changes["model.tasks.3"][1]["kind"] == "regression"


# ----------------------------------------------------------------------------------------------- lock
def test_lock_is_exclusive_and_released(tmp_path):
    folder = tmp_path / "run"
    with RunLock(folder) as lock:
        owner = json.loads(lock.path.read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with pytest.raises(ConfigError, match="in use: this process"):
            RunLock(folder).acquire()
    assert not (folder / LOCK_NAME).exists()
    with pytest.raises(RuntimeError), RunLock(folder):
        raise RuntimeError("training failed")
    assert not (folder / LOCK_NAME).exists()  # released on errors too


def test_live_lock_of_another_process_refuses_and_names_its_pid(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (folder / LOCK_NAME).write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname()}))
        with pytest.raises(ConfigError, match=f"process {sleeper.pid} on host"):
            RunLock(folder).acquire()
        (folder / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere"}))  # cannot be checked
        with pytest.raises(ConfigError, match="process 1 on host elsewhere"):
            RunLock(folder).acquire()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stale_lock_is_taken_over_with_a_warning(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(finished.stdout)
    (folder / LOCK_NAME).write_text(json.dumps({"pid": dead, "host": socket.gethostname()}))
    with pytest.warns(RuntimeWarning, match=f"stale lock.*{dead} no longer runs"):
        with RunLock(folder):
            assert json.loads((folder / LOCK_NAME).read_text())["pid"] == os.getpid()
    (folder / LOCK_NAME).write_text("garbage")  # e.g. cut short
    with pytest.warns(RuntimeWarning, match="names no process"), RunLock(folder):
        pass


# ------------------------------------------------------------------------------- interrupted writes
def test_partial_writes_are_removed_and_files_get_the_umask(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    leftovers = [tmp_path / ".metrics.json.k2j3h4.tmp", tmp_path / "checkpoints" / ".last.ckpt.x8y9.tmp"]
    keep = [tmp_path / "metrics.json", tmp_path / ".lock", tmp_path / "notes.tmp", tmp_path / "checkpoints" / "last.ckpt"]
    for path in leftovers + keep:
        path.write_text("x")
    assert sorted(clean_partial_writes(tmp_path)) == sorted(leftovers)
    assert all(path.exists() for path in keep) and not any(path.exists() for path in leftovers)

    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "a")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
        os.umask(0o002)
        atomic_write_text(tmp_path / "a.txt", "b")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o664
    finally:
        os.umask(old)


# ------------------------------------------------------------------------------ through the command line
@pytest.mark.slow
def test_rerun_through_the_cli(tiny_config_file, tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", str(tiny_config_file), "--out", str(out), "trainer.max_epochs=1",
                     "trainer.n_bootstrap=10", "--no-report")
    assert result.returncode == 0, result.stdout + result.stderr
    config_before = (out / "config.yaml").read_bytes()
    checkpoints = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / "checkpoints").iterdir()}

    # another model: refused before anything is written, and the run still evaluates
    result = run_cli("train", str(tiny_config_file), "--out", str(out), "trainer.max_epochs=1",
                     "trainer.n_bootstrap=10", "model.encoder.options.width=16", "--no-report")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "model.encoder.options.width: 8 -> 16" in result.stderr and "new --out" in result.stderr
    assert (out / "config.yaml").read_bytes() == config_before
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / "checkpoints").iterdir()} == checkpoints
    assert not (out / LOCK_NAME).exists()

    # a live lock refuses (before the model is built)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (out / LOCK_NAME).write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname()}))
        result = run_cli("train", str(tiny_config_file), "--out", str(out), "trainer.max_epochs=1",
                         "trainer.n_bootstrap=10", "--no-report")
        assert result.returncode == 2 and f"process {sleeper.pid}" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        sleeper.kill()
        sleeper.wait()

    # the lock's process is gone now (stale): taken over; more epochs resume and the change is recorded;
    # what interrupted atomic writes left behind is removed
    leftovers = [out / ".metrics.json.a1b2c3.tmp", out / "checkpoints" / ".last.ckpt.d4e5f6.tmp"]
    for path in leftovers:
        path.write_bytes(b"half")
    time.sleep(0.1)
    result = run_cli("train", str(tiny_config_file), "--out", str(out), "trainer.max_epochs=2",
                     "trainer.n_bootstrap=10", "--no-report")
    assert result.returncode == 0, result.stdout + result.stderr
    log = result.stdout + result.stderr
    assert "stale lock" in log and "Restored all states from the checkpoint" in log
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 2 * 3
    assert yaml.safe_load((out / "config.yaml").read_text())["trainer"]["max_epochs"] == 2
    history = yaml.safe_load((out / CHANGES_NAME).read_text())
    assert history[-1]["resumed_with"] == {"trainer.max_epochs": {"from": 1, "to": 2}}
    assert not (out / LOCK_NAME).exists() and not any(path.exists() for path in leftovers)
    assert {int(row["epoch"]) for row in csv.DictReader((out / "logs" / "csv" / "metrics.csv").open())} == {0, 1}

    result = run_cli("evaluate", str(out), "--split", "val")
    assert result.returncode == 0, result.stdout + result.stderr
