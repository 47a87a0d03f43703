"""task_gradients under a 2-process gloo group: every rank gets the same global [T, D] matrix."""

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from medmtl.training.task_gradients import task_gradients


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _losses(rank, w):
    x = torch.tensor([1.0 + rank, 2.0 - rank])
    losses = {"a": (w * x).sum() ** 2}
    if rank == 0:  # task b labelled on rank 0 only
        losses["b"] = (w * x).sum() * 3.0
    return losses


def _worker(rank, port, queue):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        w = torch.nn.Parameter(torch.tensor([0.5, -0.25]))
        losses, grads, _ = task_gradients(_losses(rank, w), [w], ["a", "b"], "shared")
        feats = w * torch.tensor([1.0, 1.0 + rank])
        rep_losses = {"a": feats.sum(), "b": (feats ** 2).sum()}
        _, rep, _ = task_gradients(rep_losses, [feats], ["a", "b"], "representation")
        queue.put((rank, list(losses), [float(v) for v in losses.values()], grads.tolist(), rep.tolist()))
    finally:
        dist.destroy_process_group()


def test_ddp_task_gradients_are_global_and_identical_on_every_rank():
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = {item[0]: item[1:] for item in (queue.get(timeout=60) for _ in procs)}
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert results[0] == results[1]  # names, loss values, both matrices
    names, values, grads, rep = results[0]
    assert names == ["a", "b"]
    # by hand: the mean over ranks of each rank's gradient (b: zero on rank 1)
    expected = torch.zeros(2, 2)
    for rank in range(2):
        w = torch.nn.Parameter(torch.tensor([0.5, -0.25]))
        for i, (name, loss) in enumerate(_losses(rank, w).items()):
            expected[i] += torch.autograd.grad(loss, [w])[0] / 2
    assert torch.allclose(torch.tensor(grads), expected)
    assert values[1] == pytest.approx(float(_losses(0, torch.tensor([0.5, -0.25]))["b"]))  # mean where present
    assert torch.tensor(rep).shape == (2, 4)  # representation rows: both ranks' maps concatenated
