"""Text and classification metrics: pure functions over lists of strings or labels.

Every function returns a dict of floats keyed by metric name, so a task can merge the results of
several. The scores come from the well-kept libraries (rouge-score, sacrebleu, nltk, scikit-learn,
transformers); this module only adapts inputs, handles multiple references and aggregates.
Hub-backed wrappers such as `evaluate.load` are not used: they download code and fail offline.

References: each `references[i]` is either one string or a list of strings (several references
for prediction i). Multi-reference scoring takes the best reference per prediction (ROUGE,
METEOR, exact match, embedding similarity) or hands all references to the corpus metric (BLEU,
chrF), as the libraries themselves do.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from tunesmith.errors import fail

Refs = Sequence[str] | Sequence[Sequence[str]]

# Which direction is "better" for every metric key this package reports; reports and sweeps read
# it to colour deltas and to pick the best run. Loss-like keys are the only lower-is-better ones.
HIGHER_IS_BETTER: dict[str, bool] = {
    "rouge1": True, "rouge2": True, "rougeL": True, "rougeLsum": True,
    "bleu": True, "chrf": True, "meteor": True,
    "exact_match": True, "final_answer_acc": True, "embedding_similarity": True,
    "accuracy": True, "precision_macro": True, "recall_macro": True, "f1_macro": True,
    "precision_micro": True, "recall_micro": True, "f1_micro": True, "auc": True,
    "acc": True, "acc_norm": True,
    "pass@1": True, "pass@5": True, "pass@10": True, "pass@100": True,
    "prompt_strict": True, "inst_strict": True, "prompt_loose": True, "inst_loose": True,
    "win_rate": True, "win_rate_low": True, "win_rate_high": True, "json_valid": True, "json_match": True,
    "bits_per_byte": False, "perplexity": False, "eval_loss": False, "loss": False,
}


def _pairs(metric: str, predictions: Sequence[str], references: Refs) -> list[list[str]]:
    """Check the inputs once and return the references as one list of strings per prediction."""
    if isinstance(predictions, str) or isinstance(references, str):
        raise fail(f"{metric}: predictions and references must be lists of strings, got a single string",
                   "wrap it in a list: [text]")
    if len(predictions) != len(references):
        raise fail(f"{metric}: {len(predictions)} predictions but {len(references)} references",
                   "pass one reference (or one list of references) per prediction")
    if not predictions:
        raise fail(f"{metric}: no predictions to score", "pass at least one prediction")
    out = []
    for i, (p, r) in enumerate(zip(predictions, references)):
        refs = [r] if isinstance(r, str) else list(r)
        if not isinstance(p, str) or not refs or not all(isinstance(x, str) for x in refs):
            raise fail(f"{metric}: item {i} is not text: prediction={p!r}, reference={r!r}",
                       "predictions are strings; each reference is a string or a non-empty list of strings")
        out.append(refs)
    return out


# --------------------------------------------------------------------------- ROUGE


# nltk's punkt sentence splitter cannot be downloaded offline, so rougeLsum gets its sentence
# boundaries from this small regex: a ., ! or ? (optionally followed by a closing quote or
# bracket) and then whitespace. It misses abbreviations ("Dr. Smith" splits), which moves
# rougeLsum slightly but never rouge1/2/L (their tokenizer ignores newlines).
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+")


def split_sentences(text: str) -> str:
    """Text with one sentence per line; text that already has newlines is taken as split."""
    if "\n" in text:
        return text
    return "\n".join(s for s in _SENTENCE_END.split(text.strip()) if s)


@lru_cache(maxsize=2)
def _rouge_scorer(use_stemmer: bool = True):
    """The rouge-score scorer `rouge` uses (cached: building the Porter stemmer is not free)."""
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=use_stemmer)


def rouge(predictions: Sequence[str], references: Refs, use_stemmer: bool = True) -> dict[str, float]:
    """Mean ROUGE-1/2/L/Lsum F-measure (0..1) from rouge-score, Porter stemming on by default.

    rougeLsum is summary-level LCS over sentences, which rouge-score reads from newlines; texts
    without newlines are split into sentences first (see `split_sentences`)."""
    refs = _pairs("rouge", predictions, references)
    scorer = _rouge_scorer(use_stemmer)
    keys = ("rouge1", "rouge2", "rougeL", "rougeLsum")
    totals = dict.fromkeys(keys, 0.0)
    for pred, rs in zip(predictions, refs):
        # score_multi keeps, per ROUGE type, the reference with the highest F-measure.
        scores = scorer.score_multi([split_sentences(r) for r in rs], split_sentences(pred))
        for k in keys:
            totals[k] += scores[k].fmeasure
    return {k: v / len(refs) for k, v in totals.items()}


# --------------------------------------------------------------------------- BLEU / chrF


def _streams(refs: list[list[str]]) -> list[list[str | None]]:
    """Per-prediction reference lists -> sacrebleu's reference streams (stream k = k-th reference
    of every prediction); a prediction with fewer references gets None, which sacrebleu skips."""
    width = max(len(r) for r in refs)
    return [[r[k] if k < len(r) else None for r in refs] for k in range(width)]


def bleu(predictions: Sequence[str], references: Refs, **options) -> dict[str, float]:
    """sacrebleu corpus BLEU (0..100). `options` go to sacrebleu.metrics.BLEU (tokenize,
    smooth_method, smooth_value, max_ngram_order, lowercase, effective_order, force)."""
    from sacrebleu.metrics import BLEU

    refs = _pairs("bleu", predictions, references)
    return {"bleu": float(BLEU(**options).corpus_score(list(predictions), _streams(refs)).score)}


def chrf(predictions: Sequence[str], references: Refs, **options) -> dict[str, float]:
    """sacrebleu corpus chrF (0..100; chrF++ with word_order=2). `options` go to sacrebleu.metrics.CHRF."""
    from sacrebleu.metrics import CHRF

    refs = _pairs("chrf", predictions, references)
    return {"chrf": float(CHRF(**options).corpus_score(list(predictions), _streams(refs)).score)}


# --------------------------------------------------------------------------- METEOR


class _NoWordNet:
    """Stands in for nltk's WordNet reader: nltk's METEOR only calls `synsets(word)` and reads the
    lemmas of what comes back, so an empty list turns the synonym stage off."""

    def synsets(self, word: str) -> list:
        return []


_WORD = re.compile(r"\w+|[^\w\s]")


def _meteor_tokens(text: str) -> list[str]:
    # punkt (nltk.word_tokenize) cannot be downloaded offline: lowercase word tokens, with each
    # punctuation mark a token of its own as word_tokenize would make it.
    return _WORD.findall(text.lower())


def meteor(predictions: Sequence[str], references: Refs) -> dict[str, float]:
    """Mean sentence METEOR (0..1) from nltk, exact + Porter-stem matching only ("exact+stem").

    WordNet cannot be downloaded offline, so the synonym stage is off: scores can be lower than
    METEOR with synonyms (e.g. HF evaluate's), never higher. nltk's defaults otherwise (alpha 0.9,
    beta 3, gamma 0.5); with several references the best one counts."""
    from nltk.translate.meteor_score import meteor_score

    refs = _pairs("meteor", predictions, references)
    wordnet = _NoWordNet()
    total = 0.0
    for pred, rs in zip(predictions, refs):
        total += meteor_score([_meteor_tokens(r) for r in rs], _meteor_tokens(pred), wordnet=wordnet)
    return {"meteor": total / len(refs)}


# --------------------------------------------------------------------------- exact match, GSM8K


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation: lowercase, drop punctuation and articles, collapse spaces."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def exact_match(predictions: Sequence[str], references: Refs) -> dict[str, float]:
    """Share of predictions equal to a reference after `normalize_answer` (0..1)."""
    refs = _pairs("exact_match", predictions, references)
    hits = sum(any(normalize_answer(p) == normalize_answer(r) for r in rs) for p, rs in zip(predictions, refs))
    return {"exact_match": hits / len(refs)}


# A number with an optional "$", thousands commas only in groups of three (so "1,2,3" reads as
# three numbers, not 123), and an optional decimal part; a trailing "." is not taken. A minus
# sign counts only when no word or ")" comes right before it, so "5-3" is 5 and 3, not 5 and -3.
_NUMBER = re.compile(r"(?:(?<![\w)])-)?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_ANSWER_IS = re.compile(r"answer is", re.IGNORECASE)


def _clean_number(raw: str) -> str:
    return raw.replace("$", "").replace(",", "").rstrip(".")


def extract_number(text: str) -> str | None:
    """The final answer of a GSM8K-style solution as a plain number string ("1,080" -> "1080").

    The first number after the last "####" if there is one, else after the last "answer is",
    else the last number in the text; None when there is no number."""
    tails = [text.rsplit("####", 1)[1]] if "####" in text else []
    said = list(_ANSWER_IS.finditer(text))
    if said:
        tails.append(text[said[-1].end():])
    for tail in tails:
        found = _NUMBER.search(tail)
        if found:
            return _clean_number(found.group())
    numbers = _NUMBER.findall(text)
    return _clean_number(numbers[-1]) if numbers else None


def _same_number(a: str | None, b: str | None) -> bool:
    # Decimal, not float: "72" == "72.0" holds, and long integers compare exactly.
    if a is None or b is None:
        return False
    try:
        return Decimal(a) == Decimal(b)
    except InvalidOperation:
        return False


def final_answer(predictions: Sequence[str], references: Refs) -> dict[str, float]:
    """GSM8K accuracy: the prediction's final number equals the reference's ("#### N") number."""
    refs = _pairs("final_answer", predictions, references)
    hits = 0
    for i, (pred, rs) in enumerate(zip(predictions, refs)):
        gold = [extract_number(r) for r in rs]
        if any(g is None for g in gold):
            raise fail(f"final_answer: reference {i} has no number: {rs!r}",
                       "references must end with '#### <number>' as GSM8K answers do")
        got = extract_number(pred)
        hits += any(_same_number(got, g) for g in gold)
    return {"final_answer_acc": hits / len(refs)}


def _json_of(text: str):
    """The JSON value in a reply: the whole text, else a fenced block, else the outermost {...}."""
    import json

    candidates = [text.strip()]
    m = re.search(r"```(?:json)?\s*\n(.*?)```", text, re.DOTALL)
    if m:
        candidates.append(m.group(1).strip())
    if "{" in text and "}" in text:
        candidates.append(text[text.index("{"): text.rindex("}") + 1])
    for c in candidates:
        try:
            return True, json.loads(c)
        except ValueError:
            continue
    return False, None


def json_match(predictions: Sequence[str], references: Refs) -> dict[str, float]:
    """Structured output: the share of replies that parse as JSON (json_valid) and that equal the
    reference as a value (json_match): key order and whitespace do not matter, types do (48 != "48")."""
    import json

    refs = _pairs("json_match", predictions, references)
    valid = match = 0
    for i, (pred, rs) in enumerate(zip(predictions, refs)):
        try:
            gold = [json.loads(r) for r in rs]
        except ValueError:
            raise fail(f"json_match: reference {i} is not JSON: {rs[0][:80]!r}",
                       "render the reference with `| tojson`, e.g. reference: \"{{ expected | tojson }}\"") from None
        ok, value = _json_of(pred)
        valid += ok
        match += ok and any(value == g for g in gold)
    return {"json_valid": valid / len(refs), "json_match": match / len(refs)}


# --------------------------------------------------------------------------- embedding similarity


class Encoder:
    """A sentence encoder (mean-pooled, L2-normalised BERT token states), loaded on first use and
    kept, so a suite that scores many tasks loads the model once."""

    def __init__(self, name: str = "all-minilm-l6-v2", batch_size: int = 32, max_length: int = 256,
                 device: str | None = None):
        self.name, self.batch_size, self.max_length, self.device = name, batch_size, max_length, device
        self._model = self._tokenizer = None

    def _load(self) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        from tunesmith.models.loading import materialize, resolve

        folder = materialize(resolve(self.name))
        self.device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._tokenizer = AutoTokenizer.from_pretrained(folder)
        self._model = AutoModel.from_pretrained(folder).to(self.device).eval()

    def encode(self, texts: Sequence[str]):
        """(len(texts), hidden) float32 tensor of unit-length sentence embeddings."""
        import torch

        if self._model is None:
            self._load()
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = self._tokenizer(list(texts[start:start + self.batch_size]), padding=True, truncation=True,
                                    max_length=self.max_length, return_tensors="pt").to(self.device)
            with torch.no_grad():
                states = self._model(**batch).last_hidden_state
            # Mean over real tokens only: padding positions must not pull short texts toward the
            # pad embedding (this is the pooling all-MiniLM-L6-v2 was trained with, 1_Pooling/config.json).
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled.float(), dim=-1).cpu())
        return torch.cat(out)


@lru_cache(maxsize=1)
def default_encoder() -> Encoder:
    """The process-wide embedded all-MiniLM-L6-v2 encoder."""
    return Encoder()


def embedding_similarity(predictions: Sequence[str], references: Refs,
                         encoder: Encoder | None = None) -> dict[str, float]:
    """Mean cosine similarity (-1..1, ~1 for the same meaning) of prediction and reference
    sentence embeddings; with several references the closest one counts."""
    refs = _pairs("embedding_similarity", predictions, references)
    encoder = encoder or default_encoder()
    flat = [r for rs in refs for r in rs]
    pred_vecs, ref_vecs = encoder.encode(list(predictions)), encoder.encode(flat)
    total, k = 0.0, 0
    for i, rs in enumerate(refs):
        # Unit vectors, so the dot product is the cosine.
        total += float((ref_vecs[k:k + len(rs)] @ pred_vecs[i]).max())
        k += len(rs)
    return {"embedding_similarity": total / len(refs)}


# --------------------------------------------------------------------------- classification


def classification(y_true: Sequence, y_pred: Sequence, probs=None, labels: Sequence | None = None) -> dict[str, float]:
    """Accuracy, macro and micro precision / recall / F1 (scikit-learn; a class never predicted
    has precision 0), and ROC AUC when `probs` is given.

    `probs` is n x n_classes (columns in the order of `labels`, else of the sorted distinct
    labels in y_true and y_pred) or, for two classes, n probabilities of the second class.
    Binary AUC is roc_auc; with more classes it is one-vs-rest macro AUC."""
    import numpy as np
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    if len(y_true) != len(y_pred) or not len(y_true):
        raise fail(f"classification: {len(y_true)} true labels and {len(y_pred)} predictions",
                   "pass the same, non-zero number of each")
    classes = list(labels) if labels is not None else sorted(set(y_true) | set(y_pred))
    out = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for avg in ("macro", "micro"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=classes, average=avg, zero_division=0)
        out.update({f"precision_{avg}": float(p), f"recall_{avg}": float(r), f"f1_{avg}": float(f)})
    if probs is not None:
        auc = _auc(np.asarray(y_true), np.asarray(probs, dtype=float), classes)
        if auc is not None:
            out["auc"] = auc
    return out


def _auc(y_true, probs, classes: list) -> float | None:
    """ROC AUC, or None when a class is missing from y_true."""
    from sklearn.metrics import roc_auc_score

    if probs.shape[0] != len(y_true) or (probs.ndim == 2 and probs.shape[1] != len(classes)) or probs.ndim > 2:
        raise fail(f"classification: probs has shape {probs.shape} but there are {len(y_true)} rows and "
                   f"{len(classes)} classes {classes}", "pass an n x n_classes array (or n values for two classes)")
    if probs.ndim == 1 and len(classes) != 2:
        raise fail(f"classification: a 1-d probs array needs two classes, there are {len(classes)}: {classes}",
                   "pass an n x n_classes array")
    # AUC ranks the positives of a class against its negatives: a class with no true rows has no
    # positives, its curve (and the OvR mean) is undefined, and scikit-learn raises. The honest
    # answer is no AUC rather than a number averaged over fewer classes.
    if set(classes) - {x.item() if hasattr(x, "item") else x for x in y_true}:
        return None
    if len(classes) == 2:
        positive = probs if probs.ndim == 1 else probs[:, 1]
        return float(roc_auc_score(y_true == classes[1], positive))
    try:
        return float(roc_auc_score(y_true, probs, multi_class="ovr", average="macro", labels=classes))
    except ValueError as e:  # rows that do not sum to one (logits, unnormalised scores)
        raise fail(f"classification: {e}", "pass softmax probabilities, one column per class") from None


# --------------------------------------------------------------------------- by name


GENERATION_METRICS: dict[str, Callable[..., dict[str, float]]] = {
    "rouge": rouge, "bleu": bleu, "chrf": chrf, "meteor": meteor, "exact_match": exact_match,
    "final_answer": final_answer, "embedding_similarity": embedding_similarity, "json_match": json_match,
}


def generation_metrics(names: Sequence[str], predictions: Sequence[str], references: Refs,
                       encoder: Encoder | None = None) -> dict[str, float]:
    """Run the named generation metrics and merge their results into one dict."""
    unknown = [n for n in names if n not in GENERATION_METRICS]
    if unknown:
        raise fail(f"unknown metric(s): {', '.join(map(repr, unknown))}",
                   f"choose from: {', '.join(GENERATION_METRICS)}", field="metrics")
    out: dict[str, float] = {}
    for name in names:
        if name == "embedding_similarity":
            out.update(embedding_similarity(predictions, references, encoder=encoder))
        else:
            out.update(GENERATION_METRICS[name](predictions, references))
    return out
