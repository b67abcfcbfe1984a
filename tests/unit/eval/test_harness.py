"""The lm-evaluation-harness adapter, offline: a local lm-eval task over the shared HellaSwag rows, and
our own scorer on the same prompts must give the same accuracies (same log-likelihood conventions)."""

import json
import textwrap

import pytest

from tunesmith.eval import harness

pytestmark = pytest.mark.skipif(not harness.available(), reason="lm-eval is not installed (pip install lm-eval)")

ROWS = 12


@pytest.fixture
def local_task(tmp_path, shared_data):
    src = shared_data("hellaswag/hellaswag_val_0000-0199.jsonl")
    data = tmp_path / "hs.jsonl"
    data.write_text("".join(src.read_text().splitlines(keepends=True)[:ROWS]))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    # The same prompt as tunesmith's hellaswag preset: "<activity>: <ctx>", then " <ending>".
    (tasks / "hs_local.yaml").write_text(textwrap.dedent(f"""
        task: hs_local
        dataset_path: json
        dataset_kwargs:
          data_files:
            validation: {data}
        validation_split: validation
        output_type: multiple_choice
        doc_to_text: "{{{{activity_label}}}}: {{{{ctx}}}}"
        doc_to_choice: "{{{{endings}}}}"
        doc_to_target: "{{{{label}}}}"
        target_delimiter: " "
        metric_list:
          - metric: acc
          - metric: acc_norm
    """).lstrip())
    suite = tmp_path / "suite.yaml"
    suite.write_text(textwrap.dedent(f"""
        tasks:
          - name: ours
            preset: hellaswag
            data: {data}
          - name: lm-eval
            type: harness
            harness_tasks: [hs_local]
            include_path: tasks
    """).lstrip())
    return suite


def test_harness_task_agrees_with_our_scorer(local_task, tiny_model_dir, tmp_path, monkeypatch):
    import tunesmith

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")  # proves nothing is fetched
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tunesmith.evaluate(str(tiny_model_dir), local_task, out=tmp_path / "ev", show_progress=False)
    results = json.loads((out / "eval" / "results.json").read_text())
    ours = results["tasks"][0]["metrics"]["model"]
    theirs = results["tasks"][1]["metrics"]["model"]
    assert set(theirs) == {"hs_local/acc", "hs_local/acc_norm"}
    assert theirs["hs_local/acc"] == pytest.approx(ours["acc"])
    assert theirs["hs_local/acc_norm"] == pytest.approx(ours["acc_norm"])


def test_unknown_harness_task_is_a_clear_error(tiny_model_dir, tmp_path):
    from tunesmith.errors import TunesmithError
    from tunesmith.inference import load

    with pytest.raises(TunesmithError, match="does not know the task"):
        harness.run(load(str(tiny_model_dir)), ["no_such_task_xyz"], include_path=str(tmp_path))


def test_our_loglikelihoods_equal_lm_eval_per_option(local_task, tiny_model_dir, tmp_path, monkeypatch):
    """Not just the same accuracy: every option's log-likelihood, as lm-eval's HFLM computes it."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    import tunesmith
    from tunesmith.inference import load

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    loaded = load(str(tiny_model_dir))
    lm = HFLM(pretrained=loaded.model, tokenizer=loaded.tokenizer, batch_size=4, device="cpu")
    res = simple_evaluate(model=lm, tasks=["hs_local"], task_manager=TaskManager(include_path=str(tmp_path / "tasks")),
                          log_samples=True, bootstrap_iters=0)
    theirs = {s["doc_id"]: [float(r[0][0]) for r in s["resps"]] for s in res["samples"]["hs_local"]}
    out = tunesmith.evaluate(str(tiny_model_dir), local_task, out=tmp_path / "ev2", show_progress=False)
    rows = (out / "eval" / "outputs" / "ours.jsonl").read_text().splitlines()
    ours = [json.loads(r)["scores"]["model"]["loglikelihoods"] for r in rows]
    assert len(ours) == len(theirs) == ROWS
    for i, lls in enumerate(ours):
        assert lls == pytest.approx(theirs[i], abs=2e-3), i
