"""Cox partial likelihood loss: lifelines (Efron) on real TCGA data, a plain NumPy loop (Breslow),
gradients, and edge cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from medmtl.losses import CoxLoss, cox_partial_likelihood_loss
from medmtl.paths import data_root


def _tcga_cohort(cancer_type: str) -> pd.DataFrame:
    root = data_root()
    if root is None:
        pytest.skip("no shared data folder (set MEDMTL_DATA or provide ../shared/data)")
    path = root / "survival" / "tcga_cdr_survival.csv"
    if not path.is_file():
        pytest.skip(f"real survival data not found at {path}")
    data = pd.read_csv(path)
    data = data[data["type"] == cancer_type]
    data = data.dropna(subset=["OS", "OS.time", "age_at_initial_pathologic_diagnosis", "gender"])
    data = data[data["OS.time"] > 0]
    age = data["age_at_initial_pathologic_diagnosis"].to_numpy(float)
    return pd.DataFrame({
        "T": data["OS.time"].to_numpy(float),
        "E": data["OS"].to_numpy(int),
        "age": (age - age.mean()) / age.std(),
        "male": (data["gender"] == "MALE").to_numpy(float),
    })


def _loglik_loop(risk: np.ndarray, time: np.ndarray, event: np.ndarray, ties: str) -> float:
    """Straightforward Breslow / Efron log partial likelihood, one distinct event time at a time."""
    total = 0.0
    for t in np.unique(time[event == 1]):
        dead = (time == t) & (event == 1)
        at_risk = time >= t
        d = int(dead.sum())
        s_r = np.exp(risk[at_risk]).sum()
        s_d = np.exp(risk[dead]).sum()
        total += risk[dead].sum()
        for l in range(d):
            total -= np.log(s_r - (l / d) * s_d) if ties == "efron" else np.log(s_r)
    return float(total)


def _tensors(*arrays: np.ndarray) -> list[torch.Tensor]:
    return [torch.tensor(a, dtype=torch.float64) for a in arrays]


@pytest.mark.parametrize("cancer_type", ["GBM", "LUAD"])
def test_efron_matches_lifelines_on_tcga(cancer_type: str) -> None:
    from lifelines import CoxPHFitter

    df = _tcga_cohort(cancer_type)
    event_times = df.loc[df["E"] == 1, "T"]
    assert event_times.duplicated().any(), "the cohort should have tied event times"
    cph = CoxPHFitter(penalizer=0.0).fit(df, duration_col="T", event_col="E")
    # lifelines standardises internally but reports coefficients on the original scale; the
    # partial likelihood is invariant to shifting the linear predictor, so X @ beta suffices.
    risk = df[["age", "male"]].to_numpy() @ cph.params_[["age", "male"]].to_numpy()
    r, t, e = _tensors(risk, df["T"].to_numpy(), df["E"].to_numpy())
    loglik = -cox_partial_likelihood_loss(r, t, e, ties="efron", reduction="sum").item()
    assert loglik == pytest.approx(cph.log_likelihood_, rel=1e-6)
    assert loglik == pytest.approx(_loglik_loop(risk, df["T"].to_numpy(), df["E"].to_numpy(), "efron"), rel=1e-10)
    breslow = -cox_partial_likelihood_loss(r, t, e, ties="breslow", reduction="sum").item()
    assert breslow != pytest.approx(loglik, rel=1e-9)  # ties make the two differ


def test_breslow_matches_loop_and_statsmodels_on_tcga() -> None:
    df = _tcga_cohort("GBM")
    x = df[["age", "male"]].to_numpy()
    beta = np.array([0.3, -0.2])
    risk = x @ beta
    r, t, e = _tensors(risk, df["T"].to_numpy(), df["E"].to_numpy())
    loglik = -cox_partial_likelihood_loss(r, t, e, ties="breslow", reduction="sum").item()
    assert loglik == pytest.approx(_loglik_loop(risk, df["T"].to_numpy(), df["E"].to_numpy(), "breslow"), rel=1e-10)
    try:
        from statsmodels.duration.hazard_regression import PHReg
    except ImportError:
        return  # statsmodels is optional; the loop above is the reference
    model = PHReg(df["T"].to_numpy(), x, status=df["E"].to_numpy(), ties="breslow")
    assert loglik == pytest.approx(model.loglike(beta), rel=1e-8)


@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_matches_loop_on_random_tied_data(ties: str) -> None:
    rng = np.random.default_rng(0)
    n = 60
    time = rng.integers(1, 12, n).astype(float)
    event = rng.integers(0, 2, n).astype(float)
    risk = rng.normal(scale=2.0, size=n)
    r, t, e = _tensors(risk, time, event)
    total = cox_partial_likelihood_loss(r, t, e, ties=ties, reduction="sum").item()
    assert -total == pytest.approx(_loglik_loop(risk, time, event, ties), rel=1e-10)
    mean = cox_partial_likelihood_loss(r, t, e, ties=ties).item()
    assert mean == pytest.approx(total / event.sum(), rel=1e-12)


def test_efron_equals_breslow_without_ties() -> None:
    rng = np.random.default_rng(1)
    time = rng.permutation(50).astype(float) + 1.0
    event = (rng.random(50) < 0.6).astype(float)
    r, t, e = _tensors(rng.normal(size=50), time, event)
    efron = cox_partial_likelihood_loss(r, t, e, ties="efron")
    breslow = cox_partial_likelihood_loss(r, t, e, ties="breslow")
    torch.testing.assert_close(efron, breslow, rtol=1e-12, atol=1e-12)


def test_stable_for_large_risks() -> None:
    time = torch.tensor([1.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    event = torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    risk = torch.tensor([800.0, 790.0, -700.0, 900.0], dtype=torch.float64, requires_grad=True)
    for ties in ("breslow", "efron"):
        loss = cox_partial_likelihood_loss(risk, time, event, ties=ties)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(risk.grad).all()
        risk.grad = None
    shift = cox_partial_likelihood_loss(risk.detach() - 800.0, time, event)
    torch.testing.assert_close(cox_partial_likelihood_loss(risk.detach(), time, event), shift)


@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_gradcheck(ties: str) -> None:
    g = torch.Generator().manual_seed(0)
    time = torch.randint(1, 6, (12,), generator=g).double()  # ties
    event = torch.randint(0, 2, (12,), generator=g).double()
    event[0] = 1.0
    risk = torch.randn(12, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda r: cox_partial_likelihood_loss(r, time, event, ties=ties), (risk,))


def test_no_events_gives_zero_with_grad() -> None:
    risk = torch.randn(5, dtype=torch.float64, requires_grad=True)
    loss = cox_partial_likelihood_loss(risk, torch.arange(1.0, 6.0), torch.zeros(5))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(risk.grad).all() and (risk.grad == 0).all()


def test_single_sample() -> None:
    risk = torch.tensor([0.7], requires_grad=True)
    loss = cox_partial_likelihood_loss(risk, torch.tensor([3.0]), torch.tensor([1.0]))
    assert loss.item() == pytest.approx(0.0, abs=1e-7)  # log(e^r / e^r)
    loss.backward()
    assert torch.isfinite(risk.grad).all()
    zero = cox_partial_likelihood_loss(torch.tensor([0.7]), torch.tensor([3.0]), torch.tensor([0.0]))
    assert zero.item() == 0.0


def test_accepts_bool_and_int_events_and_module() -> None:
    risk = torch.tensor([0.1, -0.3, 0.5, 0.2])
    time = torch.tensor([2.0, 1.0, 4.0, 3.0])
    ref = cox_partial_likelihood_loss(risk, time, torch.tensor([1.0, 0.0, 1.0, 1.0]))
    torch.testing.assert_close(cox_partial_likelihood_loss(risk, time, torch.tensor([True, False, True, True])), ref)
    torch.testing.assert_close(cox_partial_likelihood_loss(risk, time, torch.tensor([1, 0, 1, 1])), ref)
    module = CoxLoss(ties="breslow", reduction="sum")
    assert module.ties == "breslow" and module.reduction == "sum"
    torch.testing.assert_close(module(risk, time, torch.tensor([1, 0, 1, 1])),
                               cox_partial_likelihood_loss(risk, time, torch.tensor([1, 0, 1, 1]),
                                                           ties="breslow", reduction="sum"))


def test_invalid_inputs_raise() -> None:
    risk = torch.zeros(3)
    time = torch.tensor([1.0, 2.0, 3.0])
    event = torch.tensor([1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="same N"):
        cox_partial_likelihood_loss(risk, time[:2], event)
    with pytest.raises(ValueError, match="same N"):
        cox_partial_likelihood_loss(risk[:, None], time, event)
    with pytest.raises(ValueError, match="time must be"):
        cox_partial_likelihood_loss(risk, torch.tensor([1.0, 0.0, 3.0]), event)
    with pytest.raises(ValueError, match="time must be"):
        cox_partial_likelihood_loss(risk, torch.tensor([1.0, -2.0, 3.0]), event)
    with pytest.raises(ValueError, match="event must"):
        cox_partial_likelihood_loss(risk, time, torch.tensor([1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="ties"):
        cox_partial_likelihood_loss(risk, time, event, ties="exact")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reduction"):
        CoxLoss(reduction="none")  # type: ignore[arg-type]
