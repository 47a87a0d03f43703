"""Timing training steps the way the trainer takes them (shared by the step-time benchmarks)."""

from __future__ import annotations

import time

import torch

from medmtl.training.lightning_module import MultiTaskModule


def time_training_steps(module: MultiTaskModule, batch: dict, steps: int, warmup: int) -> list[float]:
    """Seconds of each of ``steps`` training steps after ``warmup`` untimed ones: the module's own
    ``_step`` (only the heads of active tasks; per-task gradients for gradient balancers), backward
    and an AdamW step."""
    module.log = lambda *args, **kwargs: None  # no trainer here: logging is not what is timed
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
    module.train()
    times = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        total, _, _ = module._step(batch, module.balancer.active_tasks(), module.balancer.gradients)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    return times
