"""The self-contained HTML report: figures embedded, nothing loaded from outside."""

import base64
import json
import re
from html.parser import HTMLParser

from PIL import Image

from medmtl.report.html import markdown_to_html, write_html_report

REPORT = """# medmtl run report

Run: `/runs/a_b`  \nSplit evaluated: **val**  \nEncoder: `small_cnn`; tasks: `classification` (classification)

## Metrics (95% bootstrap CIs)

| task | metric | value | 95% CI |
|---|---|---|---|
| classification | auc | 0.750 | [0.500, 0.900] |

## ROC curve

*Points*: [roc_classification.csv](roc_classification.csv)

- one
- two

```
code <b>
```

![ROC classification](roc_classification.png)
"""


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(page):
    parser = _Tags()
    parser.feed(page)
    return parser.tags


def _figure(path, colour=(200, 30, 30)):
    Image.new("RGB", (12, 8), colour).save(path)
    return path.read_bytes()


def test_report_becomes_one_page_with_embedded_figures(tmp_path):
    png = _figure(tmp_path / "roc_classification.png")
    (tmp_path / "roc_classification.csv").write_text("class,fpr,tpr\n1,0,0\n1,1,1\n")
    page = markdown_to_html(REPORT, tmp_path, "medmtl run report")
    tags = _tags(page)
    names = [tag for tag, _ in tags]
    assert names.count("h1") == 1 and names.count("h2") == 2
    assert "table" in names and names.count("td") == 4 and "ul" in names and "pre" in names
    assert "<strong>val</strong>" in page and "<em>Points</em>" in page and "<code>/runs/a_b</code>" in page
    assert "code &lt;b&gt;" in page  # code is escaped, not markup
    assert "<title>medmtl run report</title>" in page and "<style>" in page

    images = [attrs for tag, attrs in tags if tag == "img"]
    assert len(images) == 1 and images[0]["alt"] == "ROC classification"
    prefix = "data:image/png;base64,"
    assert images[0]["src"].startswith(prefix)
    assert base64.b64decode(images[0]["src"][len(prefix):]) == png  # the figure's bytes, round-tripped
    # the CSV is embedded too (a download), so the page stands alone
    csv_link = next(attrs for tag, attrs in tags if tag == "a")
    assert csv_link["download"] == "roc_classification.csv" and csv_link["href"].startswith("data:text/csv;base64,")
    assert base64.b64decode(csv_link["href"].split(",", 1)[1]).decode().startswith("class,fpr,tpr")

    # nothing outside the page is referenced
    assert 'src="http' not in page and "<link" not in page and "<script" not in page
    assert not re.search(r'src="(?!data:)', page)
    assert not re.search(r'href="(?!data:)', page)


def test_missing_figure_is_a_visible_placeholder(tmp_path):
    page = markdown_to_html("# r\n\n![overlays](overlays.png)\n\ntext after\n", tmp_path, "r")
    assert "<img" not in page
    assert "[missing figure: overlays.png]" in page and 'class="missing"' in page
    assert "text after" in page
    # a link to a missing CSV stays a plain relative link
    assert 'href="gone.csv"' in markdown_to_html("[points](gone.csv)", tmp_path, "r")


def test_remote_images_are_not_loaded(tmp_path):
    page = markdown_to_html("![logo](https://example.com/logo.png)", tmp_path, "r")
    assert "<img" not in page and 'href="https://example.com/logo.png"' in page


def test_page_without_heading_gets_its_title_as_heading(tmp_path):
    page = markdown_to_html("Mean ± std over splits [1, 2].\n\n| a | b |\n|---|---|\n| 1 | 2 |\n", tmp_path,
                            "medmtl comparison")
    assert "<h1>medmtl comparison</h1>" in page and "<table>" in page and "±" in page
    assert '<meta charset="utf-8">' in page


def test_write_html_report_beside_the_markdown(tmp_path):
    _figure(tmp_path / "roc_classification.png")
    md = tmp_path / "report.md"
    md.write_text(REPORT)
    out = write_html_report(md)
    assert out == tmp_path / "report.html"
    page = out.read_text()
    assert "<title>medmtl run report</title>" in page and "data:image/png;base64," in page
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically
    (tmp_path / "comparison.md").write_text("| a |\n|---|\n| 1 |\n")
    assert "<h1>medmtl comparison</h1>" in write_html_report(tmp_path / "comparison.md").read_text()


def test_comparison_writes_html_beside_markdown(tmp_path, monkeypatch):
    """run_comparison with every run finished (nothing trained): comparison.md and comparison.html."""
    from helpers import tiny_config

    import medmtl.compare as compare
    from medmtl.config import config_from_dict

    config = config_from_dict(tiny_config())
    for name in compare.variants(config):
        run = tmp_path / name / "split1"
        run.mkdir(parents=True)
        task = name.removeprefix("single-") if name.startswith("single-") else "classification"
        (run / "metrics.json").write_text(json.dumps({task: {"auc": 0.7, "dice": 0.6}}))
    monkeypatch.setattr(compare, "paired_comparison", lambda *args, **kwargs: {})
    compare.run_comparison(config, tmp_path, [1])
    page = (tmp_path / "comparison.html").read_text()
    assert (tmp_path / "comparison.md").is_file()
    assert "<h1>medmtl comparison</h1>" in page and "<table>" in page and "multi-task" in page
