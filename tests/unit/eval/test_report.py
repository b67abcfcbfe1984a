"""tunesmith.eval.compare and .report: compare() known answers, report.html/report.md contents, run comparison."""

from __future__ import annotations

import base64
import copy
import io
import re

import pytest
from PIL import Image

from tunesmith.errors import TunesmithError
from tunesmith.eval.compare import higher_is_better
from tunesmith.eval.report import compare, render, render_comparison


def results_for(tasks: list[dict], labels=("base", "tuned")) -> dict:
    """A results dict in the runner's schema around the given tasks."""
    return {"suite": "unit-suite", "created": "2026-11-29T03:00:00Z",
            "models": {lb: f"model-{lb}" for lb in labels}, "tasks": tasks,
            "seconds": {lb: 1.5 for lb in labels}}


def task(name: str, base: dict, tuned: dict, **extra) -> dict:
    return {"name": name, "type": "generation", "n": 10, "metrics": {"base": base, "tuned": tuned},
            "samples": [], "lengths": {}, **extra}


def row(rows: list[dict], task_name: str, metric: str) -> dict:
    found = [r for r in rows if r["task"] == task_name and r["metric"] == metric]
    assert len(found) == 1, (task_name, metric, rows)
    return found[0]


@pytest.fixture
def full_results() -> dict:
    """Three tasks: a multiple-choice one with a regression, a generating one with samples and
    lengths, a perplexity one whose perplexity got worse (up)."""
    mc = task("hellaswag", {"acc": 0.30, "acc_norm": 0.34}, {"acc": 0.32, "acc_norm": 0.30}, type="multiple_choice")
    mc["samples"] = [{"prompt": "A man sits on a roof. He", "reference": "pulls up shingles.",
                      "outputs": {"base": "skis.", "tuned": "pulls up shingles."}}]
    gen = task("summaries", {"bleu": 12.3, "rouge_l": 0.31}, {"bleu": 17.9, "rouge_l": 0.36},
               lengths={"base": [5, 12, 30, 44, 61, 7, 19], "tuned": [20, 18, 25, 22, 19, 21, 24]})
    gen["samples"] = [{"prompt": "Summarise: <script>alert('x')</script> & more",
                       "reference": "ref <b>bold</b>", "outputs": {"base": "B" * 4000, "tuned": "short"}}]
    ppl = task("wikitext", {"perplexity": 1234.5}, {"perplexity": 1410.2}, type="perplexity")
    return results_for([mc, gen, ppl])


CURVE = [{"step": s, "loss": 3.0 - 0.02 * s, "learning_rate": 1e-4} for s in range(1, 51)] + \
        [{"step": s, "eval_loss": 2.9 - 0.02 * s} for s in range(10, 51, 10)]


# --------------------------------------------------------------------------- compare()


def test_compare_improvement_and_regression_known_answers(full_results):
    rows = compare(full_results)
    acc = row(rows, "hellaswag", "acc")
    assert acc["values"] == {"base": 0.30, "tuned": 0.32}
    assert acc["delta"] == pytest.approx(0.02) and acc["rel_delta"] == pytest.approx(0.02 / 0.30)
    assert acc["better"] is True and acc["regression"] is False
    norm = row(rows, "hellaswag", "acc_norm")  # 0.34 -> 0.30 is 11.8% worse: a regression
    assert norm["delta"] == pytest.approx(-0.04) and norm["rel_delta"] == pytest.approx(-0.04 / 0.34)
    assert norm["better"] is False and norm["regression"] is True
    assert [(r["task"], r["metric"]) for r in rows] == [
        ("hellaswag", "acc"), ("hellaswag", "acc_norm"), ("summaries", "bleu"), ("summaries", "rouge_l"),
        ("wikitext", "perplexity")]


@pytest.mark.parametrize("metric, base, tuned, better, regression", [
    ("perplexity", 10.0, 12.0, False, True),    # lower is better: going up 20% regresses
    ("perplexity", 10.0, 8.0, True, False),     # going down is an improvement, however large
    ("eval_loss", 2.0, 2.2, False, True),
    ("bits_per_byte", 1.0, 0.9, True, False),
    ("acc", 0.5, 0.7, True, False),
    ("acc", 0.5, 0.3, False, True),             # higher is better: going down 40% regresses
    ("bleu", 20.0, 20.0, None, False),          # unchanged: neither better nor worse
])
def test_compare_direction(metric, base, tuned, better, regression):
    r = compare(results_for([task("t", {metric: base}, {metric: tuned})]))[0]
    assert (r["better"], r["regression"]) == (better, regression)
    assert r["delta"] == pytest.approx(tuned - base)


@pytest.mark.parametrize("metric, base, tuned, threshold, regression", [
    ("acc", 0.5, 0.475, 0.05, False),           # exactly 5% worse: not *more* than the threshold
    ("acc", 0.5, 0.474, 0.05, True),
    ("acc", 0.5, 0.474, 0.10, False),           # a looser threshold lets it pass
    ("perplexity", 20.0, 21.0, 0.05, False),    # exactly 5% higher perplexity
    ("perplexity", 20.0, 21.01, 0.05, True),
    ("acc", 0.5, 0.5 - 1e-9, 0.0, True),        # threshold 0: any worsening is a regression
])
def test_compare_threshold_edge(metric, base, tuned, threshold, regression):
    r = compare(results_for([task("t", {metric: base}, {metric: tuned})]), threshold=threshold)[0]
    assert r["regression"] is regression


@pytest.mark.parametrize("metric, tuned, regression", [
    ("acc", -0.04, False), ("acc", -0.06, True), ("acc", 0.5, False),
    ("loss", 0.04, False), ("loss", 0.06, True), ("loss", -0.5, False),
])
def test_compare_zero_baseline_uses_absolute_threshold(metric, tuned, regression):
    r = compare(results_for([task("t", {metric: 0.0}, {metric: tuned})]))[0]
    assert r["regression"] is regression
    assert r["rel_delta"] is None and r["delta"] == pytest.approx(tuned)


def test_compare_single_label_has_no_deltas():
    res = results_for([{"name": "t", "metrics": {"model": {"acc": 0.4, "perplexity": 9.0}}}], labels=("model",))
    rows = compare(res)
    assert [r["values"] for r in rows] == [{"model": 0.4}, {"model": 9.0}]
    assert all(r["delta"] is None and r["rel_delta"] is None and r["better"] is None and not r["regression"]
               for r in rows)


def test_compare_named_baseline_missing_values_and_non_numbers():
    res = results_for([{"name": "t", "metrics": {
        "base": {"acc": 0.2, "note": "text", "f1": float("nan")},
        "mid": {"acc": 0.5},
        "tuned": {"acc": 0.45, "f1": 0.3}}}], labels=("base", "mid", "tuned"))
    rows = compare(res, baseline="mid")
    acc = row(rows, "t", "acc")  # 0.5 -> 0.45 is 10% worse than "mid" (but better than "base")
    assert acc["delta"] == pytest.approx(-0.05) and acc["regression"] is True
    assert acc["values"] == {"base": 0.2, "mid": 0.5, "tuned": 0.45}
    f1 = row(rows, "t", "f1")  # NaN and a missing baseline value: shown, never compared
    assert f1["values"] == {"base": None, "mid": None, "tuned": 0.3} and f1["delta"] is None
    assert not f1["regression"]
    assert not [r for r in rows if r["metric"] == "note"]  # no number anywhere: no row
    assert row(compare(res), "t", "acc")["better"] is True  # default baseline: the first label


def test_compare_rejects_bad_input():
    with pytest.raises(TunesmithError, match="'nope' is not one of the evaluated models"):
        compare(results_for([]), baseline="nope")
    with pytest.raises(TunesmithError) as err:
        compare({"tasks": "x"})
    assert "'models' must be a non-empty dict" in str(err.value) and "'tasks' must be a list" in str(err.value)
    with pytest.raises(TunesmithError, match=r"metrics for \['other'\]"):
        compare(results_for([{"name": "t", "metrics": {"other": {"acc": 1}}}]))
    with pytest.raises(TunesmithError, match="threshold must be a number >= 0"):
        compare(results_for([]), threshold=-0.1)


def test_direction_rule():
    for name in ("loss", "eval_loss", "perplexity", "word_ppl", "bits_per_byte"):
        assert higher_is_better(name) is False, name
    for name in ("acc", "acc_norm", "bleu", "rouge_l", "chrf", "f1"):
        assert higher_is_better(name) is True, name


# --------------------------------------------------------------------------- render()


def images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_render_html_is_self_contained_with_plots(full_results, tmp_path):
    html_path, md_path = render(full_results, tmp_path / "rep", loss_curve=CURVE, title="My eval")
    assert (html_path, md_path) == (tmp_path / "rep" / "report.html", tmp_path / "rep" / "report.md")
    page = html_path.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)  # nothing fetched
    assert "<script" not in page.lower() and "<link" not in page.lower()
    pngs = images(page)
    assert len(pngs) == 3  # metrics bars, loss curve, one length histogram (one generating task)
    for png in pngs:
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
        img = Image.open(io.BytesIO(png))
        img.load()  # decodes every pixel: a truncated PNG raises here
        assert 300 <= img.width <= 2000 and 150 <= img.height <= 1500, img.size
    assert "<h1>My eval</h1>" in page
    assert "base = model-base; tuned = model-tuned" in page and "unit-suite" in page and "2026-11-29T03:00:00Z" in page
    assert "5% worse than the baseline" in page
    # the summary and the regressions at the top, before the first task's table
    top = page[:page.index("<h2>Tasks</h2>")]
    assert "3 metrics improved, 2 regressed" in top
    assert "⚠ REGRESSION hellaswag / acc_norm: 0.3400 → 0.3000 (-11.8%)" in top
    assert "⚠ REGRESSION wikitext / perplexity: 1234.5 → 1410.2 (+14.2%)" in top
    assert page.count('<tr class="regression">') == 2
    # the md's plots are the same PNGs, written beside it
    for name in ("metrics.png", "loss.png", "lengths_summaries.png"):
        assert (tmp_path / "rep" / "report_plots" / name).read_bytes() in pngs


def test_render_inlines_the_packaged_css(full_results, tmp_path):
    from tunesmith.eval import report

    css = report.CSS_FILE.read_text(encoding="utf-8")
    assert report.CSS_FILE.parent.name == "static" and "tr.regression td" in css
    page = render(full_results, tmp_path)[0].read_text(encoding="utf-8")
    assert f"<style>\n{css}</style>" in page  # inlined whole: report.html stays one file
    comparison = render_comparison([("a", full_results)], tmp_path / "cmp")[0].read_text(encoding="utf-8")
    assert f"<style>\n{css}</style>" in comparison


def test_default_threshold_is_the_configured_one(full_results, tmp_path):
    from tunesmith.config import REGRESSION_THRESHOLD

    assert compare(full_results) == compare(full_results, REGRESSION_THRESHOLD)
    page = render(full_results, tmp_path)[0].read_text(encoding="utf-8")
    assert f"{REGRESSION_THRESHOLD * 100:g}% worse than the baseline" in page


def test_render_md_tables_flags_and_samples(full_results, tmp_path):
    _, md_path = render(full_results, tmp_path, loss_curve=CURVE)
    md = md_path.read_text(encoding="utf-8")
    assert "| metric | base | tuned | delta | flag |" in md
    assert "| acc ↑ | 0.3000 | 0.3200 | +0.0200 (+6.7%) |  |" in md
    assert "| acc_norm ↑ | 0.3400 | 0.3000 | -0.0400 (-11.8%) | ⚠ REGRESSION |" in md
    assert "| bleu ↑ | 12.300 | 17.900 | +5.600 (+45.5%) |  |" in md
    assert "| perplexity ↓ | 1234.5 | 1410.2 | +175.70 (+14.2%) | ⚠ REGRESSION |" in md
    assert md.index("**3 metrics improved, 2 regressed**") < md.index("## Tasks")
    assert "![metrics per task](report_plots/metrics.png)" in md
    assert "![training loss curve](report_plots/loss.png)" in md
    assert "pulls up shingles." in md and "```text\nSummarise: <script>" in md  # literal inside a fence


def test_render_escapes_and_truncates_sample_text(full_results, tmp_path):
    full_results["tasks"][1]["name"] = "sum<i>"
    full_results["models"]["tuned"] = "tuned <img src=x onerror=alert(1)>"
    page = render(full_results, tmp_path)[0].read_text(encoding="utf-8")
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    assert "ref &lt;b&gt;bold&lt;/b&gt;" in page and "sum&lt;i&gt;" in page and "<img src=x" not in page
    # 4000 characters cut near 1500 with a visible ellipsis
    run = max(re.findall(r"B+", page), key=len)
    assert len(run) == 1500 and run + " … [2500 more characters]" in page
    assert "B" * 1501 not in page


def test_render_without_loss_curve_or_lengths_and_single_model(full_results, tmp_path):
    render(full_results, tmp_path, loss_curve=CURVE)  # an earlier report in the same folder
    res = results_for([{"name": "mmlu", "type": "multiple_choice", "metrics": {"model": {"acc": 0.25}},
                        "samples": [], "lengths": {}}], labels=("model",))
    html_path, md_path = render(res, tmp_path, loss_curve=[{"step": 1, "learning_rate": 1e-4}])
    page, md = html_path.read_text(encoding="utf-8"), md_path.read_text(encoding="utf-8")
    assert len(images(page)) == 1  # the bars only: no loss values, no generated lengths
    assert "holds no step with a loss" in page and "One model evaluated (model): no comparison." in page
    assert "| metric | model |" in md and "| acc ↑ | 0.2500 |" in md and "REGRESSION" not in md
    # the earlier report's plots are gone: only this one's bars remain
    assert sorted(p.name for p in (tmp_path / "report_plots").iterdir()) == ["metrics.png"]


def test_render_task_note_missing_n_and_duplicate_names(tmp_path):
    note = task("judged", {"win_rate": 0.4}, {"win_rate": 0.6}, n=None, note="judge: <local> model")
    html_path, md_path = render(results_for([note]), tmp_path)
    page, md = html_path.read_text(encoding="utf-8"), md_path.read_text(encoding="utf-8")
    assert "judge: &lt;local&gt; model" in page and "_judge: &lt;local&gt; model_" in md
    assert "### judged (generation)" in md and "n=None" not in page
    with pytest.raises(TunesmithError, match="task name 'judged' appears twice"):
        render(results_for([note, note]), tmp_path)


def test_render_eval_loss_only_curve(full_results, tmp_path):
    page = render(full_results, tmp_path, loss_curve=[{"step": 5, "eval_loss": 2.0}, {"step": 10, "eval_loss": 1.8}])[0]
    assert (tmp_path / "report_plots" / "loss.png").stat().st_size > 5000 and "training loss curve" in page.read_text()


# --------------------------------------------------------------------------- render_comparison()


def test_render_comparison_two_runs(full_results, tmp_path):
    second = copy.deepcopy(full_results)
    second["models"]["tuned"] = "model-tuned-v2"
    second["tasks"][0]["metrics"]["tuned"] = {"acc": 0.35, "acc_norm": 0.36}  # fixes acc_norm
    second["tasks"][2]["metrics"]["tuned"] = {"perplexity": 1100.0}
    html_path, md_path = render_comparison([("run-a", full_results), ("run-b", second)], tmp_path)
    md, page = md_path.read_text(encoding="utf-8"), html_path.read_text(encoding="utf-8")
    assert "| task | metric | base (reference) | run-a | run-b | flag |" in md
    assert "| hellaswag | acc ↑ | 0.3000 | 0.3200 | **0.3500** |  |" in md
    assert "| hellaswag | acc_norm ↑ | 0.3400 | 0.3000 | **0.3600** | ⚠ REGRESSION: run-a |" in md
    assert "| wikitext | perplexity ↓ | 1234.5 | 1410.2 | **1100.0** | ⚠ REGRESSION: run-a |" in md
    assert "| summaries | bleu ↑ | 12.300 | **17.900** | **17.900** |  |" in md  # ties: both bold
    assert "2 regressions against the reference in 1 run" in md
    assert "model-tuned-v2" in md and "base = model-base (from run-a)" in md
    assert len(images(page)) == 1 and (tmp_path / "report_plots" / "metrics.png").exists()
    assert "<b>0.3500</b>" in page and "⚠ REGRESSION run-a: hellaswag / acc_norm: 0.3400 → 0.3000 (-11.8%)" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)


def test_render_comparison_rejects_no_runs(tmp_path):
    with pytest.raises(TunesmithError, match="no runs to compare"):
        render_comparison([], tmp_path)
