"""load_config: YAML and dict sources, defaults, overrides, located errors, describe and dump_yaml."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest
import yaml

from tunesmith.config import (
    AuditConfig,
    CleanConfig,
    DataConfig,
    DataSource,
    EnergyConfig,
    EvalConfig,
    FederatedConfig,
    LoraConfig,
    ModelConfig,
    MoEConfig,
    PreferenceConfig,
    PrivacyConfig,
    RLConfig,
    RunConfig,
    SweepConfig,
    TrainConfig,
    VisionConfig,
    describe,
    dump_yaml,
    load_config,
    to_dict,
)
from tunesmith.errors import TunesmithError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problem_for(err: TunesmithError, field: str):
    found = [p for p in err.problems if p.field == field]
    assert len(found) == 1, f"expected one problem for {field}, got {err.problems}"
    return found[0]


# --------------------------------------------------------------------------- loading and defaults


def test_load_from_yaml_file(tmp_path):
    cfg_file = write(tmp_path / "exp.yaml", """
        seed: 7
        model:
          name: my-model
        data:
          train: /abs/train.jsonl
          max_length: 1024
        train:
          batch_size: 4
          learning_rate: 0.001
          method: full
        lora:
          r: 8
    """)
    cfg = load_config(cfg_file)
    assert isinstance(cfg, RunConfig)
    assert cfg.seed == 7
    assert cfg.model.name == "my-model"
    assert cfg.data.train == ["/abs/train.jsonl"]
    assert cfg.data.max_length == 1024
    assert cfg.train.batch_size == 4
    assert cfg.train.learning_rate == 0.001
    assert cfg.train.method == "full"
    assert cfg.lora.r == 8
    assert cfg.config_path == str(cfg_file.resolve())


def test_defaults_are_filled_in(tmp_path):
    cfg = load_config(write(tmp_path / "min.yaml", "data:\n  train: /abs/t.jsonl\n"))
    assert cfg.model == ModelConfig()
    assert cfg.lora == LoraConfig()
    assert cfg.train == TrainConfig()
    assert cfg.model.name == "smollm2-135m-instruct"
    assert cfg.train.learning_rate == cfg.train.batch_size == cfg.train.epochs == "auto"  # resolved from the data
    assert cfg.train.eval_steps == cfg.train.early_stopping_patience == "auto"
    assert cfg.train.lr_scheduler == "cosine"
    assert cfg.lora.target_modules == ["all-linear"]
    assert cfg.data.format == "auto"
    assert cfg.data.max_length == 512
    assert cfg.data.validation is None
    assert cfg.output_dir == "runs"
    assert cfg.seed == 42
    assert cfg.overwrite is False


def test_load_from_dict():
    cfg = load_config({"name": "d", "data": {"train": ["/abs/a.jsonl", "/abs/b.jsonl"]},
                       "train": {"max_steps": 10, "epochs": 2}})
    assert cfg.name == "d"
    assert cfg.data.train == ["/abs/a.jsonl", "/abs/b.jsonl"]
    assert cfg.train.max_steps == 10
    assert cfg.train.epochs == 2.0 and isinstance(cfg.train.epochs, float)
    assert cfg.config_path is None


def test_load_from_dict_does_not_mutate_the_input():
    source = {"data": {"train": "/abs/a.jsonl"}}
    load_config(source, ["data.max_length=64", "train.max_steps=3"])
    assert source == {"data": {"train": "/abs/a.jsonl"}}


def test_dict_config_name_defaults_to_run_and_relative_paths_use_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config({"data": {"train": "rel.jsonl"}})
    assert cfg.name == "run"
    assert cfg.data.train == [str((tmp_path / "rel.jsonl").resolve())]


def test_config_is_frozen(tmp_path):
    cfg = load_config(write(tmp_path / "c.yaml", "data:\n  train: /abs/t.jsonl\n"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.learning_rate = 0.1
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.data = DataConfig()
    assert cfg.seed == 42 and cfg.train.learning_rate == "auto"


def test_relative_data_paths_resolve_against_config_folder(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the current directory must not matter
    cfg_file = write(tmp_path / "configs" / "exp.yaml", """
        data:
          train: [data/a.jsonl, ../b.jsonl, /abs/c.jsonl]
          validation: val.jsonl
    """)
    cfg = load_config(cfg_file)
    base = (tmp_path / "configs").resolve()
    assert cfg.data.train == [str(base / "data" / "a.jsonl"), str((tmp_path / "b.jsonl").resolve()),
                              "/abs/c.jsonl"]
    assert cfg.data.validation == str(base / "val.jsonl")


def test_single_train_path_becomes_a_list(tmp_path):
    cfg = load_config(write(tmp_path / "c.yaml", "data:\n  train: one.jsonl\n"))
    assert cfg.data.train == [str((tmp_path / "one.jsonl").resolve())]


def test_name_defaults_to_file_stem(tmp_path):
    cfg = load_config(write(tmp_path / "my-experiment.yaml", "data:\n  train: t.jsonl\n"))
    assert cfg.name == "my-experiment"


def test_explicit_name_wins_over_file_stem(tmp_path):
    cfg = load_config(write(tmp_path / "my-experiment.yaml", "name: other\ndata:\n  train: t.jsonl\n"))
    assert cfg.name == "other"


def test_yaml_1e_minus_4_string_is_accepted_as_float(tmp_path):
    # PyYAML (YAML 1.1) reads `1e-4` (no dot) as the string "1e-4".
    assert yaml.safe_load("x: 1e-4")["x"] == "1e-4"
    cfg = load_config(write(tmp_path / "c.yaml", "data:\n  train: t.jsonl\ntrain:\n  learning_rate: 1e-4\n"))
    assert cfg.train.learning_rate == pytest.approx(1e-4)
    assert isinstance(cfg.train.learning_rate, float)


def test_int_for_float_field_becomes_float(tmp_path):
    cfg = load_config({"data": {"train": "/abs/t.jsonl"}, "train": {"epochs": 3}})
    assert cfg.train.epochs == 3.0
    assert isinstance(cfg.train.epochs, float)


def test_empty_yaml_file_uses_defaults_but_needs_training_data(tmp_path):
    cfg_file = write(tmp_path / "empty.yaml", "")
    with pytest.raises(TunesmithError) as info:
        load_config(cfg_file)
    p = problem_for(info.value, "data.train")
    assert "no training data" in p.problem
    cfg = load_config(cfg_file, ["data.train=t.jsonl"])
    assert cfg.train == TrainConfig()
    assert cfg.data.train == [str((tmp_path / "t.jsonl").resolve())]


def test_null_section_means_defaults(tmp_path):
    cfg = load_config(write(tmp_path / "c.yaml", "data:\n  train: t.jsonl\nlora:\ntrain:\n"))
    assert cfg.lora == LoraConfig()
    assert cfg.train == TrainConfig()


# --------------------------------------------------------------------------- overrides


def test_string_overrides(tmp_path):
    cfg_file = write(tmp_path / "cfgs" / "c.yaml", """
        data:
          train: orig.jsonl
        train:
          learning_rate: 0.001
          batch_size: 8
    """)
    cfg = load_config(cfg_file, ["train.learning_rate=1e-4", "data.train=x.jsonl", "train.batch_size=2",
                                 "lora.target_modules=[q_proj, v_proj]", "train.gradient_checkpointing=true",
                                 "name=override-name"])
    assert cfg.train.learning_rate == pytest.approx(1e-4)
    # Relative override paths resolve like those in the file: against the config's folder.
    assert cfg.data.train == [str((tmp_path / "cfgs" / "x.jsonl").resolve())]
    assert cfg.train.batch_size == 2
    assert cfg.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.train.gradient_checkpointing is True
    assert cfg.name == "override-name"


def test_override_with_spaces_around_key(tmp_path):
    cfg = load_config({"data": {"train": "/abs/t.jsonl"}}, [" train.max_steps =12"])
    assert cfg.train.max_steps == 12


def test_empty_override_value_is_none():
    cfg = load_config({"data": {"train": "/abs/t.jsonl", "validation": "/abs/v.jsonl"}}, ["data.validation="])
    assert cfg.data.validation is None


def test_dict_overrides():
    cfg = load_config({"data": {"train": "/abs/t.jsonl"}},
                      {"train.max_steps": 10, "train.learning_rate": 3e-4, "model.name": "other", "seed": 1})
    assert cfg.train.max_steps == 10
    assert cfg.train.learning_rate == 3e-4
    assert cfg.model.name == "other"
    assert cfg.seed == 1


def test_override_creates_missing_section():
    cfg = load_config({"data": {"train": "/abs/t.jsonl"}}, ["lora.r=4"])
    assert cfg.lora.r == 4
    assert cfg.lora.alpha == 32


def test_override_for_unknown_key_is_an_error(tmp_path):
    cfg_file = write(tmp_path / "c.yaml", "data:\n  train: t.jsonl\n")
    with pytest.raises(TunesmithError) as info:
        load_config(cfg_file, ["train.learning_rat=1e-4"])
    p = problem_for(info.value, "train.learning_rat")
    assert p.problem == "unknown key"
    assert "did you mean 'train.learning_rate'" in p.fix
    assert p.line is None  # an override has no line in the file
    assert "did you mean 'train.learning_rate'" in str(info.value)


def test_override_for_unknown_section_is_an_error():
    with pytest.raises(TunesmithError) as info:
        load_config({"data": {"train": "/abs/t.jsonl"}}, {"trian.max_steps": 3})
    p = problem_for(info.value, "trian")
    assert "did you mean 'train'" in p.fix


def test_override_with_bad_value_has_no_file_line(tmp_path):
    cfg_file = write(tmp_path / "c.yaml", "data:\n  train: t.jsonl\ntrain:\n  batch_size: 8\n")
    with pytest.raises(TunesmithError) as info:
        load_config(cfg_file, ["train.batch_size=many"])
    p = problem_for(info.value, "train.batch_size")
    assert "'many'" in p.problem and "int" in p.problem
    assert p.line is None


def test_override_without_equals_is_an_error():
    with pytest.raises(TunesmithError) as info:
        load_config({"data": {"train": "/abs/t.jsonl"}}, ["train.max_steps"])
    assert len(info.value.problems) == 1
    assert "'train.max_steps' is not key=value" in str(info.value)


# --------------------------------------------------------------------------- located errors


def test_unknown_key_names_line_and_suggests(tmp_path):
    cfg_file = write(tmp_path / "c.yaml", """
        data:
          train: t.jsonl
        train:
          epochs: 1
          learning_rat: 1e-4
    """)
    with pytest.raises(TunesmithError) as info:
        load_config(cfg_file)
    err = info.value
    assert len(err.problems) == 1
    p = err.problems[0]
    assert p.field == "train.learning_rat"
    assert p.line == 5
    assert p.file == str(cfg_file)
    msg = str(err)
    assert f"{cfg_file}:5:" in msg
    assert "did you mean 'train.learning_rate'" in msg


def test_unknown_key_without_close_match_lists_valid_keys(tmp_path):
    cfg_file = write(tmp_path / "c.yaml", "data:\n  train: t.jsonl\nlora:\n  zzzzzz: 1\n")
    with pytest.raises(TunesmithError) as info:
        load_config(cfg_file)
    p = problem_for(info.value, "lora.zzzzzz")
    assert p.line == 4
    assert "did you mean" not in p.fix
    assert p.fix == ("valid keys here: r, alpha, dropout, target_modules, use_rslora, use_dora, plus_ratio, "
                     "num_virtual_tokens")


def test_unknown_top_level_key_suggests_section(tmp_path):
    cfg_file = write(tmp_path / "c.yaml", "data:\n  train: t.jsonl\ntrian:\n  max_steps: 3\n")
    with pytest.raises(TunesmithError) as info:
        load_config(cfg_file)
    p = problem_for(info.value, "trian")
    assert p.line == 3
    assert "did you mean 'train'" in p.fix


def test_config_path_is_not_a_settable_key():
    with pytest.raises(TunesmithError) as info:
        load_config({"data": {"train": "/abs/t.jsonl"}, "config_path": "/x.yaml"})
    assert problem_for(info.value, "config_path").problem == "unknown key"


def test_wrong_type_names_field_and_line(tmp_path):
    cfg_file = write(tmp_path / "c.yaml", """
        data:
          train: t.jsonl
        train:
          batch_size: "eight"
    """)
    with pytest.raises(TunesmithError) as info:
        load_config(cfg_file)
    err = info.value
    assert len(err.problems) == 1
    p = err.problems[0]
    assert p.field == "train.batch_size"
    assert p.line == 4
    assert p.problem == "'eight' is not a valid int | 'auto'"
    msg = str(err)
    assert f"{cfg_file}:4: train.batch_size:" in msg


@pytest.mark.parametrize("key, value, type_text", [
    ("train.batch_size", "2.5", "int | 'auto'"),
    ("train.batch_size", "true", "int | 'auto'"),          # a bool is not an int
    ("train.gradient_checkpointing", "1", "bool"),
    ("train.learning_rate", "fast", "float | 'auto'"),
    ("train.learning_rate", "true", "float | 'auto'"),
    ("train.method", "qlora",
     "'lora' | 'full' | 'vera' | 'ia3' | 'prompt_tuning' | 'prefix_tuning' | 'p_tuning'"),
    ("data.format", "vicuna",
     "'auto' | 'alpaca' | 'chat' | 'sharegpt' | 'preference' | 'kto' | 'classification' | 'text' | 'prompt'"),
    ("data.train", "[1, 2]", "list of str"),
    ("model.gguf_file", "3", "str | NoneType"),
])
def test_wrong_types_are_rejected(key, value, type_text):
    with pytest.raises(TunesmithError) as info:
        load_config({"data": {"train": "/abs/t.jsonl"}}, [f"{key}={value}"])
    p = problem_for(info.value, key)
    assert p.problem.endswith(f"is not a valid {type_text}")


def test_section_that_is_not_a_mapping(tmp_path):
    cfg_file = write(tmp_path / "c.yaml", "data:\n  train: t.jsonl\ntrain: 5\n")
    with pytest.raises(TunesmithError) as info:
        load_config(cfg_file)
    p = problem_for(info.value, "train")
    assert p.line == 3
    assert "expected a mapping" in p.problem


def test_unknown_key_and_bad_type_in_different_sections_reported_together(tmp_path):
    cfg_file = write(tmp_path / "c.yaml", """
        model:
          nmae: foo
        data:
          train: t.jsonl
        train:
          batch_size: eight
        lora:
          r: 4.5
    """)
    with pytest.raises(TunesmithError) as info:
        load_config(cfg_file)
    err = info.value
    assert len(err.problems) == 3
    assert {(p.field, p.line) for p in err.problems} == {("model.nmae", 2), ("train.batch_size", 6), ("lora.r", 8)}
    msg = str(err)
    assert msg.startswith(f"{cfg_file}: invalid config")
    assert f"{cfg_file}:2: model.nmae: unknown key (did you mean 'model.name'?)" in msg
    assert f"{cfg_file}:6: train.batch_size: 'eight' is not a valid int | 'auto'" in msg
    assert f"{cfg_file}:8: lora.r: 4.5 is not a valid int" in msg


def test_cross_field_problems_reported_together(tmp_path):
    cfg_file = write(tmp_path / "c.yaml", """
        data:
          train: t.jsonl
          validation: v.jsonl
          validation_fraction: 0.1
        train:
          learning_rate: 5
          batch_size: 0
    """)
    with pytest.raises(TunesmithError) as info:
        load_config(cfg_file)
    err = info.value
    assert len(err.problems) == 3
    both = problem_for(err, "data.validation_fraction")
    assert both.line == 4
    assert "both a validation file and a validation fraction" in both.problem
    lr = problem_for(err, "train.learning_rate")
    assert lr.line == 6
    assert lr.problem == "5.0 is outside (0, 1)"
    bs = problem_for(err, "train.batch_size")
    assert bs.line == 7
    assert bs.problem == "0 must be at least 1"
    msg = str(err)
    for p in err.problems:
        assert str(p) in msg


def test_eval_steps_without_validation_data_reported_with_others(tmp_path):
    cfg_file = write(tmp_path / "c.yaml", """
        data:
          train: t.jsonl
          max_length: 4
        train:
          eval_steps: 10
          learning_rate: 5
          max_steps: 0
    """)
    with pytest.raises(TunesmithError) as info:
        load_config(cfg_file)
    err = info.value
    assert {(p.field, p.line) for p in err.problems} == {
        ("data.max_length", 3), ("train.eval_steps", 5), ("train.learning_rate", 6), ("train.max_steps", 7)}
    assert len(err.problems) == 4
    assert "no validation data" in problem_for(err, "train.eval_steps").problem


def test_eval_steps_with_validation_fraction_is_fine():
    cfg = load_config({"data": {"train": "/abs/t.jsonl", "validation_fraction": 0.1}, "train": {"eval_steps": 10}})
    assert cfg.train.eval_steps == 10


@pytest.mark.parametrize("overrides, field", [
    ({"data.validation_fraction": 1.0}, "data.validation_fraction"),
    ({"data.validation_fraction": -0.1}, "data.validation_fraction"),
    ({"train.learning_rate": 0}, "train.learning_rate"),
    ({"train.warmup_ratio": 1.0}, "train.warmup_ratio"),
    ({"lora.dropout": 1.0}, "lora.dropout"),
    ({"lora.r": 0}, "lora.r"),
    ({"lora.alpha": 0}, "lora.alpha"),
    ({"train.grad_accum": 0}, "train.grad_accum"),
    ({"train.logging_steps": 0}, "train.logging_steps"),
    ({"train.save_steps": 0}, "train.save_steps"),
    ({"train.max_steps": -2}, "train.max_steps"),
    ({"train.epochs": 0}, "train.epochs"),
    ({"train.eval_steps": -1}, "train.eval_steps"),
    ({"data.max_length": 7}, "data.max_length"),
])
def test_range_checks(overrides, field):
    with pytest.raises(TunesmithError) as info:
        load_config({"data": {"train": "/abs/t.jsonl"}}, overrides)
    assert [p.field for p in info.value.problems] == [field]
    assert info.value.problems[0].line is None


def test_epochs_zero_is_fine_with_max_steps():
    cfg = load_config({"data": {"train": "/abs/t.jsonl"}, "train": {"epochs": 0, "max_steps": 5}})
    assert cfg.train.max_steps == 5


def test_invalid_yaml_names_file_and_line(tmp_path):
    cfg_file = write(tmp_path / "broken.yaml", """
        data:
          train: t.jsonl
        train:
          learning_rate: [1
          batch_size: 2
    """)
    with pytest.raises(TunesmithError) as info:
        load_config(cfg_file)
    err = info.value
    assert len(err.problems) == 1
    p = err.problems[0]
    assert p.file == str(cfg_file)
    assert p.line == 5
    assert "not valid YAML" in p.problem
    assert str(err).startswith(f"{cfg_file}:5: not valid YAML")


def test_yaml_that_is_not_a_mapping(tmp_path):
    cfg_file = write(tmp_path / "list.yaml", "- a\n- b\n")
    with pytest.raises(TunesmithError) as info:
        load_config(cfg_file)
    p = info.value.problems[0]
    assert (p.file, p.line) == (str(cfg_file), 1)
    assert "mapping" in p.problem


def test_missing_config_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(TunesmithError) as info:
        load_config(missing)
    assert info.value.problems[0].file == str(missing)
    assert "config file not found" in str(info.value)


# --------------------------------------------------------------------------- describe and dump


def test_describe_covers_every_field_with_help():
    rows = describe()
    keys = [r[0] for r in rows]
    expected = [f.name for f in dataclasses.fields(RunConfig)
                if f.name not in ("config_path", "model", "data", "lora", "train", "preference", "rl", "privacy",
                                  "sweep", "eval", "audit", "energy", "moe", "vision", "federated")]
    for section, cls in (("model", ModelConfig), ("data", DataConfig), ("lora", LoraConfig),
                         ("train", TrainConfig), ("preference", PreferenceConfig), ("rl", RLConfig),
                         ("privacy", PrivacyConfig), ("sweep", SweepConfig), ("eval", EvalConfig),
                         ("audit", AuditConfig), ("energy", EnergyConfig), ("moe", MoEConfig),
                         ("vision", VisionConfig), ("federated", FederatedConfig)):
        expected += [f"{section}.{f.name}" for f in dataclasses.fields(cls) if f.name != "clean"]
    expected += [f"data.sources[].{f.name}" for f in dataclasses.fields(DataSource)]
    expected += [f"data.clean.{f.name}" for f in dataclasses.fields(CleanConfig)]
    assert sorted(keys) == sorted(expected)
    assert len(keys) == len(set(keys))
    assert "config_path" not in keys
    for key, tp, _default, help_text in rows:
        assert isinstance(help_text, str) and help_text.strip(), f"{key} has no help"
        assert tp, f"{key} has no type text"


def test_describe_rows_carry_types_and_defaults():
    rows = {r[0]: r for r in describe()}
    assert rows["train.learning_rate"][1:3] == ("float | 'auto'", "auto")
    assert rows["train.batch_size"][1:3] == ("int | 'auto'", "auto")
    assert rows["data.format"][1:3] == (
        "'auto' | 'alpaca' | 'chat' | 'sharegpt' | 'preference' | 'kto' | 'classification' | 'text' | 'prompt'", "auto")
    assert rows["data.train"][1:3] == ("list of str", [])
    assert rows["lora.target_modules"][1:3] == ("list of str", ["all-linear"])
    assert rows["name"][1:3] == ("str | NoneType", None)


def test_list_defaults_are_not_shared_between_instances():
    a, b = LoraConfig(), LoraConfig()
    assert a.target_modules == b.target_modules == ["all-linear"]
    assert a.target_modules is not b.target_modules


def _full_config_file(tmp_path) -> Path:
    return write(tmp_path / "src" / "full.yaml", """
        seed: 3
        model:
          name: some/hub-model
          trust_remote_code: true
        data:
          train: [a.jsonl, b.json]
          validation: v.jsonl
          format: chat
          max_length: 128
          system_prompt: "Be brief."
        train:
          method: full
          learning_rate: 1e-5
          max_steps: 20
          eval_steps: 5
          precision: fp32
        lora:
          target_modules: [q_proj]
    """)


def test_to_dict_is_plain_data(tmp_path):
    cfg = load_config(_full_config_file(tmp_path))
    d = to_dict(cfg)
    assert d["train"]["learning_rate"] == 1e-5
    assert d["data"]["system_prompt"] == "Be brief."
    assert d["config_path"] == str((tmp_path / "src" / "full.yaml").resolve())
    assert d["name"] == "full"


def test_dump_yaml_keeps_config_path_out_of_the_keys(tmp_path):
    cfg = load_config(_full_config_file(tmp_path))
    text = dump_yaml(cfg)
    raw = yaml.safe_load(text)
    assert raw["train"]["learning_rate"] == 1e-5
    assert "config_path" not in raw and text.startswith(f"# resolved by tunesmith from {cfg.config_path}")
    reloaded_file = tmp_path / "other" / "config.yaml"
    reloaded_file.parent.mkdir()
    reloaded_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    again = load_config(reloaded_file)
    a, b = to_dict(cfg), to_dict(again)
    a.pop("config_path"), b.pop("config_path")
    assert a == b
    assert again.name == "full"  # the name is kept, not taken from the new file's stem


def test_dump_yaml_output_reloads_as_is(tmp_path):
    cfg = load_config(_full_config_file(tmp_path))
    dumped = tmp_path / "run" / "config.yaml"
    dumped.parent.mkdir()
    dumped.write_text(dump_yaml(cfg))
    again = load_config(dumped)
    a, b = to_dict(cfg), to_dict(again)
    a.pop("config_path"), b.pop("config_path")
    assert a == b


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "with space"])
def test_run_name_must_be_a_plain_folder_name(name, tmp_path):
    with pytest.raises(TunesmithError, match="plain folder name"):
        load_config({"name": name, "data": {"train": [str(tmp_path / "t.jsonl")]}})


def test_eval_section_ranges_and_suite_path(tmp_path):
    cfg_file = tmp_path / "sub" / "run.yaml"
    cfg_file.parent.mkdir()
    cfg_file.write_text("data:\n  train: [t.jsonl]\neval:\n  suite: suites/s.yaml\n")
    cfg = load_config(cfg_file)
    assert cfg.eval.suite == str((tmp_path / "sub" / "suites" / "s.yaml").resolve())  # relative to the config
    with pytest.raises(TunesmithError) as e:
        load_config({"data": {"train": ["t.jsonl"]}, "eval": {"limit": 0, "threshold": -1, "samples": -2}})
    text = str(e.value)
    assert "eval.limit" in text and "eval.threshold" in text and "eval.samples" in text


# --------------------------------------------------------------------------- refusals moved from the recipes

GRPO = {"recipe": "grpo", "data": {"train": "/abs/t.jsonl"}, "rl": {"reward_functions": ["r.py:f"]}}
PPO = {"recipe": "ppo", "data": {"train": "/abs/t.jsonl"}, "rl": {"reward_model": "runs/rm"}}
DP = {"data": {"train": "/abs/t.jsonl"}, "privacy": {"enabled": True}}


def refusal(source: dict, overrides: dict, field: str):
    """The one problem load_config reports for `field`."""
    with pytest.raises(TunesmithError) as info:
        load_config(source, overrides)
    return problem_for(info.value, field)


def test_rl_and_dp_baselines_load():
    assert load_config(GRPO, {"train.batch_size": 8}).rl.num_generations == 4
    assert load_config(PPO).train.method == "lora"
    assert load_config(DP).privacy.enabled


def test_grpo_batch_must_hold_whole_groups():
    p = refusal(GRPO, {"train.batch_size": 6}, "train.batch_size")
    assert p.problem == "a step's 6 x 1 = 6 completions do not split into groups of rl.num_generations = 4"
    assert p.fix == "make train.batch_size x train.grad_accum a multiple of 4, e.g. train.batch_size=8"
    assert load_config(GRPO, {"train.batch_size": 2, "train.grad_accum": 2}).train.grad_accum == 2  # 2 x 2 = 4


def test_grpo_batch_check_names_its_yaml_line(tmp_path):
    cfg_file = write(tmp_path / "grpo.yaml", """
        recipe: grpo
        data:
          train: t.jsonl
        rl:
          reward_functions: [r.py:f]
        train:
          batch_size: 3
    """)
    with pytest.raises(TunesmithError) as info:
        load_config(cfg_file)
    p = problem_for(info.value, "train.batch_size")
    assert (p.file, p.line) == (str(cfg_file), 7)


def test_ppo_refuses_reward_functions():
    p = refusal(PPO, {"rl.reward_functions": ["r.py:f"]}, "rl.reward_functions")
    assert p.problem == "PPO scores completions with rl.reward_model only; the reward functions would be ignored"
    assert p.fix == "remove rl.reward_functions, or use recipe: grpo for Python rewards"


@pytest.mark.parametrize("method", ["full", "prompt_tuning"])
def test_ppo_needs_a_method_whose_adapter_switches_off(method):
    from tunesmith.config import PPO_METHODS

    assert PPO_METHODS == ("lora", "vera", "ia3")
    p = refusal(PPO, {"train.method": method}, "train.method")
    assert p.problem == f"PPO needs an adapter the reference can switch off; train.method is {method}"
    assert p.fix == "use train.method: lora / vera / ia3"
    for ok in PPO_METHODS:
        assert load_config(PPO, {"train.method": ok}).train.method == ok


@pytest.mark.parametrize("base", [GRPO, PPO], ids=["grpo", "ppo"])
def test_rl_max_new_tokens_leaves_room_for_the_prompt(base):
    p = refusal(base, {"rl.max_new_tokens": 64, "data.max_length": 64, "train.batch_size": 8}, "rl.max_new_tokens")
    assert p.problem == "rl.max_new_tokens (64) leaves no room for the prompt in data.max_length (64)"
    assert p.fix == "raise data.max_length or lower rl.max_new_tokens"


def test_rl_max_new_tokens_is_not_checked_for_other_recipes():
    cfg = load_config({"data": {"train": "/abs/t.jsonl", "max_length": 32}, "rl": {"max_new_tokens": 48}})
    assert cfg.recipe == "sft" and cfg.rl.max_new_tokens > cfg.data.max_length


def test_dp_refuses_gradient_checkpointing():
    p = refusal(DP, {"train.gradient_checkpointing": True}, "train.gradient_checkpointing")
    assert p.problem == ("train.gradient_checkpointing recomputes activations, which opacus's per-sample gradient "
                         "hooks would record twice")
    assert p.fix == "set train.gradient_checkpointing=false (LoRA activations fit)"


def test_dp_refuses_early_stopping():
    p = refusal(DP, {"train.early_stopping_patience": 2, "train.eval_steps": 10, "data.validation_fraction": 0.1},
                "train.early_stopping_patience")
    assert p.problem == "early stopping keeps a best checkpoint; DP runs write no checkpoints"
    assert p.fix == "set train.early_stopping_patience=0"


def test_dp_refuses_dora():
    p = refusal(DP, {"lora.use_dora": True}, "lora.use_dora")
    assert "DoRA's magnitude vector is not an nn.Linear" in p.problem
    assert p.fix == "use plain LoRA: lora.use_dora=false"
    assert load_config(DP, {"privacy.enabled": False, "lora.use_dora": True}).lora.use_dora  # only DP refuses it


def test_problems_from_several_sections_are_reported_together(tmp_path):
    cfg_file = write(tmp_path / "many.yaml", """
        recipe: ppo
        data:
          train: t.jsonl
          clean:
            ngram: 2
        train:
          method: full
          gradient_checkpointing: true
        lora:
          dropout: 1.5
        preference:
          beta: 0
        rl:
          reward_model: runs/rm
          reward_functions: [r.py:f]
        privacy:
          enabled: true
        sweep:
          trials: 0
        eval:
          samples: -1
    """)
    with pytest.raises(TunesmithError) as info:
        load_config(cfg_file)
    err = info.value
    located = {(p.field, p.line) for p in err.problems}
    assert located == {("data.clean.ngram", 5), ("train.method", 7), ("train.gradient_checkpointing", 8),
                       ("lora.dropout", 10), ("preference.beta", 12), ("rl.reward_functions", 15),
                       ("privacy.enabled", 17), ("sweep.trials", 19), ("eval.samples", 21)}
    assert all(p.file == str(cfg_file) and p.fix for p in err.problems)
    assert str(err).startswith(f"{cfg_file}: invalid config:")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("key,value", [("train.kernels", "liger"), ("model.attention", "flash_attention_2")])
def test_gpu_only_switches_are_refused_without_a_gpu(key, value):
    p = refusal({"data": {"train": "/abs/t.jsonl"}}, {key: value}, key)
    assert "CUDA GPU" in p.problem and p.fix


def test_compile_reaches_the_training_arguments(tmp_path):
    from tunesmith.recipes.common import training_arguments

    fixed = {"train.epochs": 1, "train.batch_size": 8, "train.learning_rate": 1e-4, "train.eval_steps": 0,
             "train.early_stopping_patience": 0}
    cfg = load_config({"data": {"train": "/abs/t.jsonl"}}, {**fixed, "train.compile": True})
    assert training_arguments(cfg.train, tmp_path, "fp32", 0, False).torch_compile
    assert not training_arguments(load_config({"data": {"train": "/abs/t.jsonl"}}, fixed).train, tmp_path, "fp32", 0,
                                  False).torch_compile
