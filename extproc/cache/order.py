"""Order and roles: what two questions say about direction, not only which words they use.

"Convert USD to EUR" and "convert EUR to USD" use the same words; a bag of words sees
one question. Here each content word gets the role of the direction word in front of
it: source (from, de/du/d', depuis), target (to, into, towards; vers, à, au, aux, en),
the other side of a comparison (vs, versus, than; contre), before and after (avant,
après). Two questions disagree when a word they share changed between two roles, or
when two of their shared words changed role ("EUR" from target to none and "USD" from
none to target). A coordinated word takes the role of the word it is coordinated with
("to France and Belgium": both targets).

Without any direction word, a question that only reorders its content words ("can my
landlord charge me" / "can I charge my landlord", "a parent ... for a child" / "a child
... for a parent") is a different question, unless the reordering is neutral: the two
sides of a coordination swapped ("tea and coffee"), "X of Y" written "Y X" ("methods of
payment" / "payment methods"), or a phrase moved to the front before a comma.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def _words(text: str) -> list[str]:
    return text.split()


SOURCE, TARGET, VERSUS, BEFORE, AFTER = "source", "target", "versus", "before", "after"

_EN_MARKERS = {
    "from": SOURCE, "to": TARGET, "into": TARGET, "onto": TARGET, "towards": TARGET,
    "toward": TARGET, "vs": VERSUS, "versus": VERSUS, "than": VERSUS, "before": BEFORE,
    "after": AFTER,
}  # fmt: skip
_FR_MARKERS = {
    "de": SOURCE, "d": SOURCE, "du": SOURCE, "depuis": SOURCE, "vers": TARGET,
    "a": TARGET, "au": TARGET, "aux": TARGET, "en": TARGET, "jusqu'a": TARGET,
    "contre": VERSUS, "avant": BEFORE, "apres": AFTER,
}  # fmt: skip
_OTHER_MARKERS = {
    # The other languages the classifier guesses, where their prepositions are clear.
    "es": {"de": SOURCE, "desde": SOURCE, "del": SOURCE, "a": TARGET, "al": TARGET,
           "hacia": TARGET, "contra": VERSUS, "antes": BEFORE, "despues": AFTER},
    "it": {"da": SOURCE, "dal": SOURCE, "dalla": SOURCE, "a": TARGET, "al": TARGET,
           "alla": TARGET, "verso": TARGET, "in": TARGET, "contro": VERSUS, "prima": BEFORE,
           "dopo": AFTER},
    "pt": {"de": SOURCE, "do": SOURCE, "da": SOURCE, "desde": SOURCE, "para": TARGET,
           "ao": TARGET, "a": TARGET, "contra": VERSUS, "antes": BEFORE, "depois": AFTER},
    "de": {"von": SOURCE, "vom": SOURCE, "aus": SOURCE, "nach": TARGET, "zu": TARGET,
           "zum": TARGET, "zur": TARGET, "in": TARGET, "gegen": VERSUS, "als": VERSUS,
           "vor": BEFORE},
}  # fmt: skip
_COORDINATORS = frozenset({"and", "or", "et", "ou", "&", "y", "o", "e", "und", "oder"})
_BOUNDARIES = frozenset(",;:?!.")
_STOPWORDS = frozenset(
    _words(
        # English function words
        "the a an my your our their his her its this that these those it i me we us you they "
        "he she him them do does did doing done is are am was were be been being have has had "
        "can could will would should shall may might must there here some any so if then also "
        "for of on in at by with about as per via just still really very get got "
        # French function words
        "le la les l un une des mon ma mes ton ta tes son sa ses notre nos votre vos leur "
        "leurs ce cet cette ces je j tu il elle on nous vous ils elles me m te t se s y est "
        "sont suis es etes sommes etre ai as avons avez ont avoir peut peux pouvez pouvons "
        "peuvent puis faut qui que qu quoi dans sur par pour avec sans ne n pas ca cela"
    )
)
_TOKEN = re.compile(r"[^\W_]+|[,;:?!.&]")


def tokens(canonical: str) -> list[str]:
    """Words and clause punctuation; elided articles ("l'", "d'", "qu'") stand alone."""
    return _TOKEN.findall(canonical.replace("'", " "))


def stem(word: str) -> str:
    """A crude stem, enough to tell that "charging" and "charge" are one word."""
    for suffix in ("ing", "ed", "es", "s", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


@dataclass(frozen=True)
class Roles:
    sequence: tuple[str, ...]
    """Content words (stems) in order, with "of" genitives turned around and the sides
    of each coordination sorted."""
    roles: dict[str, tuple[str, ...]]
    """Per content word, the role of each of its occurrences (in order; "" for none)."""
    fronted: frozenset[int]
    """Positions in `sequence` where a clause before a comma ends (a fronted phrase)."""
    written: tuple[str, ...]
    """The content words as written (not stemmed), in their order."""


def roles(canonical: str, language: str) -> Roles:
    """The roles in a canonical question (extproc.cache.wording) written in `language`;
    English direction words count in every language (they are often mixed in)."""
    markers = {**_EN_MARKERS}
    markers.update(_FR_MARKERS if language == "fr" else _OTHER_MARKERS.get(language, {}))
    words: list[str] = []
    written: list[str] = []
    word_roles: list[str] = []
    fronted: set[int] = set()
    pending = ""
    coordinated = False
    genitive = False
    for token in tokens(canonical):
        if token in _BOUNDARIES:
            pending, coordinated, genitive = "", False, False
            if token == "," and words:
                fronted.add(len(words))
            continue
        if token in markers:
            pending = markers[token]
            continue
        if token in _COORDINATORS:
            coordinated = bool(words)
            continue
        if token == "of" and words:
            genitive = True
            continue
        if token in _STOPWORDS:
            continue
        role = pending
        if coordinated and not role and word_roles:
            role = word_roles[-1]
        written.append(token)
        word = stem(token)
        if genitive and words:
            # "methods of payment" is "payment methods"
            words.insert(len(words) - 1, word)
            word_roles.insert(len(word_roles) - 1, role)
        else:
            words.append(word)
            word_roles.append(role)
        if coordinated and len(words) >= 2 and words[-2] > words[-1]:
            words[-2], words[-1] = words[-1], words[-2]  # "tea and coffee" = "coffee and tea"
            word_roles[-2], word_roles[-1] = word_roles[-1], word_roles[-2]
        pending, coordinated, genitive = "", False, False
    by_word: dict[str, list[str]] = {}
    for word, role in zip(words, word_roles, strict=True):
        by_word.setdefault(word, []).append(role)
    return Roles(
        tuple(words),
        {w: tuple(r) for w, r in by_word.items()},
        frozenset(fronted),
        tuple(written),
    )


def _rotations(sequence: tuple[str, ...], cuts: frozenset[int]) -> set[tuple[str, ...]]:
    return {sequence[cut:] + sequence[:cut] for cut in cuts} | {sequence}


def disagreement(a: Roles, b: Roles) -> str | None:
    """ "direction" when a shared word changed role, "order" when the same content words
    come in another order; None when neither."""
    shared = a.roles.keys() & b.roles.keys()
    changed = [w for w in shared if a.roles[w] != b.roles[w]]
    if len(changed) >= 2:
        return "direction"
    for word in changed:
        ra, rb = a.roles[word], b.roles[word]
        if len(ra) == len(rb) and any(x and y and x != y for x, y in zip(ra, rb, strict=True)):
            return "direction"  # from a source to a target, a before to an after
    if sorted(a.sequence) != sorted(b.sequence) or a.sequence == b.sequence:
        return None
    if b.sequence in _rotations(a.sequence, a.fronted) or a.sequence in _rotations(
        b.sequence, b.fronted
    ):
        return None  # "On iPhone, how do I..." = "How do I ... on iPhone"
    # A phrase that only gained or lost its preposition moved with it, behind the same
    # first word: "send money to my mom" = "send my mom money" (but not "transfer points
    # to my wife" / "my wife transfers points").
    moved = set(changed)
    if (
        moved
        and a.sequence[0] == b.sequence[0]  # not moved in front of the verb: a new subject
        and [w for w in a.sequence if w not in moved] == [w for w in b.sequence if w not in moved]
    ):
        return None
    return "order"
