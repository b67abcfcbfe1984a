"""tunesmith.eval.metrics against published reference numbers (sacrebleu's and rouge-score's own
test vectors, re-recorded in shared/data/peer_refs) and against values worked out by hand."""

from __future__ import annotations

import json

import pytest

from tunesmith.errors import TunesmithError
from tunesmith.eval import metrics as M


def _per_prediction(streams: list[list[str]]) -> list[list[str]]:
    """sacrebleu's reference streams (stream k = k-th reference of every sentence) -> our layout
    (one list of references per prediction)."""
    return [list(refs) for refs in zip(*streams)]


def _load(shared_data, name: str) -> dict:
    return json.loads(shared_data(f"peer_refs/{name}").read_text())


# --------------------------------------------------------------------------- BLEU / chrF


def test_corpus_bleu_reproduces_sacrebleu_reference_numbers(shared_data):
    cases = _load(shared_data, "sacrebleu_bleu_vectors.json")["corpus_bleu"]
    assert len(cases) == 12
    for case in cases:
        got = M.bleu(case["hypotheses"], _per_prediction(case["references"]), **case["params"])["bleu"]
        if "expected" in case:
            assert got == pytest.approx(case["expected"], abs=case["tol"]), case
        else:
            assert f"{got:.2f}" == case["expected_str2"], case


def test_raw_corpus_bleu_cases(shared_data):
    raw = _load(shared_data, "sacrebleu_bleu_vectors.json")["raw_corpus_bleu"]
    # "raw" = sacrebleu's raw_corpus_bleu settings, passed through our function's options.
    raw_options = dict(tokenize="none", smooth_method="floor", effective_order=True, force=True)
    for case in raw["cases"]:
        got = M.bleu(case["hypotheses"], _per_prediction(case["references"]), smooth_value=case["smooth_value"],
                     **raw_options)["bleu"] / 100
        assert got == pytest.approx(case["expected"], abs=raw["tol"]), case
    # The n-gram statistics behind one case, from the sacrebleu call `bleu` makes.
    from sacrebleu.metrics import BLEU

    st = raw["statistics_case"]
    score = BLEU(smooth_value=0.1, **raw_options).corpus_score(st["hypotheses"], st["references"])
    assert score.counts == st["expected_counts"] and score.totals == st["expected_totals"]


def test_bleu_from_sufficient_statistics(shared_data):
    from sacrebleu.metrics import BLEU

    block = _load(shared_data, "sacrebleu_bleu_vectors.json")["compute_bleu_from_stats"]
    for case in block["cases"]:
        got = BLEU.compute_bleu(case["counts"], case["totals"], case["sys_len"], case["ref_len"],
                                smooth_method=case["smooth_method"], smooth_value=case.get("smooth_value")).score
        assert got / 100 == pytest.approx(case["expected"], abs=1e-8), case


def test_sentence_bleu_smoothings_tokenizers(shared_data):
    sb = _load(shared_data, "sacrebleu_bleu_vectors.json")["sentence_bleu"]
    for case in sb["cases"]:
        # sacrebleu's sentence_score is corpus_score over one sentence with effective order.
        got = M.bleu([sb["hypothesis"]], [sb["reference"]], smooth_method=case["smooth_method"],
                     smooth_value=case["smooth_value"], lowercase=case["lowercase"], tokenize=case["tokenize"],
                     effective_order=True)["bleu"]
        assert got == pytest.approx(case["expected"], abs=1e-3), case
    zero = sb["zero_case"]
    for method in ("exp", "none", "floor", "add-k"):
        got = M.bleu([zero["hypothesis"]], [zero["reference"]], smooth_method=method, effective_order=True)["bleu"]
        assert got == zero["expected_all_smoothings"], method


def test_bleu_variable_number_of_references():
    # Prediction 0 has two references, prediction 1 one: the missing one travels as None, which
    # sacrebleu skips; the score equals scoring the same references through sacrebleu directly.
    from sacrebleu.metrics import BLEU

    hyps = ["the dog bit the man", "it was not unexpected"]
    got = M.bleu(hyps, [["the dog bit the man", "a dog bit a man"], "it was not surprising"])["bleu"]
    want = BLEU().corpus_score(hyps, [["the dog bit the man", "it was not surprising"], ["a dog bit a man", None]])
    assert got == pytest.approx(want.score) and 0 < got < 100
    assert M.bleu(hyps, hyps)["bleu"] == pytest.approx(100.0)


def test_chrf_identical_and_disjoint():
    assert M.chrf(["the cat sat on the mat"], ["the cat sat on the mat"])["chrf"] == pytest.approx(100.0)
    assert M.chrf(["xyz"], ["abc"])["chrf"] == 0.0
    mid = M.chrf(["the cat sat on a mat"], [["a dog", "the cat sat on the mat"]])["chrf"]
    assert 50 < mid < 100


# --------------------------------------------------------------------------- ROUGE


def test_rouge_reproduces_rouge_score_reference_numbers(shared_data):
    vec = _load(shared_data, "rouge_score_vectors.json")
    tol = vec["tolerance"]
    cases = vec["simple"] + vec["against_rouge155"]
    assert len(cases) == 23
    for case in cases:
        stem = case.get("use_stemmer", True)
        got = M.rouge([case["prediction"]], [case["target"]], use_stemmer=stem)[case["type"]]
        assert got == pytest.approx(case["fmeasure"], abs=tol), case
        # precision and recall from the very scorer `rouge` uses (it reports only F).
        full = M._rouge_scorer(stem).score(case["target"], case["prediction"])[case["type"]]
        assert (full.precision, full.recall) == pytest.approx((case["precision"], case["recall"]), abs=tol), case


def test_rougelsum_splits_sentences_when_there_are_no_newlines():
    # Two sentences in the wrong order: plain LCS finds "a b" (or "c d"), F 0.5; summary-level
    # union-LCS matches each reference word in one of the two sentences, F 1.0 -- but only if the
    # regex splitter recovers the sentences, since rouge-score reads them from newlines.
    pred, ref = "c d. a b.", "a b c d."
    assert M.split_sentences(pred) == "c d.\na b."
    scores = M.rouge([pred], [ref])
    assert scores["rougeL"] == pytest.approx(0.5)
    assert scores["rougeLsum"] == pytest.approx(1.0)
    assert M._rouge_scorer(True).score(ref, pred)["rougeLsum"].fmeasure == pytest.approx(0.5)  # unsplit
    assert M.split_sentences("One. Two!  Three? (Four.) Five") == "One.\nTwo!\nThree?\n(Four.)\nFive"
    assert M.split_sentences("kept\nas is. yes") == "kept\nas is. yes"


def test_rouge_mean_and_multi_reference():
    # mean over predictions: (rouge1 F 0.5 + 1.0) / 2; the second item's best reference is exact.
    got = M.rouge(["testing", "hello world"], ["testing one two", ["bye", "hello world"]])
    assert got["rouge1"] == pytest.approx(0.75)
    assert set(got) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    # stemming on by default: "cats" and "cat" match.
    assert M.rouge(["cats running"], ["cat run"])["rouge1"] == 1.0
    assert M.rouge(["cats running"], ["cat run"], use_stemmer=False)["rouge1"] == 0.0


# --------------------------------------------------------------------------- METEOR


def test_meteor_hand_computed_cases():
    # nltk METEOR: P = m/len(hyp), R = m/len(ref), Fmean = P*R / (0.9 P + 0.1 R),
    # penalty = 0.5 * (chunks / m) ** 3, score = Fmean * (1 - penalty).
    # identical up to case: 7 tokens ("." is one), all matched in one chunk -> 1 - 0.5 / 7**3 < 1.
    assert M.meteor(["The cat sat on the mat."], ["the cat sat on the mat ."])["meteor"] == pytest.approx(
        1 - 0.5 / 7 ** 3)
    assert M.meteor(["a b c d"], ["a b c d"])["meteor"] == pytest.approx(1 - 0.5 / 64)
    # stem-only match: "cats" ~ "cat" by the Porter stemmer, so all 3 words match in one chunk.
    assert M.meteor(["the cats ran"], ["the cat ran"])["meteor"] == pytest.approx(1 - 0.5 / 27)
    # recall 3/6, precision 1: Fmean = 0.5 / (0.9 + 0.05), one chunk of 3.
    assert M.meteor(["the cat sat"], ["the cat sat on a mat"])["meteor"] == pytest.approx(0.5 / 0.95 * (1 - 0.5 / 27))
    # "x a" vs "a y x": m = 2 in two chunks (crossed), P = 1, R = 2/3, penalty 0.5 * (2/2)**3.
    p, r = 1.0, 2 / 3
    fmean = p * r / (0.9 * p + 0.1 * r)
    assert M.meteor(["x a"], ["a y x"])["meteor"] == pytest.approx(fmean * (1 - 0.5 * (2 / 2) ** 3))
    assert M.meteor(["nothing shared"], ["entirely different"])["meteor"] == 0.0


def test_meteor_synonym_stage_is_off():
    # With WordNet, "big" ~ "large" would match; without it only exact and stem matches count.
    assert M.meteor(["a big house"], ["a large house"])["meteor"] == pytest.approx(
        (2 / 3) * (2 / 3) / (0.9 * 2 / 3 + 0.1 * 2 / 3) * (1 - 0.5 * (2 / 2) ** 3))
    assert M._NoWordNet().synsets("big") == []


def test_meteor_multi_reference_takes_the_best_and_averages():
    got = M.meteor(["a b c d", "zzz"], [["q", "a b c d"], "yyy"])["meteor"]
    assert got == pytest.approx((1 - 0.5 / 64) / 2)


# --------------------------------------------------------------------------- exact match / GSM8K


@pytest.fixture
def gsm8k_answers(shared_data) -> list[str]:
    path = shared_data("gsm8k/train_rows_0000-0499.jsonl")
    return [json.loads(line)["answer"] for line in path.read_text().splitlines()]


def _wrong(answer: str) -> str:
    body, final = answer.rsplit("#### ", 1)
    return body + "#### " + str(int(final.replace(",", "")) + 1)


def test_gsm8k_reference_against_itself_and_a_wrong_number(gsm8k_answers):
    assert len(gsm8k_answers) == 500
    assert M.final_answer(gsm8k_answers, gsm8k_answers) == {"final_answer_acc": 1.0}
    assert M.exact_match(gsm8k_answers, gsm8k_answers) == {"exact_match": 1.0}
    wrong = [_wrong(a) for a in gsm8k_answers]
    assert M.final_answer(wrong, gsm8k_answers) == {"final_answer_acc": 0.0}
    assert M.exact_match(wrong, gsm8k_answers) == {"exact_match": 0.0}
    # half right, half wrong
    mixed = gsm8k_answers[:250] + wrong[250:]
    assert M.final_answer(mixed, gsm8k_answers)["final_answer_acc"] == 0.5


def test_gsm8k_answers_in_other_shapes(gsm8k_answers):
    finals = [a.rsplit("#### ", 1)[1] for a in gsm8k_answers]
    assert "1,080" in finals  # a thousands comma in the reference
    said = [f"Let me think. 3 + 4 = 7. The answer is ${f}." for f in finals]
    assert M.final_answer(said, gsm8k_answers)["final_answer_acc"] == 1.0
    last = [f"I computed {f.replace(',', '')}.0 in total" for f in finals]  # no marker: last number; 72 == 72.0
    assert M.final_answer(last, gsm8k_answers)["final_answer_acc"] == 1.0
    assert M.final_answer(["no idea"], [gsm8k_answers[0]])["final_answer_acc"] == 0.0


@pytest.mark.parametrize("text,number", [
    ("#### 1,080", "1080"), ("so #### 72.", "72"), ("The answer is $18.", "18"), ("x = -4 in the end", "-4"),
    ("5-3 = 2", "2"), ("1,2,3", "3"), ("the answer is 7 apples and 3 pears", "7"), ("#### 5\nthen 9", "5"),
    ("cost $1,234.50.", "1234.50"), ("no number here", None), ("3 apples <<2*3=6>>6", "6"),
])
def test_extract_number(text, number):
    assert M.extract_number(text) == number


def test_exact_match_uses_squad_normalisation():
    assert M.exact_match(["The Cat!", "an  apple,  pie", "dog"], ["cat", "Apple pie", "cat"])["exact_match"] == (
        pytest.approx(2 / 3))
    assert M.normalize_answer("  The  quick, brown FOX. ") == "quick brown fox"
    assert M.exact_match(["Paris"], [["London", "paris"]])["exact_match"] == 1.0


def test_final_answer_reference_without_a_number_is_an_error():
    with pytest.raises(TunesmithError, match="reference 0 has no number"):
        M.final_answer(["#### 3"], ["no number"])


# --------------------------------------------------------------------------- embedding similarity


@pytest.fixture(scope="module")
def encoder() -> M.Encoder:
    return M.Encoder(batch_size=2)


def test_embedding_similarity_identical_paraphrase_unrelated(encoder):
    ref = "The cat is sleeping on the sofa."
    same = M.embedding_similarity([ref], [ref], encoder=encoder)["embedding_similarity"]
    para = M.embedding_similarity(["A cat naps on the couch."], [ref], encoder=encoder)["embedding_similarity"]
    other = M.embedding_similarity(["Interest rates rose by half a percent."], [ref], encoder=encoder)[
        "embedding_similarity"]
    assert same == pytest.approx(1.0, abs=1e-5)
    assert para > 0.5 > other and para > other + 0.3, (para, other)


def test_embeddings_are_unit_length_and_do_not_depend_on_batching(encoder):
    import torch

    texts = ["short", "a much longer sentence that needs padding in its batch", "mid length text"]
    small = encoder.encode(texts)  # batches of 2: padding differs from the one-batch run
    big = M.Encoder(batch_size=32)
    big._model, big._tokenizer, big.device = encoder._model, encoder._tokenizer, encoder.device
    assert small.shape == (3, 384)
    assert torch.allclose(small.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(small, big.encode(texts), atol=1e-5)


def test_embedding_similarity_averages_and_takes_best_reference(encoder):
    a, b = "The weather is sunny today.", "Stock markets fell sharply."
    got = M.embedding_similarity([a, b], [[b, a], a], encoder=encoder)["embedding_similarity"]
    cross = float(encoder.encode([b]) @ encoder.encode([a]).T)
    assert got == pytest.approx((1.0 + cross) / 2, abs=1e-5)


def test_default_encoder_is_loaded_once():
    assert M.default_encoder() is M.default_encoder()


# --------------------------------------------------------------------------- classification


def test_classification_binary_by_hand():
    y_true, y_pred = [0, 1, 1, 0], [0, 1, 0, 0]
    got = M.classification(y_true, y_pred, probs=[0.1, 0.9, 0.25, 0.3])
    # class 0: tp 2, fp 1, fn 0 -> P 2/3, R 1, F 0.8; class 1: tp 1, fp 0, fn 1 -> P 1, R 1/2, F 2/3
    assert got == pytest.approx({
        "accuracy": 0.75, "precision_macro": 5 / 6, "recall_macro": 0.75, "f1_macro": (0.8 + 2 / 3) / 2,
        "precision_micro": 0.75, "recall_micro": 0.75, "f1_micro": 0.75,
        # positives score 0.9 and 0.25, negatives 0.1 and 0.3: 3 of 4 pairs ranked right
        "auc": 0.75})
    two_col = M.classification(y_true, y_pred, probs=[[0.9, 0.1], [0.1, 0.9], [0.75, 0.25], [0.7, 0.3]])
    assert two_col["auc"] == 0.75
    assert "auc" not in M.classification(y_true, y_pred)


def test_classification_multiclass_ovr_auc_by_hand():
    y_true, y_pred = ["a", "b", "c", "a"], ["a", "b", "b", "c"]
    probs = [[.8, .1, .1], [.1, .8, .1], [.1, .5, .4], [.3, .3, .4]]
    got = M.classification(y_true, y_pred, probs=probs)
    # a: P 1, R 1/2; b: P 1/2, R 1; c: P 0, R 0 -> macro P = R = 1/2, F = (2/3 + 2/3 + 0) / 3
    assert got["accuracy"] == 0.5
    assert got["precision_macro"] == pytest.approx(0.5) and got["recall_macro"] == pytest.approx(0.5)
    assert got["f1_macro"] == pytest.approx(4 / 9)
    # OvR: a 1.0 (0.8, 0.3 vs 0.1, 0.1), b 1.0, c: 0.4 vs 0.1, 0.1, 0.4 -> (2 + 0.5) / 3
    assert got["auc"] == pytest.approx((1 + 1 + 2.5 / 3) / 3)


def test_classification_auc_left_out_when_a_class_is_absent():
    got = M.classification(["a", "b", "a"], ["a", "b", "b"], labels=["a", "b", "c"],
                           probs=[[.8, .1, .1], [.1, .8, .1], [.2, .7, .1]])
    assert "auc" not in got and got["accuracy"] == pytest.approx(2 / 3)
    assert "auc" not in M.classification([1, 1], [1, 0], probs=[0.9, 0.2], labels=[0, 1])


def test_classification_errors():
    with pytest.raises(TunesmithError, match="probs has shape"):
        M.classification([0, 1, 2], [0, 1, 2], probs=[[1, 0], [0, 1], [0.5, 0.5]])
    with pytest.raises(TunesmithError, match="softmax"):
        M.classification([0, 1, 2], [0, 1, 2], probs=[[3, 0, 0], [0, 3, 0], [0, 0, 3]])
    with pytest.raises(TunesmithError, match="2 true labels and 1 predictions"):
        M.classification([0, 1], [0])


# --------------------------------------------------------------------------- by name, directions


def test_generation_metrics_by_name_and_unknown_name():
    got = M.generation_metrics(["exact_match", "final_answer", "bleu"], ["#### 4"], ["#### 4"])
    assert got == {"exact_match": 1.0, "final_answer_acc": 1.0, "bleu": pytest.approx(100.0)}
    with pytest.raises(TunesmithError) as err:
        M.generation_metrics(["rouge", "bluert"], ["a"], ["a"])
    assert "'bluert'" in str(err.value) and "rouge, bleu, chrf, meteor" in str(err.value)


def test_input_errors():
    with pytest.raises(TunesmithError, match="2 predictions but 1 references"):
        M.rouge(["a", "b"], ["a"])
    with pytest.raises(TunesmithError, match="single string"):
        M.bleu("a", "a")
    with pytest.raises(TunesmithError, match="no predictions"):
        M.meteor([], [])


def test_every_reported_key_has_a_direction(encoder):
    keys = set()
    for name, fn in M.GENERATION_METRICS.items():
        kwargs = {"encoder": encoder} if name == "embedding_similarity" else {}
        text = '{"n": 1}' if name == "json_match" else "#### 1 the cat"
        keys |= set(fn([text], [text], **kwargs))
    keys |= set(M.classification([0, 1], [0, 1], probs=[0.2, 0.8]))
    assert keys <= set(M.HIGHER_IS_BETTER), keys - set(M.HIGHER_IS_BETTER)
    assert len(keys) == 20
    lower = {k for k, v in M.HIGHER_IS_BETTER.items() if not v}
    assert lower == {"perplexity", "eval_loss", "loss", "bits_per_byte"}
    for k in ("acc", "acc_norm", "pass@1", "prompt_strict", "inst_strict", "prompt_loose", "inst_loose", "win_rate"):
        assert M.HIGHER_IS_BETTER[k] is True


def test_json_match_compares_values_not_text():
    from tunesmith.eval.metrics import json_match

    refs = ['{"b": "x", "a": 1}'] * 5
    preds = ['{"a": 1, "b": "x"}',                      # other key order: a match
             'Sure:\n```json\n{"b": "x", "a": 1}\n```',  # fenced block: a match
             'The record is {"a": 1, "b": "x"} as asked.',  # embedded object: a match
             '{"a": "1", "b": "x"}',                     # valid JSON, wrong type: no match
             "not json at all"]
    assert json_match(preds, refs) == {"json_valid": 0.8, "json_match": 0.6}
    with pytest.raises(TunesmithError, match="reference 0 is not JSON"):
        json_match(["{}"], ["name: x"])
