"""The classify recipe on the real embedded encoder (all-MiniLM-L6-v2) and its metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tunesmith
from tunesmith.recipes.classify import classification_metrics

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "classify-minilm.yaml"


def test_metrics_known_answers():
    m = classification_metrics([0, 0, 1, 1, 2, 0], [0, 1, 1, 1, 2, 2], num_labels=3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # class 0: P 1/3 R 1; class 1: P 1 R 2/3; class 2: P 1 R 1/2
    assert m["precision_macro"] == pytest.approx((1 / 3 + 1 + 1) / 3)
    assert m["recall_macro"] == pytest.approx((1 + 2 / 3 + 1 / 2) / 3)
    f1 = [2 * (1 / 3) * 1 / (1 / 3 + 1), 2 * 1 * (2 / 3) / (1 + 2 / 3), 2 * 1 * 0.5 / 1.5]
    assert m["f1_macro"] == pytest.approx(sum(f1) / 3)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_classifier_learns_the_shipped_sentiment_task(tmp_path, method):
    run_dir = tunesmith.train(CONFIG, {"output_dir": str(tmp_path), "train.method": method,
                                       "train.learning_rate": 1e-4 if method == "full" else 1e-3},
                              show_progress=False)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    result = manifest["result"]
    assert manifest["labels"] == ["negative", "positive"]
    assert result["accuracy"] >= 0.9 and result["f1_macro"] >= 0.9, result
    out = run_dir / ("model" if method == "full" else "adapter")
    assert json.loads((out / "labels.json").read_text()) == ["negative", "positive"]
    if method == "lora":
        assert manifest["parameters"]["trainable"] < manifest["parameters"]["total"] / 2
        from peft import PeftModel
        from transformers import AutoModelForSequenceClassification

        from tunesmith.models.loading import resolve

        base = AutoModelForSequenceClassification.from_pretrained(resolve("all-minilm-l6-v2").path, num_labels=2)
        assert PeftModel.from_pretrained(base, out) is not None


def test_classify_refuses_chat_rows(tmp_path):
    from tunesmith.errors import TunesmithError

    chat = Path(__file__).resolve().parents[2] / "examples" / "quickstart" / "train.jsonl"
    with pytest.raises(TunesmithError, match="this recipe trains on classification rows"):
        tunesmith.train(CONFIG, {"output_dir": str(tmp_path), "data.train": [str(chat)]}, show_progress=False)
