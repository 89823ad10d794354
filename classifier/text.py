"""The little text knowledge the decision rule needs: a language guess and follow-up cues.

all-MiniLM-L6-v2 is an English model. French text still embeds, but every French sentence
shares a strong "French" direction, so French prompts of different topics look alike (and
alike to French off-topic prompts). The rule subtracts a per-language mean, which needs to
know the language: a function-word and accent count is enough to tell English from French.
"""

from __future__ import annotations

import re

ENGLISH = "en"
FRENCH = "fr"

_WORD = re.compile(r"[a-zàâçéèêëîïôûùüÿœæ]+")
_ACCENTED = re.compile(r"[àâçéèêëîïôûùüÿœæ]")
# Function words: frequent, topic-free, and different between the two languages.
_FRENCH_WORDS = frozenset(
    """
    je j tu il elle on nous vous ils elles le la les l un une des du de d au aux et ou est
    sont suis ai mon ma mes ton ta tes son sa ses notre votre leur ce cet cette ces qui que
    qu quoi quel quelle quels quelles comment pourquoi combien faut peut dois puis pour avec
    sans dans sur par pas ne plus très faire fais donne moi toi merci oui non vas bonjour salut
    """.split()  # noqa: SIM905 - a word list reads better as text
)
_ENGLISH_WORDS = frozenset(
    """
    i you he she it we they the a an of to in on for with is are am was my your his her its
    our their this that these those what which who how why when where can could should would
    do does did not please thanks yes no
    """.split()  # noqa: SIM905
)

# Replies that carry no topic of their own ("ok", "go on") or only make sense with the
# previous message ("and for a child?"): the conversation rule treats a last message that
# resembles these closely, and more than any label, as "keep the current topic".
FOLLOW_UP_ANCHORS: tuple[str, ...] = (
    "ok",
    "ok, do it",
    "yes please",
    "thanks!",
    "thank you, that helps",
    "go on",
    "continue",
    "tell me more",
    "can you explain that again?",
    "why?",
    "and the second one?",
    "what about the other option?",
    "can you make it shorter?",
    "give me an example",
    "and for a child?",
    "what about in another country?",
    "and what if it doesn't work?",
    "what if I do it next week instead?",
    "d'accord, vas-y",
    "oui merci",
    "merci beaucoup",
    "continue s'il te plaît",
    "et le deuxième ?",
    "peux-tu détailler ?",
    "pourquoi ?",
    "donne-moi un exemple",
    "et pour un enfant ?",
    "et si ça ne marche pas ?",
    "et dans un autre pays ?",
)


def guess_language(text: str) -> str | None:
    """Return ``"fr"``, ``"en"`` or None when the text gives too little evidence."""
    lowered = text.lower()
    words = _WORD.findall(lowered)
    french = sum(w in _FRENCH_WORDS for w in words) + 2 * len(_ACCENTED.findall(lowered))
    english = sum(w in _ENGLISH_WORDS for w in words)
    if french == english:
        return None
    return FRENCH if french > english else ENGLISH
