"""Timing training steps the way the trainer takes them (shared by the step-time benchmarks)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from medmtl.training.lightning_module import MultiTaskModule


def training_stepper(module: MultiTaskModule, batch: dict) -> Callable[[], float]:
    """A function that takes one training step the way the trainer does — the module's own ``_step``
    (only the heads of active tasks; per-task gradients for gradient balancers), backward and an
    AdamW step — and returns its duration in seconds."""
    module.log = lambda *args, **kwargs: None  # no trainer here: logging is not what is timed
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
    module.train()

    def step() -> float:
        start = time.perf_counter()
        total, _, _ = module._step(batch, module.balancer.active_tasks(), module.balancer.gradients)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        return time.perf_counter() - start

    return step


def time_training_steps(module: MultiTaskModule, batch: dict, steps: int, warmup: int) -> list[float]:
    """Seconds of each of ``steps`` training steps after ``warmup`` untimed ones (:func:`training_stepper`)."""
    step = training_stepper(module, batch)
    for _ in range(warmup):
        step()
    return [step() for _ in range(steps)]


def time_interleaved(steppers: dict[str, Callable[[], float]], steps: int, warmup: int) -> dict[str, list[float]]:
    """Step times of several models measured in turns — one step of each, in a rotating order, per
    round — so that the machine's load drifts over all of them alike and their ratios stay fair."""
    names = list(steppers)
    for _ in range(warmup):
        for name in names:
            steppers[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(steps):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(steppers[name]())
    return times
