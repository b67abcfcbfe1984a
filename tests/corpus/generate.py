"""Write the malformed-and-tricky data corpus (tests/corpus/files/) and its manifest.

    python tests/corpus/generate.py          # rewrites files/ and manifest.json (fixed seeds)

Each file gets an entry in manifest.json: the overrides `tunesmith data validate` runs with, the
exit code, and every problem as [line, level] (line null for a problem of the whole file). The
classes follow the ways datasets arrive broken (issue 11): tracebacks in Python's json (deep
nesting, huge integers, lone surrogates), invalid JSON that Python accepts (NaN, duplicate keys),
chat order, CSV headers, BOMs, physical line numbering, file-level problems; plus controls that
must pass untouched. test_corpus.py checks the validator against the manifest, and that this
script still writes exactly the committed files.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "files"
E, W = "error", "warning"

# ----------------------------------------------------------------------------- valid rows per format

WORDS = ("river stone lamp orchard violet quiet market engine harbor lantern meadow copper ribbon "
         "signal garden winter silver canyon thunder pepper").split()


def sentence(rng: random.Random, n: int = 6) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def alpaca(rng):
    row = {"instruction": sentence(rng), "output": sentence(rng, 8)}
    if rng.random() < 0.4:
        row["input"] = sentence(rng, 4)
    return row


def chat(rng):
    msgs = [{"role": "system", "content": sentence(rng, 4)}] if rng.random() < 0.4 else []
    for _ in range(rng.randint(1, 3)):
        msgs += [{"role": "user", "content": sentence(rng)}, {"role": "assistant", "content": sentence(rng, 8)}]
    return {"messages": msgs}


def sharegpt(rng):
    turns = []
    for _ in range(rng.randint(1, 2)):
        turns += [{"from": "human", "value": sentence(rng)}, {"from": "gpt", "value": sentence(rng, 8)}]
    return {"conversations": turns}


def preference(rng):
    return {"prompt": sentence(rng), "chosen": sentence(rng, 8), "rejected": sentence(rng, 5)}


def kto(rng):
    return {"prompt": sentence(rng), "completion": sentence(rng, 8), "label": rng.random() < 0.5}


def classification(rng, labels=("positive", "negative", "neutral")):
    return {"text": sentence(rng, 10), "label": rng.choice(labels)}


def classification_int(rng):
    return {"text": sentence(rng, 10), "label": rng.randint(0, 2)}


def text(rng):
    return {"text": " ".join(sentence(rng, 10) for _ in range(3))}


MAKERS = {"alpaca": alpaca, "chat": chat, "sharegpt": sharegpt, "preference": preference, "kto": kto,
          "classification": classification, "text": text}


# ----------------------------------------------------------------------------- writers

class Corpus:
    def __init__(self):
        self.manifest: dict[str, dict] = {}

    def add(self, name: str, data: bytes, problems: list, args: list[str] | None = None) -> None:
        assert name not in self.manifest, name
        (OUT / name).write_bytes(data)
        problems = sorted(problems, key=lambda p: (p[0] or 0, p[1] != E))
        self.manifest[name] = {"args": args or [], "exit": 2 if any(p[1] == E for p in problems) else 0,
                               "problems": [list(p) for p in problems]}


def dumps(row) -> str:
    return json.dumps(row, ensure_ascii=False)


def raw(text: str, placeholders: dict[str, str]) -> str:
    """Serialised JSON with placeholders swapped for what json.dumps cannot write (NaN literals,
    duplicate keys, lone surrogates, deep nesting, huge integers)."""
    for key, value in placeholders.items():
        text = text.replace(key, value)
    return text


PLACEHOLDERS = {'"@NAN@"': "NaN", '"@INF@"': "Infinity", '"@NINF@"': "-Infinity",
                "@LONE_HIGH@": "\\ud83d", "@LONE_LOW@": "\\ude00", "@PAIR@": "\\ud83d\\ude00",
                '"@DEEP@"': "[" * 5000 + "]" * 5000, '"@DEEP150@"': "[" * 150 + "]" * 150,
                '"@BIGINT@"': "7" * 5000, "@DUP@": ""}


def jsonl_bytes(lines: list[str], newline: str = "\n", trailing: bool = True) -> bytes:
    body = newline.join(raw(x, PLACEHOLDERS) for x in lines)
    return (body + (newline if trailing else "")).encode("utf-8", "surrogatepass")


def json_array_bytes(rows_text: list[str]) -> tuple[bytes, list[int]]:
    """A pretty-printed array; returns the bytes and the line each record starts on."""
    out, starts, line = ["["], [], 2
    for i, t in enumerate(rows_text):
        body = raw(t, PLACEHOLDERS)
        starts.append(line)
        out.append("  " + body.replace("\n", "\n  ") + ("," if i < len(rows_text) - 1 else ""))
        line += body.count("\n") + 1
    out.append("]")
    return ("\n".join(out) + "\n").encode("utf-8", "surrogatepass"), starts


def pretty(row) -> str:
    return json.dumps(row, ensure_ascii=False, indent=2)


# ----------------------------------------------------------------------------- mutations of one row
# Each takes (rng, format) and returns (row_json_text, level) or None when it does not apply.


def _dup_key(rng, fmt, row):
    if fmt in ("chat",):
        text = dumps(row)
        return text.replace('{"role": "user"', '{"role": "user", "@DUP@role": "assistant"', 1)
    key = {"alpaca": "instruction", "sharegpt": "conversations", "preference": "prompt", "kto": "label",
           "classification": "label", "text": "text"}[fmt]
    value = row[key]
    body = dumps({k: v for k, v in row.items()})
    return body[:-1] + f', "@DUP@{key}": {json.dumps(value)}}}'


def _text_field(fmt):
    return {"alpaca": ("instruction",), "chat": ("messages", 0, "content"), "sharegpt": ("conversations", 0, "value"),
            "preference": ("chosen",), "kto": ("completion",), "classification": ("text",), "text": ("text",)}[fmt]


def _set(row, path, value):
    target = row
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = value
    return row


def _first_user(row):
    return next(i for i, m in enumerate(row["messages"]) if m["role"] == "user")


def mutations():
    """name -> function(rng, fmt, row) -> (text, level) | None"""
    def lone(marker):
        def f(rng, fmt, row):
            path = _text_field(fmt)
            if fmt == "chat":
                path = ("messages", _first_user(row), "content")
            return dumps(_set(row, path, "Half an emoji " + marker + " here")), E
        return f

    def extra(value):
        return lambda rng, fmt, row: (dumps({**row, "meta": value}), E)

    def whitespace(rng, fmt, row):
        ws = rng.choice(["", " ", "   ", "\t", "\n ", "\u3000"])
        if fmt == "chat":
            return dumps(_set(row, ("messages", _first_user(row), "content"), ws)), E
        if fmt == "sharegpt":
            return dumps(_set(row, ("conversations", 0, "value"), ws)), E
        if fmt in ("preference", "kto"):
            return dumps({**row, "prompt": ws}), E
        key = {"alpaca": rng.choice(["instruction", "output"]), "classification": "text", "text": "text"}[fmt]
        return dumps({**row, key: ws}), E

    def starts_with_assistant(rng, fmt, row):
        if fmt == "chat":
            sys_ = [m for m in row["messages"] if m["role"] == "system"]
            rest = [m for m in row["messages"] if m["role"] != "system"]
            return dumps({"messages": sys_ + [{"role": "assistant", "content": "Hello."}] + rest}), E
        if fmt == "sharegpt":
            return dumps({"conversations": [{"from": "gpt", "value": "Hello there."}] + row["conversations"]}), E
        return None

    def repeated(rng, fmt, row):
        if fmt == "chat":
            msgs = list(row["messages"])
            i = _first_user(row)
            role = rng.choice(["user", "assistant"])
            j = i if role == "user" else i + 1
            msgs.insert(j + 1, {"role": role, "content": "One more thing."})
            return dumps({"messages": msgs}), W
        if fmt == "sharegpt":
            turns = list(row["conversations"])
            turns.insert(1, {"from": "human", "value": "Also this."})
            return dumps({"conversations": turns}), W
        return None

    def wrong_type(rng, fmt, row):
        path = _text_field(fmt)
        return dumps(_set(row, path, rng.choice([5, 2.5, True, None, ["x"], {"a": 1}]))), E

    def missing(rng, fmt, row):
        key = {"alpaca": "output", "chat": None, "sharegpt": None, "preference": "rejected", "kto": "completion",
               "classification": "text", "text": None}[fmt]
        if fmt == "chat":
            return dumps({"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}), E
        if key is None:
            return dumps({"txt": "no known key"}), E
        return dumps({k: v for k, v in row.items() if k != key}), E

    def truncated(rng, fmt, row):
        t = dumps(row)
        return t[: rng.randint(1, len(t) - 2)], E

    def not_object(rng, fmt, row):
        return rng.choice(["[1, 2, 3]", '"a string row"', "42", "null", "true"]), E

    return {
        "dup_key": lambda rng, fmt, row: (_dup_key(rng, fmt, row), E),
        "lone_high": lone("@LONE_HIGH@"), "lone_low": lone("@LONE_LOW@"),
        "nan": extra("@NAN@"), "infinity": extra("@INF@"), "neg_infinity": extra("@NINF@"),
        "deep": extra("@DEEP@"), "deep150": extra("@DEEP150@"), "bigint": extra("@BIGINT@"),
        "whitespace": whitespace, "starts_with_assistant": starts_with_assistant, "repeated_role": repeated,
        "wrong_type": wrong_type, "missing": missing, "truncated": truncated, "not_object": not_object,
    }


# ----------------------------------------------------------------------------- file families


def jsonl_and_json_files(c: Corpus, rng: random.Random) -> None:
    """Every row mutation x format, in .jsonl and as a pretty-printed .json array."""
    muts = mutations()
    for mname, mut in muts.items():
        for fmt, make in MAKERS.items():
            n = rng.randint(5, 9)
            rows = [make(rng) for _ in range(n)]
            bad_at = sorted(rng.sample(range(n), k=min(n, rng.choice([1, 1, 2]))))
            texts, expected = [], []
            applies = True
            for i, row in enumerate(rows):
                if i in bad_at:
                    got = mut(rng, fmt, json.loads(json.dumps(row)))
                    if got is None or got[0] is None:
                        applies = False
                        break
                    texts.append(got[0])
                    expected.append((i, got[1]))
                else:
                    texts.append(dumps(row))
            if not applies:
                continue
            c.add(f"{mname}__{fmt}.jsonl", jsonl_bytes(texts), [(i + 1, lvl) for i, lvl in expected])
            if mname in ("truncated", "deep"):
                continue  # in a .json file these end the file: covered below
            pretty_texts = [t if i in bad_at else pretty(rows[i]) for i, t in enumerate(texts)]
            data, starts = json_array_bytes(pretty_texts)
            c.add(f"{mname}__{fmt}.json", data, [(starts[i], lvl) for i, lvl in expected])


def json_structure_files(c: Corpus, rng: random.Random) -> None:
    rows = [pretty(alpaca(rng)) for _ in range(4)]
    data, starts = json_array_bytes(rows)
    text = data.decode()
    # a syntax error ends a .json file: it is reported at its own line
    broken = text.replace('"output"', '"output" 1', 1)
    c.add("json_syntax_error.json", broken.encode(), [(broken[:broken.index('" 1')].count("\n") + 1, E)])
    c.add("json_trailing_comma.json", text.replace("\n]", ",\n]").encode(), [(text.count("\n"), E)])
    cut = text[: text.rindex("}") + 1]
    c.add("json_cut_off.json", cut.encode(), [(cut.count("\n") + 1, E)])
    c.add("json_text_after_array.json", (text + "extra\n").encode(), [(text.count("\n") + 1, E)])
    deep = json_array_bytes([rows[0], '{"instruction": "a", "output": "b", "meta": "@DEEP@"}', rows[1]])
    c.add("json_deep_stops_file.json", deep[0], [(deep[1][1], E)])
    c.add("json_scalar.json", b"\n\n  42\n", [(None, E)])
    c.add("json_string.json", b'"rows"\n', [(None, E)])
    lines = [dumps(alpaca(rng)) for _ in range(5)]
    c.add("control_json_lines_in_json.json", ("\n".join(lines) + "\n").encode(), [])
    c.add("control_json_one_object.json", pretty(alpaca(rng)).encode(), [])
    c.add("control_json_bom.json", b"\xef\xbb\xbf" + data, [])
    c.add("control_json_crlf.json", data.replace(b"\n", b"\r\n"), [])
    mixed = text.replace("\n", "\r\n", 3)
    c.add("control_json_mixed_newlines.json", mixed.encode(), [])


def jsonl_structure_files(c: Corpus, rng: random.Random) -> None:
    def rows(n, make=alpaca):
        return [dumps(make(rng)) for _ in range(n)]

    r = rows(6)
    c.add("blank_lines_between.jsonl", jsonl_bytes([r[0], "", r[1], "   ", r[2], "\t", r[3]]),
          [(2, W), (4, W), (6, W)])
    c.add("blank_line_at_end.jsonl", jsonl_bytes(r[:3] + [""]), [(4, W)])
    c.add("bom_on_later_line.jsonl", jsonl_bytes(r[:3]) + b"\xef\xbb\xbf" + jsonl_bytes(r[3:]), [(4, E)])
    c.add("bom_mid_line_outside_string.jsonl", jsonl_bytes(r[:2] + ['{"instruction": "a",\ufeff "output": "b"}']),
          [(3, E)])
    c.add("control_bom_at_start.jsonl", b"\xef\xbb\xbf" + jsonl_bytes(r), [])
    c.add("control_bom_char_inside_text.jsonl", jsonl_bytes(r[:2] + [dumps({"instruction": "39 N \ufeff/ 98 W",
                                                                         "output": "ok"})]), [])
    c.add("control_crlf.jsonl", jsonl_bytes(r, newline="\r\n"), [])
    c.add("control_no_trailing_newline.jsonl", jsonl_bytes(r, trailing=False), [])
    c.add("control_escaped_surrogate_pair.jsonl",
          jsonl_bytes(r[:2] + ['{"instruction": "smile @PAIR@", "output": "@PAIR@ back"}']), [])
    c.add("control_raw_emoji.jsonl", jsonl_bytes(r[:2] + [dumps({"instruction": "smile 😀 你好 مرحبا",
                                                                "output": "😀"})]), [])
    c.add("control_extra_fields.jsonl", jsonl_bytes([dumps({**json.loads(x), "id": i, "tags": ["a"], "score": 0.5,
                                                          "nested": {"deep": [1, {"x": None}]}})
                                                   for i, x in enumerate(r)]), [])
    c.add("control_deep_but_allowed.jsonl", jsonl_bytes(r[:2] + ['{"instruction": "a", "output": "b", "meta": '
                                                                 + "[" * 60 + "]" * 60 + "}"]), [])
    c.add("control_reordered_keys.jsonl", jsonl_bytes([dumps(dict(reversed(list(json.loads(x).items())))) for x in r]),
          [])
    c.add("control_content_parts.jsonl", jsonl_bytes([dumps({"messages": [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]},
        {"role": "assistant", "content": "Hello."}]})]), [])
    c.add("control_tool_calls.jsonl", jsonl_bytes([dumps({"messages": [
        {"role": "user", "content": "Weather in Lima?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
            "name": "weather", "arguments": "{\"city\": \"Lima\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "18C"},
        {"role": "assistant", "content": "18C in Lima."}]})]), [])
    # physical lines: separators that str.splitlines() would split on, inside strings, then an error
    for name, sep in (("u2028", "\u2028"), ("u2029", "\u2029"), ("nel", "\u0085")):
        weird = dumps({"instruction": f"one{sep}two{sep}three", "output": f"a{sep}b"})
        c.add(f"line_numbers_{name}.jsonl", jsonl_bytes([r[0], weird, weird, '{"instruction": "x"}', r[1]]),
              [(4, E)])
        c.add(f"control_{name}_inside_strings.jsonl", jsonl_bytes([r[0], weird, r[1]]), [])
    c.add("line_numbers_crlf.jsonl", jsonl_bytes([r[0], r[1], '{"instruction": "x"}', r[2]], newline="\r\n"), [(3, E)])
    c.add("raw_form_feed_in_string.jsonl", jsonl_bytes([r[0], '{"instruction": "a\fb", "output": "c"}', r[1]]),
          [(2, E)])
    c.add("lone_cr_separators.jsonl", ("\r".join(r[:3]) + "\n" + r[3] + "\n").encode(), [(1, E)])
    long = dumps({"instruction": "long " + "x" * 3000, "output": "y"})
    c.add("long_line_warning.jsonl", jsonl_bytes([r[0], long, r[1], long]), [(2, W), (4, W)],
          args=["data.max_row_bytes=2000"])
    c.add("control_long_line_default_limit.jsonl", jsonl_bytes([r[0], long]), [])
    c.add("invalid_utf8.jsonl", jsonl_bytes(r[:2]) + b'{"instruction": "caf\xe9", "output": "x"}\n'
          + jsonl_bytes(r[2:4]), [(3, E)])
    c.add("utf16.jsonl", "\n".join(r[:3]).encode("utf-16"), [(None, E)])
    c.add("raw_surrogate_bytes.jsonl", jsonl_bytes(r[:1]) + b'{"instruction": "\xed\xa0\xbd", "output": "x"}\n',
          [(2, E)])
    c.add("two_objects_one_line.jsonl", jsonl_bytes([r[0], r[1] + " " + r[2], r[3]]), [(2, E)])
    c.add("unknown_role.jsonl", jsonl_bytes([dumps({"messages": [{"role": "human", "content": "a"},
                                                                 {"role": "assistant", "content": "b"}]})]), [(1, E)])
    c.add("system_not_first.jsonl", jsonl_bytes([dumps({"messages": [{"role": "user", "content": "a"},
                                                                     {"role": "system", "content": "s"},
                                                                     {"role": "assistant", "content": "b"}]})]),
          [(1, E)])
    c.add("no_assistant.jsonl", jsonl_bytes([r[0], dumps({"messages": [{"role": "user", "content": "a"}]})]), [(2, E)])
    c.add("empty_system_warns.jsonl", jsonl_bytes([dumps({"messages": [{"role": "system", "content": " "},
                                                                       {"role": "user", "content": "a"},
                                                                       {"role": "assistant", "content": "b"}]})]),
          [(1, W)])
    c.add("identical_pair.jsonl", jsonl_bytes([dumps({"prompt": "p", "chosen": "same", "rejected": "same"})]), [(1, E)])
    c.add("kto_label_not_bool.jsonl", jsonl_bytes([dumps({"prompt": "p", "completion": "c", "label": "true"})]),
          [(1, E)])
    c.add("image_parts.jsonl", jsonl_bytes([dumps({"messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x.png"}}]},
        {"role": "assistant", "content": "A cat."}]})]), [(1, E)])
    c.add("preference_prompt_messages_start_with_assistant.jsonl", jsonl_bytes([dumps({
        "prompt": [{"role": "assistant", "content": "Hi"}], "chosen": "a", "rejected": "b"})]), [(1, E)])


def label_files(c: Corpus, rng: random.Random) -> None:
    """Classification files mixing label kinds: the minority lines are the bad ones."""
    for i in range(12):
        n = rng.randint(6, 14)
        minority = rng.randint(1, max(1, (n - 1) // 2 - (n % 2 == 0)))
        kinds = ["major"] * (n - minority) + ["minor"] * minority
        rng.shuffle(kinds)
        if kinds[0] == "minor" and kinds.count("minor") * 2 == n:
            kinds.reverse()
        major_int = i % 2 == 0
        rows, bad = [], []
        for j, k in enumerate(kinds):
            use_int = major_int if k == "major" else not major_int
            label = rng.randint(0, 2) if use_int else rng.choice(["positive", "negative"])
            rows.append({"text": sentence(rng, 8), "label": label})
            if k == "minor":
                bad.append((j + 1, E))
        c.add(f"mixed_labels_{i:02d}.jsonl", jsonl_bytes([dumps(r) for r in rows]), bad)
        # the same rows as CSV: integer-looking text against other text
        lines = ["text,label"] + [f'"{r["text"]}",{r["label"]}' for r in rows]
        c.add(f"mixed_labels_{i:02d}.csv", ("\n".join(lines) + "\n").encode(), [(ln + 1, lvl) for ln, lvl in bad])
    rows = [{"text": "a", "label": 1}, {"text": "b", "label": "1"}, {"text": "c", "label": 2}]
    c.add("mixed_label_types_number_vs_string.jsonl", jsonl_bytes([dumps(r) for r in rows]), [(2, E)])
    rows = [{"text": "a", "label": "pos"}, {"text": "b", "label": 0}]
    c.add("mixed_labels_tie_first_row_wins.jsonl", jsonl_bytes([dumps(r) for r in rows]), [(2, E)])
    c.add("control_labels_padded.csv", b"text,label\nfine day,positive\nbad day, negative\nok day,positive \n", [])
    c.add("float_label.jsonl", jsonl_bytes([dumps({"text": "a", "label": 1.5}), dumps({"text": "b", "label": 1})]),
          [(1, E)])
    c.add("bool_label.jsonl", jsonl_bytes([dumps({"text": "a", "label": True})]), [(1, E)])


def delimited_files(c: Corpus, rng: random.Random) -> None:
    def table(n, header=("text", "label"), sep=","):
        lines = [sep.join(header)]
        for _ in range(n):
            lines.append(sep.join([sentence(rng, 6), rng.choice(["positive", "negative"])]))
        return lines

    for suffix, sep in ((".csv", ","), (".tsv", "\t")):
        t = table(6, sep=sep)
        body = ("\n".join(t) + "\n").encode()
        c.add(f"control_basic{suffix}", body, [])
        c.add(f"control_bom{suffix}", b"\xef\xbb\xbf" + body, [])
        c.add(f"control_crlf{suffix}", body.replace(b"\n", b"\r\n"), [])
        c.add(f"control_no_trailing_newline{suffix}", body.rstrip(b"\n"), [])
        rev = [sep.join(reversed(x.split(sep))) for x in t]
        c.add(f"control_reordered_header{suffix}", ("\n".join(rev) + "\n").encode(), [])
        extra = [x + sep + str(i) for i, x in enumerate(t)]
        extra[0] = t[0] + sep + "id"
        c.add(f"control_extra_column{suffix}", ("\n".join(extra) + "\n").encode(), [])
        for name, header in (("no_text_column", ("sentence", "label")), ("no_known_columns", ("review", "stars")),
                             ("no_label_column", ("text", "sentiment")),
                             ("headerless", ("The movie was fine", "positive"))):
            tt = table(5, header=header, sep=sep)
            c.add(f"{name}{suffix}", ("\n".join(tt) + "\n").encode(), [(1, E)])
        c.add(f"header_only{suffix}", (t[0] + "\n").encode(), [(None, E)])
        c.add(f"duplicate_header{suffix}", ("\n".join([sep.join(["text", "label", "text"])]
                                                       + [x + sep + "z" for x in t[1:]]) + "\n").encode(), [(1, E)])
        nul = list(t)
        nul[3] = sep.join(["has a \x00 byte", "positive"])
        c.add(f"nul_byte{suffix}", ("\n".join(nul) + "\n").encode(), [(4, E)])
        few = list(t)
        few[2] = "only one field"
        c.add(f"wrong_field_count{suffix}", ("\n".join(few) + "\n").encode(), [(3, E)])
        blank = t[:3] + [""] + t[3:]
        c.add(f"blank_row{suffix}", ("\n".join(blank) + "\n").encode(), [(4, W)])
        bom = ("\n".join(t[:3]) + "\n").encode() + b"\xef\xbb\xbf" + ("\n".join(t[3:]) + "\n").encode()
        c.add(f"bom_on_later_line{suffix}", bom, [(4, E)])
        c.add(f"invalid_utf8{suffix}", ("\n".join(t[:2]) + "\n").encode() + b"caf\xe9" + sep.encode()
              + b"positive\n" + ("\n".join(t[2:]) + "\n").encode(), [(3, E)])
        empty_label = list(t)
        empty_label[5] = sep.join(["some text", " "])
        c.add(f"empty_label{suffix}", ("\n".join(empty_label) + "\n").encode(), [(6, E)])
        empty_text = list(t)
        empty_text[2] = sep.join(["   ", "positive"])
        c.add(f"whitespace_text{suffix}", ("\n".join(empty_text) + "\n").encode(), [(3, E)])
        c.add(f"long_line_warning{suffix}", ("\n".join(t[:2] + [sep.join(["y" * 3000, "positive"])] + t[2:]) + "\n")
              .encode(), [(3, W)], args=["data.max_row_bytes=2000"])
        c.add(f"utf16{suffix}", ("\n".join(t) + "\n").encode("utf-16"), [(None, E)])
        c.add(f"empty{suffix}", b"", [(None, E)])
    # CSV quoting: multi-line fields keep later line numbers physical
    lines = ["text,label", '"line one\nline two\nline three",positive', "plain,negative",
             '"a ""quoted"" word",positive', "bad row only"]
    c.add("multiline_field_then_error.csv", ("\n".join(lines) + "\n").encode(), [(7, E)])
    c.add("control_multiline_quoted.csv", ("\n".join(lines[:4]) + "\n").encode(), [])
    c.add("control_multiline_crlf_inside.csv", b'text,label\r\n"first\r\nsecond",positive\r\nthird,negative\r\n', [])
    c.add("control_u2028_in_field.csv", "text,label\nsep\u2028inside,positive\nnext\u0085one,negative\nff\fvt\v,x\n"
          .encode(), [])
    c.add("unclosed_quote_at_end.csv", b'text,label\nfine,positive\n"never closed,negative\nmore,positive\n', [(3, E)])
    c.add("quote_after_closing_quote.csv", b'text,label\n"a"b,positive\nfine,negative\n', [(2, E)])
    c.add("columns_mapped.csv", b"sentence,sentiment\nnice,positive\nbad,negative\n", [],
          args=["data.columns={text: sentence, label: sentiment}"])
    c.add("explicit_format_missing_label.csv", b"text,sentiment\nnice,positive\n", [(1, E)],
          args=["data.format=classification"])
    c.add("control_alpaca.csv", b"instruction,input,output\nSay hi,,Hi\nAdd,2 and 2,4\n", [])
    c.add("control_raw_text_column.csv", b"text\nA line of a book.\nAnother line.\n", [])
    c.add("control_raw_text_explicit.csv", b"text,source\nA line of a book.,gutenberg\n", [], args=["data.format=text"])
    c.add("control_quoted_delimiters.tsv", b'text\tlabel\n"tab\tinside"\tpositive\n', [])


def text_files(c: Corpus, rng: random.Random) -> None:
    paras = [" ".join(sentence(rng, 10) for _ in range(2)) for _ in range(4)]
    body = "\n\n".join(paras) + "\n"
    c.add("control_paragraphs.txt", body.encode(), [])
    c.add("control_bom.txt", b"\xef\xbb\xbf" + body.encode(), [])
    c.add("control_crlf.txt", body.replace("\n", "\r\n").encode(), [])
    c.add("control_form_feed.txt", body.replace("\n\n", "\n\f\n", 1).encode(), [])
    c.add("invalid_utf8.txt", body.encode() + b"\nbad \xff byte\n", [(len(body.splitlines()) + 2, E)])
    c.add("nul_byte.txt", b"fine\n\nhas \x00 nul\n", [(3, E)])
    c.add("bom_on_later_line.txt", b"first\n\n\xef\xbb\xbfsecond\n", [(3, E)])
    c.add("whitespace_only.txt", b"  \n\n\t\n", [(None, E)])
    c.add("long_line_warning.txt", ("short\n\n" + "z" * 3000 + "\n").encode(), [(3, W)],
          args=["data.max_row_bytes=2000"])


def file_level(c: Corpus) -> None:
    for suffix in (".jsonl", ".json"):
        c.add(f"empty{suffix}", b"", [(None, E)])
        c.add(f"bom_only{suffix}", b"\xef\xbb\xbf", [(None, E)])
        c.add(f"whitespace_only{suffix}", b"  \n\t\n\n", [(None, E)])  # no blank-line warnings: one problem
    c.add("empty_array.json", b"[]\n", [(None, E)])
    c.add("empty_array_spaced.json", b"  [\n\n  ]  \n", [(None, E)])
    c.add("bom_only.csv", b"\xef\xbb\xbf", [(None, E)])
    c.add("bom_header_no_rows.csv", b"\xef\xbb\xbftext,label\r\n", [(None, E)])
    c.add("empty.txt", b"", [(None, E)])


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    c = Corpus()
    rng = random.Random(11)
    jsonl_and_json_files(c, rng)
    json_structure_files(c, random.Random(12))
    jsonl_structure_files(c, random.Random(13))
    label_files(c, random.Random(14))
    delimited_files(c, random.Random(15))
    text_files(c, random.Random(16))
    file_level(c)
    (HERE / "manifest.json").write_text(json.dumps(c.manifest, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(c.manifest)} files to {OUT}")


if __name__ == "__main__":
    main()
