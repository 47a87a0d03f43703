"""The report sections of survival (Kaplan–Meier of risk groups) and classification (calibration,
confusion matrix, per-class table) against lifelines and scikit-learn on the same numbers."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from lifelines.statistics import logrank_test, multivariate_logrank_test
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from medmtl.errors import ConfigError
from medmtl.tasks import ClassificationTask, SurvivalTask
from medmtl.tasks.survival import km_risk_groups


def _survival(n: int = 80, seed: int = 0) -> dict[str, np.ndarray]:
    """High predicted risk = short survival; about 70 % events."""
    rng = np.random.default_rng(seed)
    risk = rng.normal(size=n)
    time = rng.exponential(np.exp(-1.5 * risk)) + 0.01
    event = (rng.random(n) < 0.7).astype(np.float32)
    return {"time": time.astype(np.float32), "event": event, "risk": risk.astype(np.float32)}


def _figures(task, summary, out_dir):
    with warnings.catch_warnings():  # the report runs at the end of `medmtl train`: no console noise
        warnings.simplefilter("error")
        return task.report_figures(summary, out_dir, "val")


def test_km_median_split_matches_lifelines(tmp_path):
    summary = _survival()
    sections = _figures(SurvivalTask(), summary, tmp_path)
    assert len(sections) == 1 and "![Kaplan–Meier survival](km_survival.png)" in sections[0]
    assert (tmp_path / "km_survival.png").stat().st_size > 5000
    time, event, risk = (summary[k].astype(np.float64) for k in ("time", "event", "risk"))
    high = risk > np.median(risk)
    expected = logrank_test(time[~high], time[high], event[~high], event[high]).p_value
    result = km_risk_groups(time, event, risk)
    assert result.p_value == pytest.approx(expected, rel=1e-9) and result.p_value < 0.05
    assert np.array_equal(result.group, high.astype(int)) and result.names == ["low risk", "high risk"]
    assert "log-rank p < 0.001" in sections[0] and "C-index 0." in sections[0] and "[0." in sections[0]
    points = pd.read_csv(tmp_path / "km_survival.csv")
    assert list(points.columns) == ["group", "time", "survival"]
    assert set(points["group"]) == {"low risk", "high risk"}
    for name, members in (("low risk", ~high), ("high risk", high)):
        reference = KaplanMeierFitter().fit(time[members], event[members]).survival_function_
        curve = points[points["group"] == name]
        np.testing.assert_allclose(curve["time"], reference.index, rtol=1e-6)
        np.testing.assert_allclose(curve["survival"], reference.iloc[:, 0], atol=1e-12)
    middle = float(np.median(time))  # the high-risk group dies sooner
    assert result.fitters[1].predict(middle) < result.fitters[0].predict(middle)


def test_km_tertiles_give_three_groups(tmp_path):
    summary = _survival(seed=1)
    task = SurvivalTask(km_groups=3, name="os")
    sections = _figures(task, summary, tmp_path)
    assert "tertiles" in sections[0] and (tmp_path / "km_os.png").exists()
    points = pd.read_csv(tmp_path / "km_os.csv")
    assert list(dict.fromkeys(points["group"])) == ["low risk", "intermediate risk", "high risk"]
    time, event, risk = (summary[k].astype(np.float64) for k in ("time", "event", "risk"))
    groups = np.digitize(risk, np.quantile(risk, [1 / 3, 2 / 3]), right=True)
    assert np.bincount(groups).tolist() == [27, 26, 27]
    result = km_risk_groups(time, event, risk, groups=3)
    assert np.array_equal(result.group, groups)
    assert result.p_value == pytest.approx(multivariate_logrank_test(time, groups, event).p_value, rel=1e-9)
    with pytest.raises(ConfigError, match="km_groups"):
        SurvivalTask(km_groups=4)


def test_km_degenerate_cases_do_not_crash(tmp_path):
    task = SurvivalTask()
    summary = _survival(n=20)
    no_events = {**summary, "event": np.zeros(20, np.float32)}
    sections = _figures(task, no_events, tmp_path)
    assert "no events" in sections[0] and "C-index undefined" in sections[0] and "p =" not in sections[0]
    assert (tmp_path / "km_survival.png").exists()  # curves flat at 1, no p-value
    (tmp_path / "km_survival.png").unlink()
    for risk in (np.full(20, 0.3, np.float32), np.r_[np.zeros(19), 1.0].astype(np.float32)):
        sections = _figures(task, {**summary, "risk": risk}, tmp_path)
        assert sections[0].startswith("## Kaplan–Meier — survival\n\nNo Kaplan–Meier figure")
        assert not (tmp_path / "km_survival.png").exists()
    assert "high risk: 1 of 20 samples" in sections[0]  # 19 tied at the median, one above it
    assert "all predicted risks are equal" in _figures(task, {**summary, "risk": np.zeros(20)}, tmp_path)[0]
    assert "finite" in _figures(task, {**summary, "risk": np.full(20, np.nan, np.float32)}, tmp_path)[0]
    for n in (1, 3, 5):
        tiny = {key: value[:n] for key, value in summary.items()}
        if n < 4:
            assert "need at least 4 samples" in _figures(task, tiny, tmp_path)[0]
        assert "need at least 6 samples" in _figures(SurvivalTask(km_groups=3), tiny, tmp_path)[0]
    assert not (tmp_path / "km_survival.png").exists()


def test_km_risk_groups_rejects_bad_input():
    with pytest.raises(ValueError, match="zero"):
        km_risk_groups([], [], [])
    with pytest.raises(ValueError, match=r"must all be \[N\]"):
        km_risk_groups([1.0, 2.0, 3.0], [1, 0, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="groups must be 2"):
        km_risk_groups([1.0, 2.0, 3.0, 4.0], [1, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], groups=4)
    with pytest.raises(ValueError, match="event must hold"):
        km_risk_groups([1.0, 2.0, 3.0, 4.0], [1, 2, 1, 1], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="finite"):
        km_risk_groups([1.0, np.nan, 3.0, 4.0], [1, 0, 1, 1], [0.1, 0.2, 0.3, 0.4])


def _classification(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), labels] += 1.2
    probs = np.exp(logits)
    return labels, (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


def _table(section: str) -> pd.DataFrame:
    lines = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| class")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return pd.DataFrame(rows, columns=["class", "precision", "recall", "f1", "auc", "support"]).astype(float)


def test_multiclass_sections_match_sklearn(tmp_path):
    labels, probs = _classification(150, 4, seed=0)
    probs[:, 3] *= 0.01  # class 3 is never the arg-max: precision 0 (zero_division=0), recall 0
    sections = _figures(ClassificationTask(num_classes=4, name="grade"), {"labels": labels, "probs": probs},
                        tmp_path)
    headings = [s.splitlines()[0] for s in sections]
    assert headings == ["## ROC — grade", "## Calibration — grade", "## Confusion matrix — grade"]
    for stem in ("calibration_grade", "confusion_grade"):
        assert (tmp_path / f"{stem}.png").stat().st_size > 5000 and (tmp_path / f"{stem}.csv").exists()
    counts = pd.read_csv(tmp_path / "confusion_grade.csv", index_col="true")
    predicted = probs.argmax(axis=1)
    np.testing.assert_array_equal(counts.to_numpy(), sk_confusion_matrix(labels, predicted, labels=range(4)))
    assert "confidence" in sections[1] and "ECE" in sections[1]
    table = _table(sections[2])
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=range(4),
                                                                     zero_division=0)
    auc = [roc_auc_score(labels == c, probs[:, c]) for c in range(4)]
    np.testing.assert_allclose(table["precision"], precision, atol=5e-4)  # the table rounds to 3 decimals
    np.testing.assert_allclose(table["recall"], recall, atol=5e-4)
    np.testing.assert_allclose(table["f1"], f1, atol=5e-4)
    np.testing.assert_allclose(table["auc"], auc, atol=5e-4)
    np.testing.assert_array_equal(table["support"], support)
    assert table["precision"][3] == 0 and table["recall"][3] == 0


def test_per_class_metrics_exactly_match_sklearn():
    from medmtl.metrics import confusion_matrix, per_class_metrics

    labels, probs = _classification(200, 3, seed=3)
    labels[labels == 2] = 1  # class 2 is never true: recall 0, AUC undefined
    predicted = probs.argmax(axis=1)
    out = per_class_metrics(labels, probs)
    expected = precision_recall_fscore_support(labels, predicted, labels=range(3), zero_division=0)
    for key, values in zip(("precision", "recall", "f1", "support"), expected):
        np.testing.assert_allclose(out[key], values, atol=1e-12)
    np.testing.assert_allclose(out["auc"][:2], [roc_auc_score(labels == c, probs[:, c]) for c in range(2)],
                               atol=1e-12)
    assert np.isnan(out["auc"][2])
    np.testing.assert_array_equal(confusion_matrix(labels, probs), sk_confusion_matrix(labels, predicted,
                                                                                       labels=range(3)))
    with pytest.raises(ValueError, match="zero samples"):
        confusion_matrix(np.zeros(0, int), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="class indices"):
        confusion_matrix(np.array([0, 5]), np.full((2, 3), 1 / 3))


def test_binary_sections(tmp_path):
    labels, probs = _classification(60, 2, seed=4)
    sections = _figures(ClassificationTask(), {"labels": labels, "probs": probs}, tmp_path)
    assert len(sections) == 3 and "predicted probability of class 1" in sections[1]
    assert "| class |" not in sections[2] and "exceeds 0.5" in sections[2]  # no per-class table for two classes
    counts = pd.read_csv(tmp_path / "confusion_classification.csv", index_col="true").to_numpy()
    np.testing.assert_array_equal(counts, sk_confusion_matrix(labels, (probs[:, 1] > 0.5).astype(int)))
    bins = pd.read_csv(tmp_path / "calibration_classification.csv")
    assert list(bins.columns) == ["lower", "upper", "count", "predicted", "observed"] and bins["count"].sum() == 60
    one_class = _figures(ClassificationTask(name="c"), {"labels": np.zeros(5, int), "probs": probs[:5]}, tmp_path)
    assert [s.splitlines()[0] for s in one_class] == ["## Calibration — c", "## Confusion matrix — c"]  # no ROC
