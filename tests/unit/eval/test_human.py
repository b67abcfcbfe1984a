"""Blind A/B sheets: export, fill ratings (in code and in a real browser), import, win rate and
Wilson interval; bad ratings are reported with their file and line."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from tunesmith.errors import TunesmithError
from tunesmith.eval.human import export_sheet, import_ratings, wilson_interval

Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal


def _items(n: int) -> list[dict]:
    return [{"id": f"q{i}", "prompt": f"Question {i}?\nSecond line, \"quoted\", with a comma",
             "outputs": {"base": f"base answer {i}", "tuned": f"tuned answer {i}"}} for i in range(n)]


def _read(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _write(path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["id", "prompt", "answer_a", "answer_b", "rating"])
        w.writeheader()
        w.writerows(rows)


def _fill(sheet: list[dict], key: dict, plan: list[str]) -> list[dict]:
    """Rate each row so that `plan[i]` ("tuned", "base", "tie" or "") wins, whatever side it sits on;
    the rating spellings vary (a, B, =, TIE) as people type them."""
    out = []
    for n, (row, who) in enumerate(zip(sheet, plan)):
        side = key["items"][row["id"]]
        if who in ("tuned", "base"):
            letter = "A" if side["A"] == who else "B"
            rating = letter.lower() if n % 2 else letter
        else:
            rating = ("=" if n % 2 else " TIE ") if who == "tie" else ""
        out.append({**row, "rating": rating})
    return out


def test_export_hides_and_randomises_the_systems(tmp_path):
    paths = export_sheet(_items(12), tmp_path / "ab", seed=3)
    assert {k: p.name for k, p in paths.items()} == {"csv": "ab_sheet.csv", "html": "ab_sheet.html",
                                                     "key": "ab_key.json"}
    sheet, key = _read(paths["csv"]), json.loads(paths["key"].read_text())
    assert list(sheet[0]) == ["id", "prompt", "answer_a", "answer_b", "rating"]
    assert [r["id"] for r in sheet] == [f"q{i}" for i in range(12)] and all(r["rating"] == "" for r in sheet)
    assert sheet[0]["prompt"] == _items(1)[0]["prompt"]  # newlines, quotes and commas survive the CSV
    # the answers shown match the key, and the sheet never names a system
    for row in sheet:
        side = key["items"][row["id"]]
        assert row["answer_a"].startswith(side["A"]) and row["answer_b"].startswith(side["B"])
        assert {side["A"], side["B"]} == {"base", "tuned"}
    assert "tuned" not in paths["csv"].read_text().replace("tuned answer", "")
    firsts = [key["items"][r["id"]]["A"] for r in sheet]
    assert 0 < firsts.count("tuned") < 12  # both orders occur
    # seeded: the same seed gives the same order, another seed a different one
    again = json.loads(export_sheet(_items(12), tmp_path / "ab2", seed=3)["key"].read_text())
    other = json.loads(export_sheet(_items(12), tmp_path / "ab3", seed=4)["key"].read_text())
    assert again["items"] == key["items"] and other["items"] != key["items"]


def test_import_gives_the_known_win_rate_and_wilson_interval(tmp_path):
    paths = export_sheet(_items(11), tmp_path, seed=0)
    key = json.loads(paths["key"].read_text())
    plan = ["tuned"] * 6 + ["base"] * 2 + ["tie"] * 2 + [""]  # the last row left blank
    _write(tmp_path / "filled.csv", _fill(_read(paths["csv"]), key, plan))
    got = import_ratings(tmp_path / "filled.csv", paths["key"])
    assert got["counts"] == {"base": {"wins": 2, "losses": 6, "ties": 2}, "tuned": {"wins": 6, "losses": 2, "ties": 2}}
    assert got["n"] == 10 and got["blank"] == 1 and got["win_rate_of"] == "tuned"
    assert got["win_rate"] == pytest.approx((6 + 0.5 * 2) / 10)
    # Wilson by hand, p = 0.7, n = 10, z = 1.96: centre (p + z^2/2n) / (1 + z^2/n) = 0.644487...,
    # half-width z / (1 + z^2/n) * sqrt(p(1-p)/n + z^2/4n^2) = 0.247715...
    assert got["ci95_low"] == pytest.approx(0.39677814746, abs=1e-9)
    assert got["ci95_high"] == pytest.approx(0.89220873259, abs=1e-9)


def test_wilson_at_the_edges():
    # p = 1 over n = 4: lower bound n / (n + z^2), upper bound 1 (a Wald interval would be [1, 1]).
    assert wilson_interval(1.0, 4) == pytest.approx((4 / (4 + Z95 ** 2), 1.0))
    low, high = wilson_interval(0.0, 4)
    assert low == 0.0 and high == pytest.approx(Z95 ** 2 / (4 + Z95 ** 2))
    low, high = wilson_interval(0.5, 1000)
    assert (low + high) / 2 == pytest.approx(0.5) and high - low < 0.07


def test_bad_ratings_name_the_file_and_line(tmp_path):
    paths = export_sheet(_items(3), tmp_path, seed=0)
    rows = _read(paths["csv"])  # each row's prompt spans 2 lines: rows start on lines 2, 4, 6
    rows[0]["rating"], rows[1]["rating"], rows[2]["rating"] = "A", "maybe", "B"
    rows.append({"id": "q99", "prompt": "x", "answer_a": "", "answer_b": "", "rating": "A"})
    bad = tmp_path / "bad.csv"
    _write(bad, rows)
    with pytest.raises(TunesmithError) as err:
        import_ratings(bad, paths["key"])
    text = str(err.value)
    assert f"{bad}:4: rating 'maybe' for id 'q1' is not A, B or tie" in text
    assert f"{bad}:8: unknown id 'q99'" in text


def test_duplicate_rows_missing_columns_and_empty_sheets_are_errors(tmp_path):
    paths = export_sheet(_items(2), tmp_path, seed=0)
    rows = _read(paths["csv"])
    _write(tmp_path / "dup.csv", [{**rows[0], "rating": "A"}, {**rows[0], "rating": "B"}])
    with pytest.raises(TunesmithError, match=r"dup.csv:4: id 'q0' is rated again \(first on line 2\)"):
        import_ratings(tmp_path / "dup.csv", paths["key"])
    (tmp_path / "nocol.csv").write_text("id,score\nq0,A\n")
    with pytest.raises(TunesmithError, match=r"nocol.csv:1: no column rating"):
        import_ratings(tmp_path / "nocol.csv", paths["key"])
    with pytest.raises(TunesmithError, match="no rated rows"):
        import_ratings(paths["csv"], paths["key"])  # the sheet as exported: every rating blank


def test_bad_items_are_reported_together(tmp_path):
    items = _items(2) + [{"id": "q0", "prompt": "p", "outputs": {"base": "x"}}, {"prompt": "p"}]
    with pytest.raises(TunesmithError) as err:
        export_sheet(items, tmp_path)
    text = str(err.value)
    assert "id 'q0' is used twice" in text and "no text output for tuned" in text and "item 3 has no id" in text


def test_html_escapes_item_text(tmp_path):
    items = _items(2)
    items[0]["prompt"] = "<script>alert('x')</script> & <b>bold</b>"
    items[1]["outputs"]["tuned"] = '"><img src=x onerror=alert(1)></pre><script>evil()</script>'
    page = export_sheet(items, tmp_path)["html"].read_text()
    assert page.count("<script>") == 1  # ours, at the end
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page
    assert "<img" not in page and "evil()" not in page.split("<script>")[1]
    assert "http://" not in page and "https://" not in page  # self-contained: nothing to fetch


def test_html_page_is_the_packaged_template_filled(tmp_path):
    from tunesmith.eval import human

    items = _items(2)
    items[0]["id"] = 'q"0<'
    items[1]["prompt"] = "costs $5, $items and ${header} stay text"
    page = export_sheet(items, tmp_path)["html"].read_text(encoding="utf-8")
    template = human.PAGE_FILE.read_text(encoding="utf-8")
    assert human.PAGE_FILE.parent.name == "static" and human.ITEM_FILE.is_file()
    head, _, rest = template.partition("$items")
    middle, _, tail = rest.partition("$header")
    assert page.startswith(head) and middle in page and page.endswith(tail)  # every fixed part, as written
    assert '"id,prompt,answer_a,answer_b,rating"' in page  # the CSV header, written into the script
    assert '<div class="item" data-id="q&quot;0&lt;">' in page  # attribute value escaped, quotes too
    assert "costs $5, $items and ${header} stay text" in page  # one pass: item text is never substituted
    assert page.count('<div class="item"') == 2 and 'name="r1" value="tie"' in page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium is not installed")
def test_html_page_downloads_ratings_that_import(tmp_path):
    from playwright.sync_api import sync_playwright

    items = _items(3)
    items[0]["prompt"] = "<script>alert(1)</script>, \"quoted\"\nline two"
    paths = export_sheet(items, tmp_path, seed=1)
    key = json.loads(paths["key"].read_text())
    want = {"q0": "tuned", "q1": "base", "q2": "tie"}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page()
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(paths["html"].as_uri())
        for n, item_id in enumerate(["q0", "q1", "q2"]):
            who = want[item_id]
            value = "tie" if who == "tie" else ("A" if key["items"][item_id]["A"] == who else "B")
            page.check(f'input[name="r{n}"][value="{value}"]')
        with page.expect_download() as info:
            page.click("#download")
        info.value.save_as(tmp_path / "ab_ratings.csv")
        status = page.text_content("#status")
        browser.close()
    assert dialogs == [] and status == "3 of 3 rated"  # the prompt's <script> never ran
    downloaded = _read(tmp_path / "ab_ratings.csv")
    assert downloaded[0]["prompt"] == items[0]["prompt"]  # text read back from the page, CSV-quoted
    got = import_ratings(tmp_path / "ab_ratings.csv", paths["key"])
    assert got["counts"]["tuned"] == {"wins": 1, "losses": 1, "ties": 1} and got["win_rate"] == pytest.approx(0.5)
