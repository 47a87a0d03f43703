"""Every loss balancer trains the same parameters under DDP (2 gloo CPU processes) as in one process.

For every entry of ``medmtl.balancing.BALANCERS`` (gradient-level ones at ``level: shared`` and
``level: representation``) a tiny model (``small_cnn`` with GroupNorm — BatchNorm statistics per
rank legitimately differ from one-process ones — a classification head and two regression heads)
is trained for ``EPOCHS × STEPS_PER_EPOCH = 6`` SGD steps (momentum 0.9, as ``optim.optimizer: sgd``)
through ``lightning.Trainer``:

* with ``DDPStrategy(process_group_backend="gloo", find_unused_parameters=True)`` (what
  ``trainer.strategy=ddp`` builds) on 2 processes, each rank getting its half (4 samples) of every
  fixed global batch of 8;
* in one process on the same global batches of 8, from the same initial weights.

Every sample is labelled for every task and the task losses are per-sample means over equally
sized rank batches, so DDP's gradient average is exactly the global-batch gradient: the final
parameters, the balancer's parameters and buffers, and the weights ``current_weights()`` reports
at every step must agree. The two ranks must agree with each other exactly (bit for bit): the
per-task gradients are made global by one collective per step and every rank computes the
weights from the same numbers. Three epochs of two steps: DWA's epoch averages (two batches
each) change its weights in the third epoch; the trainer's per-epoch, per-rank reseeding
(``EpochSeeding``) is used as in ``medmtl train``, so RLW's and PCGrad's random draws are checked
too. Two more DDP-only cases leave rank 0 one batch per epoch without any label: the ranks must
still agree exactly (the balancer's state steps on the rank without losses too).

Tolerance: float64 (``precision="64-true"``) with relative tolerance ``RTOL = 1e-8`` (of each
tensor's largest value; weights: of max(1, |w|)). The only legitimate differences are summation
orders (convolutions over 4 vs 8 samples, the all-reduce, the representation-level matrix whose
columns are the two ranks' maps concatenated: a column permutation of the one-process matrix,
so DB-MTL's per-column EMA buffer is compared after that permutation), i.e. round-off of ~1e-16,
amplified by the iterative solvers and 6 SGD steps: measured here ≤ 1e-10 (Nash-MTL's Newton
steps at ``level: shared``), ~1e-15 for every other balancer. A real difference (a rank-local
value, different random draws, a mis-scaled gradient) is of the order of the parameters'
movement, which the test checks is ≥ 1e-3 of each parameter tensor's scale: the bugs this test
found showed as 1e-6 (DWA, PCGrad) to 1e-2 (RLW) relative.

Lightning's Trainer is driven in externally launched processes (``LOCAL_RANK``/``WORLD_SIZE``/
``MASTER_*`` set, the gloo group created by the worker: Lightning's ``LightningEnvironment`` then
neither spawns processes nor re-initialises the group), so the real ``DDPStrategy`` path (DDP
wrapper, buffer broadcast, ``find_unused_parameters``, hooks) is what is tested. One pair of
processes loops over all balancers (a fresh model, module and Trainer each); the one-process
references are computed in the test process meanwhile.
"""

from __future__ import annotations

import os
import socket
import traceback
import warnings
from datetime import timedelta
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers import tiny_config
from lightning.pytorch import Callback
from lightning.pytorch.strategies import DDPStrategy
from torch.utils.data import DataLoader

from medmtl.balancing import BALANCERS, create_balancer
from medmtl.builders import build_model
from medmtl.config import OptimConfig, config_from_dict
from medmtl.data.collate import collate_samples
from medmtl.training.lightning_module import (
    MultiTaskModule,
    _drawing_as_rank0,
    _rank0_rng_state,
)
from medmtl.training.seeding import EpochSeeding

WORLD = 2
PER_RANK = 4  # samples per rank and step: global batches of 8
STEPS_PER_EPOCH = 2
EPOCHS = 3  # DWA applies non-trivial weights from the third epoch on
SEED = 7
LR = 0.05
RTOL = 1e-8
MOVED = 1e-3  # every parameter tensor must move by at least this much of its scale
TASKS = [
    {"kind": "classification", "name": "cls"},
    {"kind": "regression", "name": "reg", "target": "value"},
    {"kind": "regression", "name": "score", "target": "score", "loss": "huber"},
]
FIXED_WEIGHTS = {"cls": 0.5, "reg": 2.0, "score": 1.0}
CONSTANT_WEIGHTS = {"fixed", "equal"}  # every other balancer must change its weights during the 6 steps
#: option sets besides the defaults (Nash-MTL: the reuse between solves and the warm start)
EXTRA_OPTIONS: dict[str, list[dict]] = {"nash_mtl": [{"update_weights_every": 2}]}
#: DDP only, ranks against each other: rank 0's second batch of every epoch has no label at all
#: (the other rank's has), so only rank 1 has losses; the balancer's state must still step on both
PARTIAL_CASES = [("pcgrad[seed=0,level=shared]+unlabelled", "pcgrad", {"seed": 0, "level": "shared"}),
                 ("nash_mtl[update_weights_every=2,level=representation]+unlabelled", "nash_mtl",
                  {"update_weights_every": 2, "level": "representation"}),
                 ("famo+unlabelled", "famo", {})]  # a loss-level balancer with a collective in forward
UNLABELLED_STEP = 1


def _cases() -> list[tuple[str, str, dict]]:
    """``(id, balancer, options)`` for every registered balancer (both levels for gradient ones)."""
    cases = []
    for name, spec in sorted(BALANCERS.items()):
        levels = ["shared", "representation"] if "level" in spec.options.model_fields else [None]
        for extra in [{}, *EXTRA_OPTIONS.get(name, [])]:
            for level in levels:
                options = {**extra, **({"level": level} if level else {})}
                label = ",".join(f"{k}={v}" for k, v in options.items())
                cases.append((f"{name}[{label}]" if label else name, name, options))
    return cases


def _samples() -> list[dict]:
    g = torch.Generator().manual_seed(1)
    return [{"image": torch.rand(1, 16, 16, generator=g), "name": f"s{i}", "label": torch.tensor(i % 2),
             "value": torch.randn((), generator=g), "score": 2 * torch.randn((), generator=g)}
            for i in range(STEPS_PER_EPOCH * WORLD * PER_RANK)]


def _rank_share(samples: list[dict], rank: int, unlabelled: bool = False) -> list[dict]:
    """Rank ``rank``'s half of every global batch, in step order (``unlabelled``: rank 0's batch
    ``UNLABELLED_STEP`` without targets)."""
    size = WORLD * PER_RANK
    share = [samples[step * size + rank * PER_RANK + j] for step in range(STEPS_PER_EPOCH) for j in range(PER_RANK)]
    if unlabelled and rank == 0:
        bare = slice(UNLABELLED_STEP * PER_RANK, (UNLABELLED_STEP + 1) * PER_RANK)
        share[bare] = [{"image": s["image"], "name": s["name"]} for s in share[bare]]
    return share


class _Weights(Callback):
    """``current_weights()`` after every training step (before DWA's epoch end, which follows it)."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps.append(pl_module.balancer.current_weights())


def _model():
    raw = tiny_config()
    raw["data"]["image_size"] = 16
    raw["model"] = {"encoder": {"name": "small_cnn", "options": {"width": 4, "stages": 2, "norm": "group"}},
                    "tasks": TASKS}
    torch.manual_seed(0)
    return build_model(config_from_dict(raw))


def _rank_major_columns() -> torch.Tensor:
    """Under DDP the representation-level matrix holds rank 0's maps (every scale), then rank 1's: the
    one-process matrix's columns in this order (a permutation: same Gram matrix, same weights)."""
    with torch.no_grad():
        sizes = [f[0].numel() for f in _model().encoder(torch.zeros(1, 1, 16, 16))]
    starts = torch.tensor([0, *sizes[:-1]]).cumsum(0) * WORLD * PER_RANK
    return torch.cat([torch.arange(start + rank * PER_RANK * size, start + (rank + 1) * PER_RANK * size)
                      for rank in range(WORLD) for start, size in zip(starts.tolist(), sizes)])


def _train(name: str, options: dict, samples: list[dict], devices: int) -> dict:
    """Train a fresh model with balancer ``name`` on ``samples`` (the batches of this process)."""
    model = _model()
    weights = FIXED_WEIGHTS if BALANCERS[name].cls.uses_weights else None
    balancer = create_balancer(name, list(model.tasks), weights, options)
    module = MultiTaskModule(model, balancer, OptimConfig(optimizer="sgd", lr=LR, weight_decay=0.0, scheduler="none"))
    initial = {k: v.detach().clone().double() for k, v in module.state_dict().items()}
    strategy = (DDPStrategy(process_group_backend="gloo", find_unused_parameters=True, timeout=timedelta(seconds=60))
                if devices > 1 else "auto")
    recorder = _Weights()
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy=strategy, precision="64-true",
                        max_epochs=EPOCHS, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, use_distributed_sampler=False,
                        callbacks=[EpochSeeding(SEED), recorder])
    loader = DataLoader(samples, batch_size=len(samples) // STEPS_PER_EPOCH, shuffle=False, collate_fn=collate_samples)
    trainer.fit(module, loader)
    assert trainer.global_step == EPOCHS * STEPS_PER_EPOCH and trainer.world_size == devices
    return {"initial": initial, "state": {k: v.detach().clone() for k, v in module.state_dict().items()},
            "weights": recorder.steps}


def _worker(rank: int, port: int, cases: list[tuple[str, str, dict]], unlabelled: set[str], out: str) -> None:
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(WORLD), "RANK": str(rank),
           "LOCAL_RANK": str(rank), "NODE_RANK": "0"}
    os.environ.update(env)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=timedelta(seconds=60))
    results: dict[str, dict | str] = {}
    try:
        samples = _samples()
        for case_id, name, options in cases:
            os.environ.update(env)  # Lightning's environment teardown removes WORLD_SIZE
            try:
                results[case_id] = _train(name, options, _rank_share(samples, rank, case_id in unlabelled), WORLD)
            except Exception:  # noqa: BLE001 - reported by the test, the other balancers still run
                results[case_id] = traceback.format_exc()
            torch.save(results, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    a, b = a.double(), b.double()
    scale = max(float(a.abs().max()) if a.numel() else 0.0, 1.0e-3)
    return a.shape == b.shape and bool(((a - b).abs() <= RTOL * scale).all())


def _nan_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a.nan_to_num(-7.0), b.nan_to_num(-7.0))


def _rank_differences(case_id: str, zero: dict, one: dict) -> list[str]:
    """The two ranks must hold identical state (parameters, buffers) and apply identical weights at every step."""
    failures = []
    diff = sorted(set(zero["state"]) ^ set(one["state"]))
    diff += [k for k in zero["state"] if k in one["state"] and not _nan_equal(zero["state"][k], one["state"][k])]
    if diff:
        failures.append(f"{case_id}: the ranks differ in {diff}")
    if zero["weights"] != one["weights"]:
        failures.append(f"{case_id}: the ranks applied different weights: {zero['weights']} vs {one['weights']}")
    return failures


@pytest.mark.slow
def test_every_balancer_gives_the_one_process_parameters_under_ddp(tmp_path):
    cases = _cases()
    unlabelled = {case_id for case_id, _, _ in PARTIAL_CASES}
    ctx = mp.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(rank, port, cases + PARTIAL_CASES, unlabelled, str(tmp_path)))
             for rank in range(WORLD)]
    for p in procs:
        p.start()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            samples = _samples()
            reference = {case_id: _train(name, options, samples, 1) for case_id, name, options in cases}
    finally:
        torch.set_num_threads(threads)
        for p in procs:
            p.join(timeout=600)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0] * WORLD
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=False) for rank in range(WORLD)]

    columns = _rank_major_columns()
    failures = []
    for case_id, name, options in cases + PARTIAL_CASES:
        got = [r.get(case_id, "missing") for r in ranks]
        errors = [g for g in got if isinstance(g, str)]
        if errors:
            failures.append(f"{case_id}: a rank failed:\n{errors[0]}")
            continue
        zero, one = got
        failures += _rank_differences(case_id, zero, one)
        if case_id in unlabelled:  # no one-process reference: DDP averages 0 and rank 1's means
            continue
        ref = reference[case_id]
        # DDP against one process
        assert len(ref["weights"]) == EPOCHS * STEPS_PER_EPOCH
        for step, (a, b) in enumerate(zip(ref["weights"], zero["weights"])):
            if a.keys() != b.keys() or not all(abs(a[k] - b[k]) <= RTOL * max(1.0, abs(a[k])) for k in a):
                failures.append(f"{case_id}: weights at step {step}: one process {a}, DDP {b}")
                break
        if set(ref["state"]) != set(zero["state"]):
            failures.append(f"{case_id}: state keys differ: {set(ref['state']) ^ set(zero['state'])}")
            continue
        for key, value in ref["state"].items():
            other = zero["state"][key]
            if options.get("level") == "representation" and key == "balancer.grad_ema" and value.numel():
                value = value[:, columns]  # DB-MTL's per-column EMA, in DDP's column order
            if value.is_floating_point() and not value.isnan().any():
                if not _close(value, other):
                    err = float((value.double() - other.double()).abs().max()) if value.shape == other.shape else None
                    failures.append(f"{case_id}: {key} differs from one process by {err} "
                                    f"(scale {float(value.abs().max()):.3g})")
            elif not _nan_equal(value, other):
                failures.append(f"{case_id}: {key}: one process {value.tolist()}, DDP {other.tolist()}")
        # the test can fail: every parameter tensor moved, by far more than the tolerance, and the weights adapted
        if name not in CONSTANT_WEIGHTS and len({tuple(w.values()) for w in ref["weights"]}) < 2:
            failures.append(f"{case_id}: the weights never changed: {ref['weights'][0]}")
        for key, value in ref["state"].items():
            if key.startswith("model.") and value.is_floating_point():
                start = ref["initial"][key]
                moved = float((value - start).abs().max()) / max(float(start.abs().max()), 1e-3)
                if moved < MOVED:
                    failures.append(f"{case_id}: {key} moved only {moved:.2g} of its scale")
    assert not failures, "\n".join(failures)


def test_cases_cover_every_registered_balancer_and_both_levels():
    """The cases of the DDP test follow the registry (new balancers are covered when registered)."""
    cases = _cases()
    assert {name for _, name, _ in cases} == set(BALANCERS)
    for name, spec in BALANCERS.items():
        if "level" in spec.options.model_fields:
            assert {o.get("level") for _, n, o in cases if n == name} == {"shared", "representation"}


def test_rank_local_buffers_are_kept_out_of_ddps_broadcast_and_balancers_draw_as_rank_0():
    """The two DDP fixes in one process (fast): DDP is told to leave every balancer's declared
    rank-local buffers (DWA's epoch sums) alone, and a balancer's draws follow rank 0's generator
    state while this rank's own stream is left where it was."""
    for name in BALANCERS:
        balancer = create_balancer(name, ["a", "b"])
        assert set(balancer.local_buffers) <= dict(balancer.named_buffers()).keys(), name
    module = MultiTaskModule(_model(), create_balancer("dwa", [t["name"] for t in TASKS]))
    assert module._ddp_params_and_buffers_to_ignore == ["balancer.epoch_sum", "balancer.epoch_count"]
    assert set(module._ddp_params_and_buffers_to_ignore) <= dict(module.named_buffers()).keys()
    assert _rank0_rng_state() is None  # one process: nothing to share, draws as before
    torch.manual_seed(11)
    rank0 = torch.get_rng_state()
    expected = torch.randn(3)
    torch.manual_seed(12)
    own = torch.randn(3)
    torch.manual_seed(12)
    with _drawing_as_rank0(rank0):
        assert torch.equal(torch.randn(3), expected)
    assert torch.equal(torch.randn(3), own)
