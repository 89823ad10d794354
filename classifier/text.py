"""The little text knowledge the decision rule needs: a language guess and follow-up cues.

Embeddings of one language share a direction of their own (strongly with all-MiniLM-L6-v2,
less with USE), so French prompts of different topics look alike, and alike to French
off-topic prompts. The rule subtracts a per-language mean (``classifier.neutral``), and the
English-only second opinion must know which prompts are English: both need the language.
Function words, a few letters and the script tell the languages the multilingual encoder
reads apart well enough for that; no model is needed.
"""

from __future__ import annotations

import re

ENGLISH = "en"
FRENCH = "fr"


def _word_list(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Function words: frequent and topic-free. English and French come first: the rule was
# built for them, and where their evidence ties with another language's, they win.
_FUNCTION_WORDS: dict[str, frozenset[str]] = {
    ENGLISH: _word_list(
        """
        i you he she it we they the a an of to in on for with is are am was my your his her its
        our their this that these those what which who how why when where can could should
        would do does did not please thanks yes no
        """
    ),
    FRENCH: _word_list(
        """
        je j tu il elle on nous vous ils elles le la les l un une des du de d au aux et ou est
        sont suis ai mon ma mes ton ta tes son sa ses notre votre leur ce cet cette ces qui que
        qu quoi quel quelle quels quelles comment pourquoi combien faut peut dois puis pour avec
        sans dans sur par pas ne plus très faire fais donne moi toi merci oui non vas bonjour
        salut se en à tout tous toute toutes
        """
    ),
    # The other languages USE reads in Latin script. Words that are common in English or
    # French text without being in their lists ("a", "o", "as", "y") are left out: a stray
    # one must not turn an English prompt into a Portuguese one.
    "es": _word_list(
        """
        el la los las lo un una unos unas del de que por para con mi mis yo pero muy qué cómo
        cuál cuándo cuánto cuántos dónde está estoy están tengo puedo quiero hay necesito
        también sí hola gracias su sus este esta esto eso se no en cuya cuyo sea cual cuando
        donde hacia desde hasta porque sobre algo nada todo toda todos cada otro otra mucho
        mucha poco hoy ahora siempre nunca vez ser hacer tiene puede entre después antes usted
        """
    ),
    "pt": _word_list(
        """
        os do da dos das em nas nos um uma meu minha meus minhas não é são com para por como
        você eu posso quero tenho preciso ao pelo pela isso isto está estou obrigado obrigada
        olá também seu sua que de se mais pra pro no mim deste desta neste nesta quais quem
        qual porque ainda muito muita sobre onde quando até entre depois antes sempre nunca
        agora hoje tudo cada outro outra ser ter fazer tem pode vai foi aos às pelos pelas num
        numa
        """
    ),
    "it": _word_list(
        """
        il lo la le gli un una uno di da del della dei delle dello nel nella alla che non sono
        è ho hai ha mio mia miei mie come perché cosa quando dove posso voglio devo per con
        questo questa anche ciao grazie mi ti ci se ma più molto sul sulla dal dalla degli
        ancora in no su sia cui quale quali quanto quanti quanta tra fra dopo prima oggi
        sempre tutto tutti ogni qualche essere fare mai alle agli negli nei col ed lungo quello
        quella quelli quelle
        """
    ),
    "de": _word_list(
        """
        der die das den dem und ist ich nicht mein meine meinen mir mich wie kann ein eine
        einen einem mit für auf zu von sie er wir ihr bitte danke warum wo wann wer habe hat
        haben soll muss noch schon auch oder aber bei nach über sind im in was am man du dein
        deine diesen dieser dieses diese ins vom zum zur gibt wird werden
        """
    ),
    "nl": _word_list(
        """
        het een ik niet wat hoe mijn kan zijn met voor van waarom waar wanneer graag bedankt
        hallo er om ook maar nog heb heeft moet wil jij in is op
        """
    ),
    "pl": _word_list("nie jak czy się jest mam mój moja moje jestem dlaczego gdzie kiedy że co"),
    "tr": _word_list("bir ve bu ne nasıl için değil var yok mı ben sen benim ile ama çok"),  # noqa: RUF001 - Turkish dotless i
}
# Letters each language writes; a letter counts as two words for every language using it.
_LETTERS: dict[str, str] = {
    FRENCH: "àâçéèêëîïôûùüÿœæ",
    "es": "ñ¿¡áéíóúü",
    "pt": "ãõáâàçéêíóôú",
    "it": "àèéìòù",
    "de": "äöüß",
    "pl": "ąęłńśźżćó",
    "tr": "ğışçöü",
}
_LETTER_LANGUAGES: dict[str, tuple[str, ...]] = {
    letter: tuple(lang for lang, letters in _LETTERS.items() if letter in letters)
    for letter in "".join(_LETTERS.values())
}
_WORD_LANGUAGES: dict[str, tuple[str, ...]] = {
    word: tuple(lang for lang, words in _FUNCTION_WORDS.items() if word in words)
    for words in _FUNCTION_WORDS.values()
    for word in words
}
_PREFERRED = (ENGLISH, FRENCH)
_WORD = re.compile(r"[^\W\d_]+")
_MARKED_LETTER = re.compile(f"[{''.join(_LETTER_LANGUAGES)}]")
# The other scripts USE reads: a text mostly written in one is in its language.
_SCRIPTS: tuple[tuple[str, str], ...] = (
    ("ru", "\u0400-\u04ff"),
    ("ar", "\u0600-\u06ff"),
    ("th", "\u0e00-\u0e7f"),
    ("ko", "\u1100-\u11ff\uac00-\ud7af"),
    ("ja", "\u3040-\u30ff"),  # kana; kanji alone read as Chinese
    ("zh", "\u4e00-\u9fff"),
)
# Every code guess_language can give.
LANGUAGES = frozenset(_FUNCTION_WORDS) | frozenset(_LETTERS) | {lang for lang, _ in _SCRIPTS}
_NON_LATIN = re.compile(f"[{''.join(ranges for _, ranges in _SCRIPTS)}]")
_SCRIPT_OF = [(lang, re.compile(f"[{ranges}]")) for lang, ranges in _SCRIPTS]

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


def _script_language(lowered: str, letters: int) -> str | None:
    """The language of a text mostly written in a non-Latin script USE reads, else None."""
    marks = _NON_LATIN.findall(lowered)
    if 2 * len(marks) <= letters:
        return None
    written = "".join(marks)
    found = {lang: len(script.findall(written)) for lang, script in _SCRIPT_OF}
    if found["ja"]:  # Japanese mixes kana with kanji
        return "ja"
    return max(found, key=lambda lang: found[lang])


def guess_language(text: str) -> str | None:
    """The language code of text (``"en"``, ``"fr"``, ``"es"``, ...), or None when it gives
    too little evidence: no function word or marked letter, or a tie that neither English
    nor French leads alone."""
    lowered = text.lower()
    words = _WORD.findall(lowered)
    script = _script_language(lowered, sum(map(len, words)))
    if script is not None:
        return script
    evidence: dict[str, int] = {}
    for word in words:
        for lang in _WORD_LANGUAGES.get(word, ()):
            evidence[lang] = evidence.get(lang, 0) + 1
    for letter in _MARKED_LETTER.findall(lowered):
        for lang in _LETTER_LANGUAGES[letter]:
            evidence[lang] = evidence.get(lang, 0) + 2
    if not evidence:
        return None
    most = max(evidence.values())
    leaders = [lang for lang, count in evidence.items() if count == most]
    if len(leaders) == 1:
        return leaders[0]
    preferred = [lang for lang in leaders if lang in _PREFERRED]
    return preferred[0] if len(preferred) == 1 else None


# Words that acknowledge or thank and say nothing else, in the languages of the neutral
# corpus. A message made only of them ("ok thanks", "merci !", "got it", "vielen Dank")
# carries no topic: the conversation rule leaves it out (``is_acknowledgment``), so it
# never moves a conversation, whatever its scores (they sat near the threshold, and one
# CPU's arithmetic sent "ok thanks" after a medical question to support).
ACKNOWLEDGMENT_WORDS = _word_list(
    """
    ok okay okey k kk alright all right fine good great cool nice perfect awesome excellent
    wonderful super sure yes yep yeah yup got it understood noted clear cheers thanks thank
    thx ty you so very much lot a many that's that s helps helped helpful appreciate
    appreciated please oh ah i see
    merci beaucoup bien d accord daccord dac parfait génial top compris entendu oui
    ça marche vu nickel très c est bon cool svp stp
    gracias muchas vale perfecto entendido sí bueno genial muy bien
    danke dank vielen schön sehr gut alles klar verstanden ja perfekt prima
    grazie mille perfetto capito sì va bene ottimo benissimo
    obrigado obrigada muito certo entendi sim ótimo beleza
    """
)
# Longer messages have room for a question of their own, even in these words.
ACKNOWLEDGMENT_MAX_WORDS = 6


def is_acknowledgment(text: str) -> bool:
    """Whether text only acknowledges or thanks (or holds no word at all, like "👍")."""
    words = _WORD.findall(text.lower())
    if not words:
        return len(text.strip()) <= 8
    return len(words) <= ACKNOWLEDGMENT_MAX_WORDS and all(
        word in ACKNOWLEDGMENT_WORDS for word in words
    )
