"""IFEval checkers: agreement with the official scorer's published results, and known answers per checker."""

from __future__ import annotations

import json

import pytest

from tunesmith.errors import TunesmithError
from tunesmith.eval import ifeval
from tunesmith.eval.ifeval import INSTRUCTIONS, check, score

DEV = "ifeval_dev/"

# The one row where we knowingly differ from the reference (Podtech's copy of the official
# scorer). Key 1122 asks for at least four "#" characters; the answer has four hashtags. The
# official LetterFrequencyChecker accepts only a-z as `letter` and silently replaces "#" with a
# *random* letter, drawn anew for the strict and the loose pass: strict happened to pass and loose
# to fail, which no deterministic checker can reproduce (loose includes the unchanged response,
# so whatever passes strictly passes loosely). We count the "#" itself: True in both.
ALLOWED_DISAGREEMENTS = {(1122, "keywords:letter_frequency", "loose")}


def _jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
def dev(shared_data):
    """(input rows, responses in row order, reference strict and loose lists keyed by prompt, accuracies)."""
    rows = _jsonl(shared_data(DEV + "input_data_rows_000-039.jsonl"))
    responses = {r["prompt"]: r["response"] for r in _jsonl(shared_data(DEV + "gpt4_responses_rows_000-039.jsonl"))}
    reference = {mode: {r["prompt"]: r["follow_instruction_list"]
                        for r in _jsonl(shared_data(DEV + f"eval_results_{mode}_rows_000-039.jsonl"))}
                 for mode in ("strict", "loose")}
    accuracy = json.loads(shared_data(DEV + "reference_accuracy.json").read_text())
    return rows, [responses[r["prompt"]] for r in rows], reference, accuracy


def test_agrees_with_the_official_scorer_per_instruction(dev):
    rows, responses, reference, _ = dev
    assert len(rows) == 40
    result = score(rows, responses)
    disagreements, compared = set(), 0
    for row, got in zip(rows, result["per_prompt"]):
        assert got["key"] == row["key"]
        for mode in ("strict", "loose"):
            expected = reference[mode][row["prompt"]]
            assert len(got[mode]) == len(expected) == len(row["instruction_id_list"])
            for instruction_id, ours, theirs in zip(row["instruction_id_list"], got[mode], expected):
                compared += 1
                if ours != theirs:
                    disagreements.add((row["key"], instruction_id, mode))
    assert compared == 2 * 63
    assert disagreements == ALLOWED_DISAGREEMENTS


def test_aggregates_match_the_reference_accuracy(dev):
    rows, responses, _, accuracy = dev
    result = score(rows, responses)
    strict, loose = accuracy["dev_strict"], accuracy["dev_loose"]
    assert result["prompt_strict"] == pytest.approx(strict["prompt_level"]) == pytest.approx(0.675)
    assert result["inst_strict"] == pytest.approx(strict["instruction_level"]) == pytest.approx(48 / 63)
    # Loose differs by exactly the allowed row above: one prompt (1122) and one instruction more.
    assert result["prompt_loose"] == pytest.approx(loose["prompt_level"] + 1 / 40)
    assert result["inst_loose"] == pytest.approx(loose["instruction_level"] + 1 / 63)


def test_every_dev_instruction_id_has_a_checker(dev):
    rows = dev[0]
    used = {i for r in rows for i in r["instruction_id_list"]}
    assert len(used) == 23
    assert used <= set(INSTRUCTIONS)


# ---------------------------------------------------------------- known answers, hand-written

# (instruction id, kwargs, a response that follows it, a response that does not)
KNOWN = [
    ("punctuation:no_comma", {}, "Hello world. Bye now.", "Hello, world."),
    ("length_constraints:number_words", {"relation": "at least", "num_words": 5},
     "one two three four five", "one, two, three... four!"),
    ("length_constraints:number_words", {"relation": "less than", "num_words": 3}, "it's", "a b c"),
    ("length_constraints:number_sentences", {"relation": "less than", "num_sentences": 3},
     "Dr. Smith met J. Doe at 5 p.m. today. It went well.", "One. Two! Three?"),
    ("length_constraints:number_sentences", {"relation": "at least", "num_sentences": 3},
     "Wait! Really? Yes.", "Steps:\n1. Mix the flour.\n2. Bake it."),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2},
     "First part.\n***\nSecond part.\n***", "First part.\n***\n***\nSecond part."),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "summer"},
     "Intro here.\n\n\"Summer, at last,\" she said.", "Intro here.\n\nWinter came."),
    ("change_case:english_lowercase", {},
     "this is a plain english sentence about the weather in town today.", "This is a plain English sentence."),
    ("change_case:english_lowercase", {},
     "the cat sat on the mat and looked out of the window all day.",
     "der hund schläft heute den ganzen tag im garten unter dem großen baum."),
    ("change_case:english_capital", {},
     "THIS IS A PLAIN ENGLISH SENTENCE ABOUT THE WEATHER IN TOWN.", "THIS IS MOSTLY CAPS but not all."),
    ("change_case:capital_word_frequency", {"capital_relation": "at least", "capital_frequency": 3},
     "I LOVE what NASA does.", "I love what Nasa does."),
    ("change_case:capital_word_frequency", {"capital_relation": "less than", "capital_frequency": 2},
     "Only ONE shout here.", "TWO SHOUTS here."),
    ("detectable_format:json_format", {}, '```json\n{"a": [1, 2]}\n```', 'Here you go: {"a": 1}'),
    ("detectable_format:title", {}, "<<Poem of Joy>>\nLines follow.", "<< >>\nNo title at all."),
    ("detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": 2},
     "Section 1\nfoo\nSection 2\nbar", "SECTION 1\nfoo\nSECTION 2\nbar"),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2},
     "An *italic* and a **bold** part.", "An *italic* and an empty ** ** part."),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2},
     "Items:\n* apples\n- pears\n**Total** two", "* apples\n* pears\n* plums"),
    ("detectable_format:constrained_response", {}, "I checked twice. My answer is no.", "My answer is: yes"),
    ("detectable_content:number_placeholders", {"num_placeholders": 2},
     "Dear [name], we ship to [address].", "Dear [name], thanks."),
    ("detectable_content:postscript", {"postscript_marker": "P.S."},
     "See you soon.\n\nP. S. Bring cake.", "See you soon. PS bring cake."),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"},
     "Bye.\nP.S. one\np.p.s two", "Bye.\nP.S. only one"),
    ("keywords:existence", {"keywords": ["mom", "mother"]}, "My Mom is a mother.", "My mom is great."),
    # Substring counts, as the official scorer: "war" inside "warrior" counts.
    ("keywords:frequency", {"keyword": "war", "frequency": 2, "relation": "at least"},
     "War made the warrior.", "War and peace."),
    ("keywords:frequency", {"keyword": "story", "frequency": 2, "relation": "less than"},
     "One story.", "A story, another STORY."),
    # Whole words only: "rocking" does not contain the forbidden word "rock".
    ("keywords:forbidden_words", {"forbidden_words": ["rock", "roll"]}, "A rocking chair.", "Let's ROCK."),
    ("keywords:letter_frequency", {"letter": "e", "let_frequency": 3, "let_relation": "less than"},
     "hello world", "EeE"),
    ("keywords:letter_frequency", {"letter": "#", "let_frequency": 2, "let_relation": "at least"},
     "#fun #sun", "#fun only"),
    ("language:response_language", {"language": "de"},
     "Der Hund schläft heute den ganzen Tag im Garten unter dem großen Baum.",
     "The dog sleeps all day in the garden under the big tree."),
    ("startend:quotation", {}, '  "Wrapped in quotes."\n', '"Opened but never closed.'),
    ("startend:end_checker", {"end_phrase": "Any other questions?"},
     'That is all. any other questions?"', "Any other questions? Bye."),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a poem about cats."},
     "WRITE A POEM ABOUT CATS.\n\nSoft paws...", "Here is a poem about cats."),
    ("combination:two_responses", {}, "Answer one.\n******\nAnswer two.", "Same.\n******\nSame."),
    ("combination:two_responses", {}, "******\nA\n******\nB", "A\n******\n\n******\nB"),
]


@pytest.mark.parametrize(("instruction_id", "kwargs", "good", "bad"), KNOWN,
                         ids=[f"{k[0]}-{i}" for i, k in enumerate(KNOWN)])
def test_checker_known_answers(instruction_id, kwargs, good, bad):
    checker = INSTRUCTIONS[instruction_id]
    assert checker(good, **kwargs) is True
    assert checker(bad, **kwargs) is False


def test_known_answers_cover_every_checker():
    assert {k[0] for k in KNOWN} == set(INSTRUCTIONS)
    assert len(INSTRUCTIONS) == 25  # the 23 dev ids plus constrained_response and nth_paragraph_first_word


def test_sentence_splitter():
    split = ifeval._sentences
    assert split("Mr. Smith left. He said \"Bye.\" Then e.g. apples fell!") == \
        ["Mr. Smith left.", "He said \"Bye.\"", "Then e.g. apples fell!"]
    assert split("## Heading\nOne line. Another one") == ["## Heading\nOne line.", "Another one"]
    assert split("Pi is 3.14 exactly... right?") == ["Pi is 3.14 exactly...", "right?"]
    assert split("   ") == [] and split("...") == []


# ---------------------------------------------------------------- check and score


def test_loose_forgives_an_opener_and_markdown_stars():
    opener = "Sure! Here it is:\nthis is a short english note about the weather in town today."
    assert check(opener, ["change_case:english_lowercase"], [{}]) == {"strict": [False], "loose": [True]}
    starred = "**The End. Any other questions?**"
    assert check(starred, ["startend:end_checker"], [{"end_phrase": "any other questions?"}]) == \
        {"strict": [False], "loose": [True]}


def test_empty_response_fails_everything():
    assert check("  \n", ["punctuation:no_comma"], [{}]) == {"strict": [False], "loose": [False]}


def test_none_kwargs_are_dropped():
    # The Hugging Face copy of IFEval lists every kwarg name with None for the unused ones.
    kwargs = [{"num_words": None, "relation": None, "letter": None}, {"num_words": 2, "relation": "at least",
                                                                       "keyword": None}]
    out = check("two words", ["punctuation:no_comma", "length_constraints:number_words"], kwargs)
    assert out == {"strict": [True, True], "loose": [True, True]}


def test_unknown_instruction_id_is_a_user_error():
    with pytest.raises(TunesmithError) as e:
        check("text", ["punctuation:no_semicolon"], [{}])
    message = str(e.value)
    assert "punctuation:no_semicolon" in message
    assert "punctuation:no_comma" in message and "language:response_language" in message


def test_wrong_kwargs_are_user_errors():
    with pytest.raises(TunesmithError, match=r"unknown \['num_word'\].*missing \['num_words'\]"):
        check("text", ["length_constraints:number_words"], [{"num_word": 3, "relation": "at least"}])
    with pytest.raises(TunesmithError, match="'more than'"):
        check("text", ["length_constraints:number_words"], [{"num_words": 3, "relation": "more than"}])
    with pytest.raises(TunesmithError, match="1 instruction ids but 2 kwargs"):
        check("text", ["punctuation:no_comma"], [{}, {}])
    with pytest.raises(TunesmithError, match="single character"):
        check("text", ["keywords:letter_frequency"], [{"letter": "ab", "let_frequency": 1, "let_relation": "at least"}])


def test_score_accuracies_by_hand():
    rows = [
        {"key": 1, "prompt": "p1", "instruction_id_list": ["punctuation:no_comma", "startend:quotation"],
         "kwargs": [{}, {}]},
        {"key": 2, "prompt": "p2", "instruction_id_list": ["detectable_format:title"], "kwargs": [{}]},
    ]
    # Row 1: no comma passes, the quotation fails strictly but passes once the last line is cut.
    result = score(rows, ['"No commas here"\nthanks', "<<Title>>"])
    assert result["per_prompt"] == [{"key": 1, "strict": [True, False], "loose": [True, True]},
                                    {"key": 2, "strict": [True], "loose": [True]}]
    assert (result["prompt_strict"], result["inst_strict"]) == (0.5, 2 / 3)
    assert (result["prompt_loose"], result["inst_loose"]) == (1.0, 1.0)
    with pytest.raises(TunesmithError, match="2 IFEval rows but 1 responses"):
        score(rows, ["only one"])
