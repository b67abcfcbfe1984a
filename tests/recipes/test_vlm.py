"""recipe: vlm on a tiny random LLaVA (tests/vlm_fixtures.py) with the shipped config and example
data: validation through the processor, loss on assistant text only, two training steps that
change the adapter, and a run that reloads with plain transformers + peft to the same logits.

configs/vlm-lora.yaml names a hub VLM that cannot be downloaded in tests, so this module is its
shipped-config test (tests/test_shipped_configs.py and tests/recipes/test_shipped_configs_train.py
skip it): the YAML is loaded as shipped and only model.name (plus the run's length and output
folder) is overridden.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from vlm_fixtures import IMAGE_TOKENS, build_tiny_llava

import tunesmith

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "vlm-lora.yaml"


@pytest.fixture(scope="module")
def tiny_vlm_dir(tmp_path_factory, smollm2_dir) -> Path:
    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"), smollm2_dir)


def _config(tiny_vlm_dir, overrides=None):
    return tunesmith.load_config(CONFIG, {"model.name": str(tiny_vlm_dir), **(overrides or {})})


def _examples_with_rows(cfg, processor):
    from tunesmith.data import vision
    from tunesmith.data.prepare import load_all

    loaded = load_all(cfg.data, cfg.seed)
    checked = vision.check_images(loaded.train, cfg.vision, cfg.config_path)
    checked.raise_if_errors()
    rows, stats, problems = vision.tokenize_rows(processor, checked.rows, cfg.vision, cfg.data.max_length,
                                                 cfg.data.train_on)
    assert problems == []
    return loaded.train, rows


def test_shipped_vlm_config_validates_through_the_processor(tiny_vlm_dir):
    from tunesmith.recipes import KINDS

    cfg = _config(tiny_vlm_dir)
    report = tunesmith.validate(cfg, kinds=KINDS[cfg.recipe])
    train = report["data"]["train"]
    assert train["kept"] == train["rows"] == 6
    assert train["images"] == 8 and len(train["images_sha256"]) == 64
    assert 0 < train["loss_token_fraction"] < 1
    assert train["kinds"] == {"vision": 6}


def test_labels_are_assistant_text_only(tiny_vlm_dir):
    from tunesmith.data.templates import IGNORE_INDEX
    from tunesmith.data.vision import load_processor
    from tunesmith.recipes.vlm import VisionCollator

    cfg = _config(tiny_vlm_dir)
    processor = load_processor(str(tiny_vlm_dir))
    tok = processor.tokenizer
    image_id = tok.convert_tokens_to_ids("<image>")
    examples, rows = _examples_with_rows(cfg, processor)
    batch = VisionCollator(processor, cfg.vision)(rows)
    assert batch["pixel_values"].shape[0] == 8  # every image of the batch, in order
    assert (batch["input_ids"] == image_id).sum() == 8 * IMAGE_TOKENS
    for i, ex in enumerate(examples):
        ids, labels = batch["input_ids"][i].tolist(), batch["labels"][i].tolist()
        assert image_id not in labels
        # every run of trained tokens decodes to one assistant reply and its end-of-turn token
        runs, current = [], []
        for tok_id, label in zip(ids, labels):
            if label != IGNORE_INDEX:
                assert label == tok_id
                current.append(tok_id)
            elif current:
                runs.append(current)
                current = []
        runs += [current] if current else []
        replies = [m for m in ex.messages if m["role"] == "assistant"]
        assert [tok.decode(r) for r in runs] == [
            "".join(p["text"] for p in m["content"]) + "<|im_end|>" for m in replies]
        n = sum(batch["attention_mask"][i].tolist())
        assert all(label == IGNORE_INDEX for label in labels[n:])  # padding


def test_train_on_all_still_masks_image_tokens(tiny_vlm_dir):
    from tunesmith.data.vision import load_processor

    cfg = _config(tiny_vlm_dir, {"data.train_on": "all"})
    processor = load_processor(str(tiny_vlm_dir))
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    _, rows = _examples_with_rows(cfg, processor)
    for r in rows:
        assert image_id in r["input_ids"] and image_id not in r["labels"]
        assert sum(label != -100 for label in r["labels"]) == sum(t != image_id for t in r["input_ids"])


def test_lora_targets_the_language_model_only(tiny_vlm_dir):
    from transformers import AutoModelForImageTextToText

    from tunesmith.errors import TunesmithError
    from tunesmith.recipes.vlm import _freeze_for_full, language_targets

    model = AutoModelForImageTextToText.from_pretrained(tiny_vlm_dir)
    default = language_targets(model, ["all-linear"])
    assert len(default) == 2 * 7 and all(n.startswith("model.language_model.layers.") for n in default)
    assert language_targets(model, ["q_proj"]) == [f"model.language_model.layers.{i}.self_attn.q_proj"
                                                   for i in range(2)]  # not the CLIP tower's q_proj
    assert "model.multi_modal_projector.linear_1" in language_targets(model, ["q_proj",
                                                                             "multi_modal_projector.linear_1"])
    with pytest.raises(TunesmithError, match="lora.target_modules"):
        language_targets(model, ["no_such_layer"])
    _freeze_for_full(model, [])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("model.language_model.", "lm_head.")) for n in trainable)


def test_vlm_trains_two_steps_and_reloads_with_plain_transformers_and_peft(tiny_vlm_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor, TrainerCallback

    seen = {}

    class Keep(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            seen["before"] = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

        def on_train_end(self, args, state, control, model=None, **kw):
            seen["model"] = model

    overrides = {"output_dir": str(tmp_path), "train.max_steps": 2, "train.precision": "fp32",
                 "train.logging_steps": 1, "train.warmup_ratio": 0.0}
    run_dir = tunesmith.train(_config(tiny_vlm_dir, overrides), show_progress=False, callbacks=(Keep(),))

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["result"]["steps"] == 2
    assert manifest["images"]["train"]["count"] == 8
    assert [m["step"] for m in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
            if "loss" in m] == [1, 2]
    trained = seen["model"]
    params = dict(trained.named_parameters())
    assert seen["before"] and all("lora_" in n for n in seen["before"])
    assert any(not params[n].detach().equal(t) for n, t in seen["before"].items()), "no adapter weight changed"
    assert not any("vision_tower" in n for n in seen["before"])

    # plain transformers + peft, from the run directory alone
    processor = AutoProcessor.from_pretrained(run_dir / "adapter")
    base = AutoModelForImageTextToText.from_pretrained(tiny_vlm_dir)
    reloaded = PeftModel.from_pretrained(base, run_dir / "adapter").eval()
    from PIL import Image

    image = Image.open(ROOT / "examples" / "vlm" / "images" / "red-square.png")
    conv = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}]
    text = processor.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text], images=[[image]], return_tensors="pt", add_special_tokens=False)
    trained.eval()
    with torch.no_grad():
        expected, got = trained(**inputs).logits, reloaded(**inputs).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    untrained = AutoModelForImageTextToText.from_pretrained(tiny_vlm_dir).eval()
    with torch.no_grad():
        assert not torch.allclose(untrained(**inputs).logits, got, atol=1e-4)  # the adapter does something

    # the text-only tools refuse the run with a way out, instead of a transformers traceback
    from tunesmith.errors import TunesmithError

    for use in (lambda: tunesmith.generate(run_dir, "hi"), lambda: tunesmith.export(run_dir, "hf")):
        with pytest.raises(TunesmithError, match="vision-language run .*recipe: vlm") as e:
            use()
        assert "AutoModelForImageTextToText" in str(e.value)


def test_bad_images_stop_training_before_a_run_directory_exists(tiny_vlm_dir, tmp_path, write_jsonl):
    from tunesmith.errors import TunesmithError

    data = write_jsonl("bad.jsonl", [
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "nope.png"}}]},
                      {"role": "assistant", "content": "x"}]}])
    cfg = _config(tiny_vlm_dir, {"data.train": [str(data)], "vision.image_root": None,
                                 "output_dir": str(tmp_path / "runs")})
    with pytest.raises(TunesmithError, match=r"bad\.jsonl:1: messages\[0\]\.content\[0\]: image file not found"):
        tunesmith.train(cfg, show_progress=False)
    assert not (tmp_path / "runs").exists()


def test_a_batch_may_mix_rows_with_and_without_images(tiny_vlm_dir, tmp_path):
    from tunesmith.config import VisionConfig
    from tunesmith.data.vision import encode, load_processor, open_image
    from tunesmith.recipes.vlm import VisionCollator

    processor = load_processor(str(tiny_vlm_dir))
    root = ROOT / "examples" / "vlm"
    rows = [{"messages": [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Hello."}],
             "images": []},
            {"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Shape?"}]},
                          {"role": "assistant", "content": "A square."}], "images": ["images/red-square.png"]}]
    for i, r in enumerate(rows):
        t = encode(processor, r["messages"], [open_image(ref, root, 10**6) for ref in r["images"]])
        r.update(input_ids=t.input_ids, labels=t.labels, root=str(root), file="rows", line=i + 1)
    batch = VisionCollator(processor, VisionConfig())(rows)
    assert batch["pixel_values"].shape[0] == 1
    assert [processor.tokenizer.decode([t for t in row if t != -100]) for row in batch["labels"].tolist()] == [
        "Hello.<|im_end|>", "A square.<|im_end|>"]


def test_validation_rows_all_dropped_mean_no_evaluation_as_in_sft(tiny_vlm_dir):
    """Every validation row longer than max_length with its image tokens: no evaluation (None, as the
    sft recipe does), not an empty eval set handed to the Trainer."""
    import dataclasses

    from tunesmith.data.prepare import Loaded
    from tunesmith.data.vision import load_processor
    from tunesmith.recipes.common import load_rows
    from tunesmith.recipes.vlm import _datasets

    cfg = _config(tiny_vlm_dir)
    processor = load_processor(str(tiny_vlm_dir))
    loaded = load_rows(cfg)
    ex = loaded.train[0]
    long = [{**m, "content": "word " * cfg.data.max_length} if m["role"] == "assistant" else m for m in ex.messages]
    train, validation, report = _datasets(cfg, Loaded(loaded.train, [dataclasses.replace(ex, messages=long)],
                                                       loaded.info), processor)
    assert len(train) == 6 and validation is None
    assert report["validation"]["dropped_overlong"] == 1
