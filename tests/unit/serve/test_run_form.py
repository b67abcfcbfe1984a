"""What a browser may set through the studio's form (and a job's tunesmith_overrides)."""

from __future__ import annotations

import pytest

from tunesmith.serve.run_form import check_overrides, schema, validate
from tunesmith.serve.schema import APIError


def test_the_form_offers_training_settings_and_no_path_or_launcher():
    keys = {f["key"] for f in schema()}
    assert {"train.epochs", "train.learning_rate", "lora.r", "data.max_length", "seed"} <= keys
    assert not keys & {"model.name", "data.train", "data.validation", "output_dir", "name", "train.launcher",
                       "train.ray_address", "train.tracking_uri", "eval.suite", "audit.suite"}
    method = next(f for f in schema() if f["key"] == "train.method")
    assert method["choices"] and "lora" in method["choices"]
    lr = next(f for f in schema() if f["key"] == "train.learning_rate")
    assert lr["choices"] is None and "auto" in lr["type"]  # a number or auto: a text field


@pytest.mark.parametrize("key", ["model.name", "data.train", "output_dir", "train.ray_address", "../x"])
def test_other_keys_are_refused_by_name(key):
    with pytest.raises(APIError) as info:
        check_overrides({key: "/etc/passwd"})
    assert info.value.code == "not_editable" and info.value.status == 400


def test_values_are_checked_by_the_config_loader():
    typed = validate({"lora.r": "many"}, "smollm2-135m-instruct")  # type errors first, as the loader reports
    assert not typed["ok"] and [p["field"] for p in typed["problems"]] == ["lora.r"]
    ranged = validate({"train.learning_rate": -3, "train.warmup_ratio": 2.0}, "smollm2-135m-instruct")
    assert not ranged["ok"] and {p["field"] for p in ranged["problems"]} == {"train.learning_rate",
                                                                           "train.warmup_ratio"}
    good = validate({"train.epochs": 2, "lora.r": 8}, "smollm2-135m-instruct")
    assert good["ok"] and "epochs: 2" in good["yaml"] and "r: 8" in good["yaml"]
