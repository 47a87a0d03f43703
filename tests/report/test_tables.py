from medmtl.report.tables import markdown_table, metric_rows


def test_rows_pair_values_with_their_intervals():
    metrics = {"cls": {"auc": 0.9, "auc_ci95": [0.8, 0.95], "n": 10}, "seg": {"dice": float("nan")}}
    rows = metric_rows(metrics)
    assert ("cls", "auc", "0.900", "[0.800, 0.950]") in rows
    assert ("seg", "dice", "n/a", "") in rows
    table = markdown_table(metrics)
    assert table.splitlines()[0].startswith("| task |") and "0.900" in table
