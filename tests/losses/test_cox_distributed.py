"""The Cox loss over the global batch under a 2-process gloo group (``distributed_cox_loss`` and
``SurvivalTask`` in training): the loss equals the one-process value on the concatenated batch on
every rank, and after averaging the parameters' gradient over the ranks (as DDP does) it equals the
one-process gradient. Tolerance: 1e-10 absolute, in float64.

One pair of processes runs every distributed check (spawning costs seconds); the parent computes
the one-process expectations.
"""

from __future__ import annotations

import socket
import traceback

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from medmtl.data.collate import collate_samples
from medmtl.losses import cox_partial_likelihood_loss, distributed_cox_loss, gather_survival
from medmtl.tasks import SurvivalTask

TOL = 1e-10
W0 = [0.3, -0.7]
# 8 samples: tied times within and across ranks (3.0, 5.0), censoring; rank 0 holds 5, rank 1 holds 3
X = [[0.5, 1.0], [-1.0, 0.2], [0.3, -0.4], [1.2, 0.7], [-0.6, -1.1], [0.9, -0.3], [0.1, 0.8], [-0.2, 0.4]]
TIME = [5.0, 3.0, 3.0, 8.0, 2.0, 3.0, 5.0, 1.0]
EVENT = [1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0]
SPLITS = {"5+3": ((0, 5), (5, 8)), "4+0": ((0, 4), (4, 4))}
# SurvivalTask steps per rank: (x row, time, event) per sample, None = not labelled for survival
STEPS = [
    ([(0, 5.0, 1.0), (1, None, None), (2, 3.0, 0.0)], [(3, 3.0, 1.0), (4, 7.0, 1.0)]),
    ([(5, 2.0, 1.0), (6, 4.0, 1.0)], [(7, None, None)]),  # rank 1: nothing labelled (no target key)
    ([(0, None, None)], [(1, None, None), (2, None, None)]),  # nobody labelled: None everywhere
    ([(3, 6.0, 0.0)], [(4, 1.5, 1.0), (5, 6.0, 1.0), (6, 9.0, 0.0)]),
]
MEMORY = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tensors(lo: int, hi: int, events: list[float] = EVENT):
    x = torch.tensor(X, dtype=torch.float64)[lo:hi].reshape(-1, 2)
    return x, torch.tensor(TIME[lo:hi], dtype=torch.float64), torch.tensor(events[lo:hi], dtype=torch.float64)


def _batch(rows):
    samples = []
    for index, time, event in rows:
        sample = {"image": torch.zeros(1, 2, 2), "name": f"s{index}"}
        if time is not None:
            sample["survival"] = torch.tensor([time, event])
        samples.append(sample)
    return collate_samples(samples), torch.tensor([X[index] for index, _, _ in rows], dtype=torch.float64)


def _task_steps(task: SurvivalTask, steps, reduce_grad) -> list[tuple]:
    """(loss or None, parameter gradient, local gradient, bank) after each step."""
    out = []
    for batch, x in steps:
        w = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
        loss = task.loss((x @ w).unsqueeze(1), batch)
        if loss is None:
            out.append((None, None, None, task.bank.tolist()))
            continue
        loss.backward()
        local = w.grad.clone()
        out.append((float(loss.detach()), reduce_grad(w.grad).tolist(), local.tolist(), task.bank.tolist()))
    return out


def _worker(rank: int, port: int, queue) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        def averaged(grad):  # what DDP does with the ranks' gradients
            grad = grad.clone()
            dist.all_reduce(grad)
            return grad / dist.get_world_size()

        results = {}
        for split, bounds in SPLITS.items():
            for ties in ("efron", "breslow"):
                x, time, event = _tensors(*bounds[rank])
                w = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
                loss = distributed_cox_loss(x @ w, time, event, ties=ties)
                loss.backward()
                results[(split, ties)] = (float(loss.detach()), averaged(w.grad).tolist())
        x, time, _ = _tensors(*SPLITS["5+3"][rank])
        w = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
        loss = distributed_cox_loss(x @ w, time, torch.zeros_like(time))
        loss.backward()
        results["no events"] = (float(loss.detach()), averaged(w.grad).tolist())
        _, empty_time, empty_event = _tensors(0, 0)
        gathered = gather_survival(empty_time.clone(), empty_time, empty_event)  # nobody has a sample
        results["all empty"] = (gathered.risk.numel(), gathered.world)
        for memory in (0, MEMORY):
            task = SurvivalTask(memory=memory)
            task.train()
            results[("task", memory)] = _task_steps(task, [_batch(step[rank]) for step in STEPS], averaged)
        queue.put((rank, results, None))
    except Exception:  # report instead of leaving the parent waiting
        queue.put((rank, None, traceback.format_exc()))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks():
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    try:
        items = [queue.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=30)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
    errors = [error for _, _, error in items if error]
    assert not errors, "\n".join(errors)
    assert all(p.exitcode == 0 for p in procs)
    return {rank: results for rank, results, _ in items}


def _one_process(lo: int, hi: int, ties: str, events: list[float] = EVENT):
    x, time, event = _tensors(lo, hi, events)
    w = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
    loss = cox_partial_likelihood_loss(x @ w, time, event, ties=ties)
    loss.backward()
    return float(loss.detach()), w.grad


@pytest.mark.parametrize("split", list(SPLITS))
@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_global_loss_and_ddp_averaged_gradient_equal_one_process(ranks, split, ties):
    expected_loss, expected_grad = _one_process(SPLITS[split][0][0], SPLITS[split][1][1], ties)
    assert float(expected_grad.abs().sum()) > 0.1  # a real gradient to compare
    for rank in (0, 1):
        loss, grad = ranks[rank][(split, ties)]
        assert loss == pytest.approx(expected_loss, abs=TOL)
        assert torch.allclose(torch.tensor(grad, dtype=torch.float64), expected_grad, atol=TOL, rtol=0)
    assert ranks[0][(split, ties)][0] == ranks[1][(split, ties)][0]  # bitwise the same value


def test_global_batch_without_events_is_zero_not_nan(ranks):
    for rank in (0, 1):
        loss, grad = ranks[rank]["no events"]
        assert loss == 0.0
        assert grad == [0.0, 0.0]
    assert ranks[0]["all empty"] == ranks[1]["all empty"] == (0, 2)


@pytest.mark.parametrize("memory", [0, MEMORY])
def test_survival_task_under_ddp_matches_one_process_on_the_concatenated_batches(ranks, memory):
    task = SurvivalTask(memory=memory)
    task.train()
    expected = _task_steps(task, [_batch(step[0] + step[1]) for step in STEPS], lambda grad: grad)
    for rank in (0, 1):
        got = ranks[rank][("task", memory)]
        for step, ((loss, grad, local, bank), (e_loss, e_grad, _, e_bank)) in enumerate(zip(got, expected)):
            if e_loss is None:
                assert loss is None, f"step {step}"
            else:
                assert loss == pytest.approx(e_loss, abs=TOL), f"step {step}"
                assert grad == pytest.approx(e_grad, abs=TOL), f"step {step}"
            assert torch.allclose(torch.tensor(bank, dtype=torch.float64).reshape(-1, 3),
                                  torch.tensor(e_bank, dtype=torch.float64).reshape(-1, 3), atol=TOL, rtol=0)
    # rank 1 had no labelled sample at step 1: the global loss, with a zero local gradient
    loss, _, local, _ = ranks[1][("task", memory)][1]
    assert loss is not None and local == [0.0, 0.0]
    assert ranks[0][("task", memory)][1][0] == loss
    # every rank's bank is the same (the gathered global rows), step after step
    assert [s[3] for s in ranks[0][("task", memory)]] == [s[3] for s in ranks[1][("task", memory)]]
    if memory:
        assert len(ranks[0][("task", memory)][-1][3]) == MEMORY


def test_without_distributed_it_is_cox_partial_likelihood_loss_exactly():
    assert not (dist.is_available() and dist.is_initialized())
    x, time, event = _tensors(0, 8)
    for ties in ("efron", "breslow"):
        for reduction in ("mean", "sum"):
            w1 = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
            w2 = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
            got = distributed_cox_loss(x @ w1, time, event, ties=ties, reduction=reduction)
            want = cox_partial_likelihood_loss(x @ w2, time, event, ties=ties, reduction=reduction)
            got.backward()
            want.backward()
            assert torch.equal(got, want) and torch.equal(w1.grad, w2.grad)
    risk = x @ torch.tensor(W0, dtype=torch.float64)
    gathered = gather_survival(risk, time, event)
    assert gathered.risk is risk and gathered.world == 1 and gathered.start == 0
    with pytest.raises(ValueError, match="time must be finite"):
        distributed_cox_loss(risk, -time, event)
