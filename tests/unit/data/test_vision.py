"""Vision-language rows (tunesmith/data/vision.py): every source shape read to the canonical record,
every bad row named at its file:line, paths that leave the image root refused, previews with
image placeholders. No model is loaded here."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from vlm_fixtures import write_png  # tests/vlm_fixtures.py

from tunesmith.config import VisionConfig, load_config
from tunesmith.data.load import LoadReport, read_file
from tunesmith.data.vision import check_images, placeholder_messages
from tunesmith.errors import TunesmithError


def _png_bytes(color=(10, 200, 10), size=(8, 6)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def _data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def _user(*parts, text="What is it?"):
    return {"role": "user", "content": [*parts, {"type": "text", "text": text}]}


def _reply(text="A shape."):
    return {"role": "assistant", "content": text}


def _url(ref):
    return {"type": "image_url", "image_url": {"url": ref}}


@pytest.fixture
def folder(tmp_path) -> Path:
    write_png(tmp_path / "img" / "red.png", (200, 20, 20))
    write_png(tmp_path / "img" / "blue.png", (20, 20, 200), (40, 30))
    return tmp_path


def _read(folder: Path, rows: list) -> tuple[list, LoadReport]:
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = LoadReport()
    return read_file(str(path), report=report), report


def test_every_source_shape_reads_to_messages_with_image_parts(folder):
    rows = [
        {"messages": [_user(_url("img/red.png")), _reply()]},                                    # OpenAI, a path
        {"messages": [_user(_url(f"file://{folder}/img/blue.png")), _reply()]},                  # file:// URL
        {"messages": [_user(_url(_data_url(_png_bytes()))), _reply()]},                          # data URL
        {"messages": [_user({"type": "image", "path": "img/red.png"}), _reply()]},               # {type: image, path}
        {"images": ["img/red.png", "img/blue.png"],                                              # HF datasets shape
         "messages": [_user({"type": "image"}, {"type": "image"}), _reply()]},
        {"image": "img/blue.png", "conversations": [{"from": "human", "value": "<image>\nWhat is it?"},  # LLaVA
                                                    {"from": "gpt", "value": "Blue."}]},
        {"image": ["img/red.png", "img/blue.png"],                                               # ShareGPT-4V, two
         "conversations": [{"from": "human", "value": "<image> and <image>: which is red?"},
                           {"from": "gpt", "value": "The first."}]},
        {"messages": [{"role": "user", "content": "No image here."}, _reply()]},                 # text-only chat
    ]
    examples, report = _read(folder, rows)
    assert report.problems == [] and len(examples) == len(rows)
    assert [e.kind for e in examples] == ["vision"] * 7 + ["chat"]  # mixed in one file: no mixed_kinds error
    assert [len(e.extra["images"]) for e in examples[:7]] == [1, 1, 1, 1, 2, 1, 2]
    llava = examples[6]
    assert llava.messages[0]["content"] == [{"type": "image"}, {"type": "text", "text": " and "}, {"type": "image"},
                                            {"type": "text", "text": ": which is red?"}]
    assert llava.messages[1] == {"role": "assistant", "content": [{"type": "text", "text": "The first."}]}
    assert examples[4].extra["images"] == ["img/red.png", "img/blue.png"]
    checked = check_images(examples, VisionConfig(), None)
    assert checked.problems == [] and checked.images == 9 and len(checked.rows) == 8


def test_bad_rows_are_all_named_at_file_and_line(folder):
    (folder / "img" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    rows = [
        {"messages": [_user(_url("img/red.png")), _reply()]},                                   # 1 fine
        {"messages": [_user(_url("img/missing.png")), _reply()]},                               # 2 missing
        {"messages": [_user(_url("img/broken.png")), _reply()]},                                # 3 corrupt
        {"messages": [_user(_url("../outside.png")), _reply()]},                                # 4 escapes
        {"messages": [_user(_url("/etc/passwd")), _reply()]},                                   # 5 absolute, outside
        {"messages": [_user(_url("data:image/png;base64,@@not-base64@@")), _reply()]},          # 6 bad base64
        {"messages": [_user(_url(_data_url(b"plain text, not pixels"))), _reply()]},            # 7 not an image
        {"messages": [_user(*[_url("img/red.png")] * 3), _reply()]},                            # 8 too many
    ]
    examples, report = _read(folder, rows)
    assert report.problems == []  # none of these can be told without opening the images
    checked = check_images(examples, VisionConfig(max_images=2), None)
    by_line = {p.line: p for p in checked.problems}
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7, 8]
    assert all(p.file == str(folder / "train.jsonl") for p in checked.problems)
    codes = {line: p.code for line, p in by_line.items()}
    assert codes == {2: "image_missing", 3: "image_unreadable", 4: "image_outside_root", 5: "image_outside_root",
                     6: "bad_data_url", 7: "image_unreadable", 8: "too_many_images"}
    assert "../outside.png" in by_line[4].problem and "vision.image_root" in by_line[4].fix
    assert by_line[2].field == "messages[0].content[0]" and by_line[8].field == "messages[0].content[2]"
    assert [e.line for e, _ in checked.rows] == [1]
    with pytest.raises(TunesmithError) as err:
        checked.raise_if_errors()
    text = str(err.value)
    assert "7 rows with bad images" in text
    for line in (2, 3, 4, 5, 6, 7, 8):
        assert f"train.jsonl:{line}:" in text


def test_too_large_images_are_refused(folder):
    big = _png_bytes(size=(64, 64))
    rows = [{"messages": [_user(_url("img/blue.png")), _reply()]},
            {"messages": [_user(_url(_data_url(big))), _reply()]}]
    examples, _ = _read(folder, rows)
    checked = check_images(examples, VisionConfig(max_image_bytes=100), None)
    assert [(p.line, p.code) for p in checked.problems] == [(1, "image_too_large"), (2, "image_too_large")]
    assert "vision.max_image_bytes" in checked.problems[0].fix


def test_paths_escaping_the_root_are_refused_even_through_a_symlink(folder, tmp_path_factory):
    outside = write_png(tmp_path_factory.mktemp("elsewhere") / "secret.png", (1, 2, 3))
    (folder / "img" / "link.png").symlink_to(outside)
    examples, _ = _read(folder, [{"messages": [_user(_url("img/link.png")), _reply()]},
                                 {"messages": [_user(_url("img/../../" + folder.name + "/img/red.png")), _reply()]}])
    checked = check_images(examples, VisionConfig(), None)
    assert [(p.line, p.code) for p in checked.problems] == [(1, "image_outside_root")]  # line 2 comes back inside


def test_image_root_set_in_the_config_allows_what_it_holds(folder):
    data = folder / "data"
    data.mkdir()
    (data / "train.jsonl").write_text(json.dumps({"messages": [_user(_url("img/red.png")), _reply()]}) + "\n")
    examples = read_file(str(data / "train.jsonl"))
    assert check_images(examples, VisionConfig(), None).problems[0].code == "image_missing"  # beside the data file
    config_path = str(folder / "config.yaml")  # image_root is relative to the config file
    assert check_images(examples, VisionConfig(image_root="."), config_path).problems == []
    assert check_images(examples, VisionConfig(image_root="data"), config_path).problems[0].code == "image_missing"


@pytest.mark.parametrize("row, code, field", [
    ({"image": ["img/red.png", "img/blue.png"], "conversations": [
        {"from": "human", "value": "<image>\nOne placeholder, two images"}, {"from": "gpt", "value": "x"}]},
     "placeholder_count", "conversations"),
    ({"image": "img/red.png", "conversations": [
        {"from": "human", "value": "no placeholder"}, {"from": "gpt", "value": "x"}]}, "placeholder_count",
     "conversations"),
    ({"images": ["img/red.png"], "messages": [_user({"type": "image"}, {"type": "image"}), _reply()]},
     "placeholder_count", "images"),
    ({"messages": [_user(_url("img/red.png"), text="see <image> here"), _reply()]}, "placeholder_count",
     "messages[0].content[1]"),
    ({"messages": [_user(_url("img/red.png")), {"role": "assistant", "content": [_url("img/red.png")]}]},
     "image_in_reply", "messages[1]"),
    ({"messages": [_user(_url("img/red.png"))]}, "no_assistant", "messages"),
    ({"messages": [_user(_url("https://example.com/cat.png")), _reply()]}, "remote_image", "messages[0].content[0]"),
    ({"messages": [_user(_url("data:text/plain;base64,aGk=")), _reply()]}, "bad_data_url", "messages[0].content[0]"),
    ({"image": ["img/red.png", "http://x/y.png"], "conversations": [
        {"from": "human", "value": "<image><image>"}, {"from": "gpt", "value": "x"}]}, "remote_image", "image[1]"),
    ({"messages": [_user({"type": "input_audio", "input_audio": {}}, _url("img/red.png")), _reply()]}, "wrong_type",
     "messages[0].content[0]"),
    ({"image": 3, "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "x"}]},
     "wrong_type", "image"),
])
def test_structural_problems_are_found_without_opening_images(folder, row, code, field):
    examples, report = _read(folder, [{"messages": [_user(_url("img/red.png")), _reply()]}, row])
    assert len(examples) == 1
    codes = [(p.line, p.code, p.field) for p in report.problems]
    assert (2, code, field) in codes, codes


def test_explicit_chat_format_still_reads_image_rows(folder):
    path = folder / "train.jsonl"
    path.write_text(json.dumps({"messages": [_user(_url("img/red.png")), _reply()]}) + "\n")
    assert [e.kind for e in read_file(str(path), "chat")] == ["vision"]


def test_preview_shows_image_placeholders_with_their_size(folder, tokenizer):
    from tunesmith.data.inspect import preview_rows, render_terminal

    rows = [{"messages": [_user(_url("img/blue.png"), _url(_data_url(_png_bytes())), _url("img/gone.png")),
                          _reply()]}]
    examples, _ = _read(folder, rows)
    shown = placeholder_messages(examples[0])[0]["content"]
    assert shown == "[image: blue.png 40x30][image: data:image/png 8x6][image: gone.png ?]What is it?"
    chats, tokenized = preview_rows(examples, tokenizer, 1)
    text = render_terminal(tokenizer, tokenized, chats)
    assert "[image: blue.png 40x30]" in text and "train.jsonl:1" in text
    assert sum(label != -100 for label in tokenized[0].labels) > 0


def test_sft_refuses_vision_rows_and_names_recipe_vlm(folder):
    from tunesmith.data.prepare import check_kinds

    examples, _ = _read(folder, [{"messages": [_user(_url("img/red.png")), _reply()]}])
    with pytest.raises(TunesmithError, match="recipe: vlm"):
        check_kinds(examples, ("chat", "classification"))


def test_config_checks_for_recipe_vlm(tmp_path):
    base = {"recipe": "vlm", "data": {"train": ["x.jsonl"]}}
    with pytest.raises(TunesmithError) as err:
        load_config({**base, "train": {"method": "ia3"}, "vision": {"max_images": 0, "image_size": 4},
                     "data": {"train": ["x.jsonl"], "packing": True, "overlong": "truncate"}})
    text = str(err.value)
    for key in ("train.method", "vision.max_images", "vision.image_size", "data.packing", "data.overlong"):
        assert key in text
    cfg = load_config({**base, "vision": {"image_root": "imgs", "max_images": 2}})
    assert cfg.vision.max_images == 2
    load_config({"data": {"train": ["x.jsonl"], "packing": True}})  # other recipes keep their options


def test_a_curated_vision_row_is_written_in_a_shape_that_reads_back_the_same(folder):
    from tunesmith.data.curate import to_row

    rows = [{"messages": [_user(_url("img/red.png")), _reply()]},
            {"image": ["img/red.png", "img/blue.png"], "conversations": [
                {"from": "human", "value": "<image>\n<image>\nCompare."}, {"from": "gpt", "value": "Red, blue."}]}]
    first, _ = _read(folder, rows)
    again, _ = _read(folder, [to_row(ex) for ex in first])
    assert [ex.kind for ex in again] == ["vision", "vision"]
    assert [(ex.messages, ex.extra["images"]) for ex in again] == [(ex.messages, ex.extra["images"]) for ex in first]


def test_data_validate_opens_the_images_beside_a_bare_file_and_names_bad_rows(folder, capsys):
    from tunesmith.cli import main

    rows = [{"messages": [_user(_url("img/red.png")), _reply()]},
            {"messages": [_user(_url("img/missing.png")), _reply()]},
            {"image": "../outside.png", "conversations": [{"from": "human", "value": "<image>\nWhat?"},
                                                          {"from": "gpt", "value": "A shape."}]}]
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["data", "validate", str(path), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert [(p["line"], p["level"]) for p in report["problems"]] == [(2, "error"), (3, "error")]
    assert "image file not found" in report["problems"][0]["problem"]
    assert report["kept"] == 1 and report["kinds"] == {"vision": 1}


def test_an_empty_or_null_image_key_leaves_a_text_chat_row(folder):
    rows = [{"messages": [{"role": "user", "content": "Hi"}, _reply()], "images": []},
            {"messages": [{"role": "user", "content": "Hi"}, _reply()], "image": None}]
    examples, report = _read(folder, rows)
    assert [ex.kind for ex in examples] == ["chat", "chat"] and not report.problems
