"""Vision-language rows: chat conversations with images, from the shapes the field uses, checked
with file:line, and turned into the model processor's input ids and loss labels.

Source shapes (format=auto detects them per row, formats.py hands them here):
  OpenAI chat     messages whose content is a list of parts: {type: text, text},
                  {type: image_url, image_url: {url}} (a path, file://path or data:image/...;base64,...),
                  {type: image, image|path|url: ...}, or a bare {type: image} that takes the next
                  entry of the row's top-level `images` list (the Hugging Face datasets shape)
  LLaVA / ShareGPT-4V   {image: "x.jpg" | [...], conversations: [{from: human, value: "<image>\\n..."},
                  {from: gpt, value}]}: one "<image>" in the human turns per image

Canonical record (kind "vision"): messages whose content is always a list of {type: text, text}
and {type: image} parts (what multimodal chat templates take), and extra["images"]: the image
references in the order of the image parts. Reading a row does no file IO; `check_images` opens
every image (missing, unreadable, too large, outside the image root, too many), since where the
images live depends on the config's vision section.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from tunesmith.data.templates import IGNORE_INDEX, PrepStats, Tokenized, _labels, assistant_spans
from tunesmith.errors import Problem, TunesmithError

IMAGE_PLACEHOLDER = "<image>"  # LLaVA's marker for where an image sits in a turn's text
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
_DATA_URL = re.compile(r"data:image/[\w.+-]+;base64,", re.IGNORECASE)


# --------------------------------------------------------------------------- reading rows


def is_vision(row: dict) -> bool:
    """A row that carries images: LLaVA's image(s) key beside a conversation, or message content parts
    of an image type. Cheap on text rows: string contents are skipped at once."""
    if (row.get("image") or row.get("images")) and ("conversations" in row or "messages" in row):
        return True  # an empty or null image key (mixed exports of HF datasets) leaves a text row
    msgs = row.get("messages")
    if not isinstance(msgs, list):
        return False
    return any(isinstance(m, dict) and isinstance(m.get("content"), list) and any(
        isinstance(p, dict) and p.get("type") in ("image", "image_url") for p in m["content"]) for m in msgs)


def convert(row: dict, w) -> tuple[list[dict], dict] | None:
    """One vision row -> (messages, {"images": refs}); problems go to `w` (formats._Where)."""
    out = _from_messages(row, w) if "messages" in row else _from_conversations(row, w)
    if out is None or w.failed:
        return None
    messages, located = out  # [(reference, the field it came from)]
    _check_turns(messages, w, "messages" if "messages" in row else "conversations")
    for ref, field in located:
        _check_ref(ref, w, field)
    return None if w.failed else (messages, {"images": [r for r, _ in located],
                                             "image_fields": [f for _, f in located]})


def _image_list(row: dict, w) -> list[tuple[str, str]]:
    """The row's top-level image(s), a string or a list of strings, each with its field name."""
    key = "images" if "images" in row else "image"
    value = row.get(key)
    if value is None:
        return []
    refs = [value] if isinstance(value, str) else value
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        w.add(f"'{key}' is {type(value).__name__}, not a path or a list of paths",
              "give the image path (or data URL) as a string, or a list of them", key, "wrong_type")
        return []
    return [(value, key)] if isinstance(value, str) else [(r, f"{key}[{i}]") for i, r in enumerate(refs)]


def _part_ref(part: dict) -> str | None:
    """The image reference inside one image part, or None for a bare {type: image}."""
    if part["type"] == "image_url":
        url = part.get("image_url")
        return url.get("url") if isinstance(url, dict) else url
    for key in ("image", "path", "url"):
        if part.get(key) is not None:
            return part[key]
    return None


def _from_messages(row: dict, w) -> tuple[list[dict], list] | None:
    msgs = row.get("messages")
    if not isinstance(msgs, list) or not msgs:
        w.add("'messages' must be a non-empty list of {role, content}", "see the OpenAI chat format", "messages",
              "wrong_type")
        return None
    listed, taken, refs, out = _image_list(row, w), 0, [], []
    for i, m in enumerate(msgs):
        f = f"messages[{i}]"
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            got = m.get("role") if isinstance(m, dict) else type(m).__name__
            w.add(f"role {got!r} is not system, user or assistant", "fix the role", f"{f}.role", "bad_role")
            continue
        content = m.get("content")
        if isinstance(content, str):
            if IMAGE_PLACEHOLDER in content:
                w.add(f"the text holds {IMAGE_PLACEHOLDER!r}, which the model would read as an image",
                      "give images as {type: image_url} parts, not as text", f"{f}.content", "placeholder_count")
            out.append({"role": m["role"], "content": [{"type": "text", "text": content}]})
            continue
        if not isinstance(content, list) or not content:
            w.add("content is not a string or a non-empty list of parts", "see the OpenAI content-part format",
                  f"{f}.content", "wrong_type")
            continue
        parts = []
        for j, p in enumerate(content):
            fp = f"{f}.content[{j}]"
            kind = p.get("type") if isinstance(p, dict) else None
            if kind == "text" and isinstance(p.get("text"), str):
                if IMAGE_PLACEHOLDER in p["text"]:
                    w.add(f"the text holds {IMAGE_PLACEHOLDER!r}, which the model would read as an image",
                          "give images as {type: image_url} parts, not as text", fp, "placeholder_count")
                parts.append({"type": "text", "text": p["text"]})
            elif kind in ("image", "image_url"):
                ref = _part_ref(p)
                if ref is None:  # a bare {type: image}: the next entry of the row's `images`
                    taken += 1
                    if taken > len(listed):
                        continue  # counted below
                    ref, fp = listed[taken - 1]
                parts.append({"type": "image"})
                refs.append((ref, fp))
            else:
                w.add(f"part type {kind!r} is not text, image_url or image", "use text and image parts only", fp,
                      "wrong_type")
        out.append({"role": m["role"], "content": parts})
    if taken != len(listed):
        w.add(f"{taken} image parts without a path, but {len(listed)} entries in 'images'",
              "give one {type: image} part per entry of 'images', in order", "images", "placeholder_count")
    return out, refs


def _from_conversations(row: dict, w) -> tuple[list[dict], list] | None:
    turns = row.get("conversations")
    if not isinstance(turns, list) or not turns:
        w.add("'conversations' must be a non-empty list of {from, value}", "see the LLaVA / ShareGPT format",
              "conversations", "wrong_type")
        return None
    refs = _image_list(row, w)
    out, placeholders = [], 0
    for i, t in enumerate(turns):
        if not isinstance(t, dict) or t.get("from") not in ROLES or not isinstance(t.get("value"), str):
            got = t.get("from") if isinstance(t, dict) else type(t).__name__
            w.add(f"turn is not {{from, value}} with a known role (got {got!r})",
                  f"use from: one of {', '.join(ROLES)}, and a string value", f"conversations[{i}]", "bad_role")
            continue
        pieces = t["value"].split(IMAGE_PLACEHOLDER)
        parts: list[dict] = []
        for k, text in enumerate(pieces):
            if k:
                parts.append({"type": "image"})
            if text:
                parts.append({"type": "text", "text": text})
        placeholders += len(pieces) - 1
        out.append({"role": ROLES[t["from"]], "content": parts})
    if placeholders != len(refs) and not w.failed:
        w.add(f"{placeholders} {IMAGE_PLACEHOLDER} placeholders in the turns, but {len(refs)} images",
              f"put one {IMAGE_PLACEHOLDER} in the human turns for each image, where the image belongs",
              "conversations", "placeholder_count")
    return out, refs


def _text(message: dict) -> str:
    return "".join(p["text"] for p in message["content"] if p["type"] == "text")


def _check_turns(messages: list[dict], w, name: str) -> None:
    """A reply to learn, turns in a usable order, images only where the model reads them."""
    for i, m in enumerate(messages):
        if m["role"] == "system" and i:
            w.add("a system message must come first", "move it to the start", f"{name}[{i}]", "bad_role")
        if m["role"] == "assistant" and any(p["type"] == "image" for p in m["content"]):
            w.add("an assistant turn holds an image: the model reads images but never writes them",
                  "move the image into the user turn before it", f"{name}[{i}]", "image_in_reply")
        if m["role"] in ("user", "assistant") and not m["content"]:
            w.add(f"{m['role']} content is empty", "fill it in or drop the turn", f"{name}[{i}]", "empty_field")
        elif m["role"] == "assistant" and not _text(m).strip():
            w.add("assistant content is empty", "fill it in or drop the turn", f"{name}[{i}]", "empty_field")
    turns = [(i, m["role"]) for i, m in enumerate(messages) if m["role"] != "system"]
    if not any(r == "assistant" for _, r in turns):
        w.add("no assistant message, so nothing to learn", "add the reply to learn", name, "no_assistant")
    elif turns[0][1] == "assistant":
        w.add("the conversation starts with the assistant's message", "add the user turn it answers",
              f"{name}[{turns[0][0]}]", "bad_order")


def _check_ref(ref: object, w, field: str) -> None:
    """What can be said of a reference without opening it."""
    if not isinstance(ref, str) or not ref.strip():
        w.add(f"the image reference is {ref!r}", "give a path, file:// URL or data:image/...;base64 URL", field,
              "wrong_type")
    elif ref.startswith("data:") and not _DATA_URL.match(ref):
        w.add(f"data URL {ref[:40]!r} is not data:image/<type>;base64,...",
              "embed images as base64 data URLs of an image type", field, "bad_data_url")
    elif urlparse(ref).scheme in ("http", "https"):
        w.add(f"remote image {ref!r}: training reads local files only, so runs are repeatable",
              "download the images and give their paths", field, "remote_image")


# --------------------------------------------------------------------------- opening images


class _Bad(Exception):
    def __init__(self, problem: str, fix: str, code: str):
        super().__init__(problem)
        self.problem, self.fix, self.code = problem, fix, code


def image_root(image_root: str | None, config_path: str | None, data_file: str) -> Path:
    """The folder a row's relative image paths are read from: vision.image_root (relative to the
    config file), else the folder of the data file."""
    if image_root is None:
        return Path(data_file).resolve().parent
    root = Path(image_root).expanduser()
    if not root.is_absolute():
        root = (Path(config_path).parent if config_path else Path.cwd()) / root
    return root.resolve()


def locate(ref: str, root: Path) -> Path:
    """The file a path or file:// reference names, refused when it resolves outside `root`: a data
    file is never trusted to read what it likes (../../etc/passwd, a symlink out of the folder)."""
    path = Path(unquote(urlparse(ref).path)) if ref.startswith("file://") else Path(ref).expanduser()
    resolved = (path if path.is_absolute() else root / path).resolve()
    if not resolved.is_relative_to(root):
        raise _Bad(f"image path {ref!r} leads outside the image root {root}",
                   "keep images under the data file's folder, or set vision.image_root to a folder that holds them",
                   "image_outside_root")
    return resolved


def read_image_bytes(ref: str, root: Path, max_bytes: int) -> bytes:
    """The encoded image a reference names (a data URL's payload, or the file's bytes)."""
    if ref.startswith("data:"):
        head = _DATA_URL.match(ref)
        if head is None:
            raise _Bad(f"data URL {ref[:40]!r} is not data:image/<type>;base64,...",
                       "embed images as base64 data URLs of an image type", "bad_data_url")
        payload = ref[head.end():]
        if len(payload) * 3 // 4 > max_bytes:
            raise _Bad(f"data URL holds about {len(payload) * 3 // 4:,} bytes, over vision.max_image_bytes "
                       f"({max_bytes:,})", "shrink the image or raise vision.max_image_bytes", "image_too_large")
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise _Bad("data URL is not valid base64", "re-encode the image with base64", "bad_data_url") from None
    path = locate(ref, root)
    if not path.is_file():
        raise _Bad(f"image file not found: {path}", "check the path (relative paths start at the image root)",
                   "image_missing")
    size = path.stat().st_size
    if size > max_bytes:
        raise _Bad(f"image {path.name} is {size:,} bytes, over vision.max_image_bytes ({max_bytes:,})",
                   "shrink the image or raise vision.max_image_bytes", "image_too_large")
    return path.read_bytes()


def _verify(data: bytes) -> tuple[int, int]:
    """(width, height) of an encoded image, after PIL's integrity check."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            size = im.size
            im.verify()  # checksums and structure, without decoding every pixel
        return size
    except Exception as e:  # PIL raises many types (UnidentifiedImageError, SyntaxError, OSError, ...)
        raise _Bad(f"not a readable image ({type(e).__name__}: {e})", "replace the file with a valid image",
                   "image_unreadable") from None


def open_image(ref: str, root: Path, max_bytes: int, image_size: int | None = None):
    """A reference as an RGB PIL image, shrunk to at most `image_size` pixels on its longer side."""
    from PIL import Image

    im = Image.open(io.BytesIO(read_image_bytes(ref, root, max_bytes)))
    im = im.convert("RGB")
    if image_size and max(im.size) > image_size:
        im.thumbnail((image_size, image_size))
    return im


@dataclass
class Checked:
    """Rows whose images all opened, each with its image root; what failed; and the images' digest."""

    rows: list[tuple[object, Path]]
    problems: list[Problem]
    images: int
    sha256: str

    def raise_if_errors(self, shown: int = 50) -> None:
        if self.problems:
            n = len({(p.file, p.line) for p in self.problems})
            raise TunesmithError(self.problems[:shown], title=f"{n} row{'s' * (n != 1)} with bad images:")


def check_images(examples: list, vision, config_path: str | None) -> Checked:
    """Open every image of every vision row (`vision`: the config's VisionConfig section); all
    problems are collected, each at its row's file:line. Text-only rows pass through."""
    digest, count, rows, problems = hashlib.sha256(), 0, [], []
    for ex in examples:
        root = image_root(vision.image_root, config_path, ex.file)
        refs = ex.extra.get("images", []) if ex.kind == "vision" else []
        fields = ex.extra.get("image_fields") or [f"images[{i}]" for i in range(len(refs))]
        found = []
        if len(refs) > vision.max_images:
            found.append(Problem(f"{len(refs)} images, over vision.max_images ({vision.max_images})",
                                 "split the row or raise vision.max_images", file=ex.file, line=ex.line,
                                 field=fields[vision.max_images], code="too_many_images"))  # the first too many
        for i, ref in enumerate(refs):
            try:
                data = read_image_bytes(ref, root, vision.max_image_bytes)
                _verify(data)
                digest.update(hashlib.sha256(data).digest())
                count += 1
            except _Bad as e:
                found.append(Problem(e.problem, e.fix, file=ex.file, line=ex.line, field=fields[i], code=e.code))
        problems += found
        if not found:
            rows.append((ex, root))
    return Checked(rows, problems, count, digest.hexdigest())


def placeholder_messages(ex, root: Path | None = None) -> list[dict]:
    """The conversation with each image written as "[image: name WxH]", for previews and text-only
    statistics; an image that cannot be read shows as "[image: name ?]" (validation names it)."""
    root = root or Path(ex.file).resolve().parent
    refs = iter(ex.extra.get("images", []))
    out = []
    for m in ex.messages:
        texts = []
        for p in m["content"] if isinstance(m["content"], list) else [{"type": "text", "text": m["content"]}]:
            if p["type"] != "image":
                texts.append(p["text"])
                continue
            ref = next(refs, "")
            name = ref.split(";", 1)[0] if ref.startswith("data:") else Path(urlparse(ref).path or ref).name
            try:
                w, h = _verify(read_image_bytes(ref, root, 1 << 62))
                texts.append(f"[image: {name} {w}x{h}]")
            except _Bad:
                texts.append(f"[image: {name} ?]")
        out.append({"role": m["role"], "content": "".join(texts)})
    return out


# --------------------------------------------------------------------------- processor: ids and labels


def processor_messages(messages: list[dict]) -> list[dict]:
    """Every content as a list of parts, the shape multimodal chat templates iterate over (a text-only
    chat row's string content too)."""
    return [{"role": m["role"], "content": m["content"] if isinstance(m["content"], list)
             else [{"type": "text", "text": m["content"]}]} for m in messages]


def encode(processor, messages: list[dict], images: list, train_on: str = "assistant") -> Tokenized:
    """Token ids and labels of one conversation with its (opened) images, through the processor.

    The loss mask is decided on the rendered text, as for text rows (data/templates.py): assistant
    replies and their end-of-turn carry loss. The processor then expands each image placeholder
    into the model's image tokens; transformers reports where (return_text_replacement_offsets),
    so the reply spans are shifted by what the expansions before them added, and mapped to tokens
    through the fast tokenizer's offsets. Image tokens, prompt and padding never carry loss."""
    msgs = processor_messages(messages)
    if train_on == "all":
        text, spans = processor.apply_chat_template(msgs, tokenize=False), None
    else:
        text, spans = assistant_spans(processor, msgs)
    enc = processor(text=[text], images=[images] if images else None, add_special_tokens=False,
                    return_offsets_mapping=True, return_text_replacement_offsets=True)
    ids, offsets = list(enc["input_ids"][0]), enc["offset_mapping"][0]
    expansions = (enc.get("text_replacement_offsets") or [[]])[0]
    if spans is None:
        in_image = [any(r["new_span"][0] <= s < r["new_span"][1] for r in expansions) for s, _ in offsets]
        return Tokenized(ids, [IGNORE_INDEX if img else t for t, img in zip(ids, in_image)])

    def shifted(pos: int) -> int:  # a position in the rendered text -> in the expanded text
        return pos + sum(len(r["replacement"]) - (r["span"][1] - r["span"][0]) for r in expansions
                         if r["span"][1] <= pos)

    return Tokenized(ids, _labels(ids, offsets, [(shifted(a), shifted(b)) for a, b in spans]))


def tokenize_rows(processor, checked: list, vision, max_length: int, train_on: str
                  ) -> tuple[list[dict], PrepStats, list[Problem]]:
    """Training rows ({input_ids, labels, messages, images, root}) of the checked (example, root)
    pairs. A row longer than max_length is dropped, never truncated: a cut through an image's
    tokens leaves the model with image features and no place for them."""
    from jinja2 import TemplateError

    stats, rows, problems = PrepStats(), [], []
    for ex, root in checked:
        stats.rows += 1
        refs = ex.extra.get("images", []) if ex.kind == "vision" else []
        try:
            images = [open_image(r, root, vision.max_image_bytes, vision.image_size) for r in refs]
            t = encode(processor, ex.messages, images, train_on)
        except (ValueError, TemplateError, _Bad) as e:  # a template that refuses the row, an image gone since
            problems.append(Problem(str(e), "check the row against the model's chat template", file=ex.file,
                                    line=ex.line, code="template"))
            continue
        stats.lengths.append(len(t.input_ids))
        n_loss = sum(1 for x in t.labels if x != IGNORE_INDEX)
        if len(t.input_ids) > max_length:
            stats.dropped_overlong += 1
        elif not n_loss:
            stats.dropped_no_loss += 1
        else:
            stats.kept += 1
            stats.tokens += len(t.input_ids)
            stats.loss_tokens += n_loss
            rows.append({"input_ids": t.input_ids, "labels": t.labels, "messages": ex.messages, "images": refs,
                         "root": str(root), "file": ex.file, "line": ex.line})
    return rows, stats, problems


def load_processor(path: str, trust_remote_code: bool = False):
    """The model's processor, padding on the right (labels are aligned to the left-justified ids)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    tok = processor.tokenizer
    tok.padding_side = "right"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token  # padding never carries loss and is masked from attention
    return processor
