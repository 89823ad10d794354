"""One wording for what is said the same way twice, before the embedding and the guard.

Two questions that differ only in how they are typed should look identical to both:
greetings and politeness wrappers are dropped ("Hi, could you tell me how...",
"Bonjour, pourriez-vous me dire...", "merci"), case and accents folded, number words
written as digits in English and French ("fourteen", "vingt-cinq" -> 14, 25),
hyphenated and spaced compounds joined ("e-mail", "wi fi", "log in" -> email, wifi,
login), common support abbreviations written one way ("acct", "pwd", "n°") and a few
support verbs and nouns that say the same thing mapped to one word ("bills" ->
invoices, "modifier" -> changer). Each table is small and meant to be extended.

Only what keeps the meaning is rewritten: "one"/"un"/"une" stay words (they are also
articles and pronouns), and nothing is reordered.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from classifier.text import guess_language


def _words(text: str) -> list[str]:
    return text.split()


def fold(text: str) -> str:
    """Lower case without accents: "Désactiver" and "desactiver" are one word."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("\u2019", "'")


def _alternatives(phrases: list[str]) -> str:
    # Longest first, so "thanks a lot" goes before "thanks".
    return "|".join(re.escape(p).replace(r"\ ", r"[\s,]+") for p in sorted(phrases, key=len)[::-1])


_GREETINGS = [
    "hi", "hello", "hey", "hey there", "hi there", "hello there", "good morning",
    "good afternoon", "good evening", "good day", "dear support", "dear team", "hi team",
    "hello team", "hi support", "hello support",
    "bonjour", "bonsoir", "salut", "coucou", "allo", "cher support", "chere equipe",
]  # fmt: skip
_WRAPPERS = [
    "could you tell me", "could you please tell me", "can you tell me",
    "can you please tell me", "could you let me know", "can you let me know",
    "would you tell me", "i was wondering", "i wonder", "i would like to know",
    "i'd like to know", "i want to know", "quick question", "just a quick question",
    "question", "please", "pls", "plz", "kindly",
    "pourriez-vous me dire", "pouvez-vous me dire", "pourriez-vous m'indiquer",
    "pouvez-vous m'indiquer", "pourrais-tu me dire", "peux-tu me dire",
    "je voudrais savoir", "j'aimerais savoir", "je souhaiterais savoir",
    "je me demandais", "petite question", "une question",
    "s'il vous plait", "s'il te plait", "svp", "stp",
]  # fmt: skip
_THANKS = [
    "thanks", "thank you", "thanks a lot", "many thanks", "thanks in advance",
    "thank you very much", "thx", "ty", "cheers", "regards", "best regards",
    "merci", "merci beaucoup", "merci d'avance", "merci par avance", "cordialement",
    "thanks for your help", "thank you for your help", "have a nice day", "have a good day",
    "je vous remercie", "merci pour votre aide", "bonne journee", "bonne soiree",
]  # fmt: skip
_GREETING = re.compile(rf"^\s*(?:(?:{_alternatives(_GREETINGS)})\b[\s,!.:]*)+")
_WRAPPER = re.compile(rf"(?<![\w'-])(?:{_alternatives(_WRAPPERS)})(?![\w'-])[\s,:]*")
_THANKS_AT_END = re.compile(rf"[\s,.!]*(?:(?:{_alternatives(_THANKS)})[\s,.!]*)+$")


def strip_politeness(folded: str) -> str:
    """The question without greetings, thanks and "could you tell me" around it."""
    text = _GREETING.sub("", folded)
    text = _THANKS_AT_END.sub("", text)
    text = _WRAPPER.sub("", text)
    return text.strip(" ,") or folded


# -- phrases, abbreviations, synonyms ---------------------------------------------------

_PHRASES = {
    # One spelling of support terms written several ways (before numbers: "two-factor").
    "2fa": [
        "two factor authentication", "two-factor authentication", "2 factor authentication",
        "2-factor authentication", "two step verification", "two-step verification",
        "authentification a deux facteurs", "authentification a 2 facteurs",
        "double authentification", "authentification double facteur",
    ],
    "mfa": ["multi factor authentication", "multi-factor authentication",
            "authentification multifacteur", "authentification multi-facteurs"],
    "can't i": ["am i unable to", "am i not able to"],
    "cannot": ["am unable to", "is unable to", "are unable to", "unable to", "am not able to",
               "not able to"],
    "ne peux pas": ["n'arrive pas a", "n'arrive pas a", "n'y arrive pas", "ne parviens pas a"],
    "refund": ["get a refund", "get my money back", "get money back"],
    "customer support": ["customer service", "support team", "help desk", "helpdesk"],
    "contact": ["get in touch with", "reach out to", "get hold of"],
    "2 times": ["twice"], "3 times": ["thrice"],
    "service client": ["support client", "assistance client"],
    "changer": ["mettre a jour"],
    "terms and conditions": ["t&c", "t&cs", "t & c", "terms & conditions"],
    # ordinals: "1st" reads as "first" (its side in first/last), the others as digits
    "first": ["1st"], "premier": ["1er"], "premiere": ["1re", "1ere"],
}  # fmt: skip
_PHRASE = re.compile(
    r"(?<![\w-])("
    + "|".join(
        re.escape(p) for p in sorted((p for v in _PHRASES.values() for p in v), key=len)[::-1]
    )
    + r")(?![\w'-])"
)
_PHRASE_TO = {p: canonical for canonical, spellings in _PHRASES.items() for p in spellings}

_WORDS = {
    # abbreviations
    "acct": "account", "accts": "accounts", "pwd": "password", "passwd": "password",
    "pw": "password", "config": "configuration", "configs": "configurations",
    "app": "application", "apps": "applications", "info": "information",
    "infos": "informations", "msg": "message", "msgs": "messages", "sub": "subscription",
    "subs": "subscriptions", "addr": "address", "qty": "quantity", "auth": "authentication",
    "tel": "telephone", "appli": "application", "applis": "applications",
    "tos": "terms of service", "courriel": "email", "courriels": "emails",
    "mdp": "mot de passe", "abo": "abonnement", "pb": "probleme", "pbs": "problemes",
    # support synonyms (EN)
    "bill": "invoice", "bills": "invoices", "update": "change", "updates": "changes",
    "modify": "change", "edit": "change", "view": "see", "locate": "find",
    "terminate": "close", "reach": "contact", "previous": "past",
    # support synonyms (FR)
    "modifier": "changer", "modifie": "change", "clôturer": "fermer", "cloturer": "fermer",
    "consulter": "voir", "marche": "fonctionne", "marchent": "fonctionnent",
    "resilier": "annuler",
}  # fmt: skip

_COMPOUNDS = {
    "e mail": "email", "e mails": "emails", "wi fi": "wifi", "log in": "login",
    "log out": "logout", "sign in": "signin", "sign out": "signout", "sign up": "signup",
    "set up": "setup", "user name": "username", "voice mail": "voicemail",
    "week end": "weekend", "check out": "checkout", "on line": "online",
    "web site": "website", "pass word": "password", "time zone": "timezone",
}  # fmt: skip
_COMPOUND = re.compile(
    r"(?<![\w'])("
    + "|".join(re.escape(k).replace(r"\ ", "[ -]") for k in _COMPOUNDS)
    + r")(?![\w'])"
)

# A hyphen joins a compound ("wi-fi", "non-refundable") but not a French inversion
# ("peut-on", "est-il", "pouvez-vous"): those pronouns stay words.
_CLITICS = _words("je tu il elle on nous vous ils elles t le la les lui leur y en ce moi toi ci la")
_HYPHEN = re.compile(rf"(?<=\w)-(?!(?:{'|'.join(_CLITICS)})\b)(?=\w)")
_INVERSION = re.compile(rf"(?<=\w)-(?=(?:{'|'.join(_CLITICS)})\b)")


# -- numbers written as words -----------------------------------------------------------

_UNITS_EN = _words(
    "zero . two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
)
_TENS_EN = _words("twenty thirty forty fifty sixty seventy eighty ninety")
_UNITS_FR = _words(
    "zero . deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze quinze seize"
)
_TENS_FR = _words("vingt trente quarante cinquante soixante")

_SMALL: dict[str, int] = {w: n for n, w in enumerate(_UNITS_EN) if w != "."}
_SMALL.update({w: n for n, w in enumerate(_UNITS_FR) if w != "."})
_SMALL.update({w: 20 + 10 * i for i, w in enumerate(_TENS_EN)})
_SMALL.update({w: 20 + 10 * i for i, w in enumerate(_TENS_FR)})
_SMALL.update({"vingts": 20, "dix-sept": 17, "dix-huit": 18, "dix-neuf": 19})
_ONE = {"one": 1, "un": 1, "une": 1}
"""A "one" counts only inside a longer number ("twenty-one", "vingt et un")."""
_SCALE = {"hundred": 100, "cent": 100, "cents": 100, "thousand": 1000, "mille": 1000}
_NUMBER_WORD = re.compile(
    r"(?<![\w'])((?:"
    + "|".join(sorted([*_SMALL, *_ONE, *_SCALE, "quatre-vingt", "quatre-vingts"], key=len)[::-1])
    + r")(?:(?:[\s-]+(?:et|and)?[\s-]*)(?:"
    + "|".join(sorted([*_SMALL, *_ONE, *_SCALE, "quatre-vingt", "quatre-vingts"], key=len)[::-1])
    + r"))*)(?![\w'])"
)


def _value(words: list[str]) -> int | None:
    if words in (["cent"], ["cents"]):
        return None  # a coin ("50 cents") as often as a hundred
    total = current = 0
    for word in words:
        if word in ("quatre-vingt", "quatre-vingts"):
            current += 80
        elif word in _SMALL:
            current += _SMALL[word]
        elif word in _ONE:
            if len(words) == 1:
                return None
            current += 1
        elif word in _SCALE:
            if _SCALE[word] == 100:
                current = max(current, 1) * 100
            else:
                total += max(current, 1) * 1000
                current = 0
        elif word in ("et", "and"):
            continue
        else:
            return None
    return total + current


_ENGLISH_NUMBERS = frozenset([*_UNITS_EN, *_TENS_EN, "one", "hundred", "thousand"])


def _digits(match: re.Match[str]) -> str:
    raw = match.group(1)
    tokens = [t for t in re.split(r"[\s]+|(?<!quatre)-", raw) if t]
    coin = ""
    if tokens[-1] in ("cent", "cents") and _ENGLISH_NUMBERS.intersection(tokens):
        tokens, coin = tokens[:-1], " " + tokens[-1]  # "fifty cents" is 50 cents
    value = _value(tokens)
    return raw if value is None else str(value) + coin


_ORDINALS = {
    **{w: n for n, w in enumerate(_words(
        ". . second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth"
    )) if w != "."},
    **{w: n for n, w in enumerate(_words(
        ". . deuxieme troisieme quatrieme cinquieme sixieme septieme huitieme neuvieme "
        "dixieme onzieme douzieme"
    )) if w != "."},
}  # fmt: skip
_ORDINAL = re.compile(r"(?<![\w'])(" + "|".join(_ORDINALS) + r")(?![\w'])")
_ORDINAL_DIGITS = re.compile(r"(?<![\w'])(\d+)(?:nd|rd|th|e|eme|ieme)(?![\w'])")


def number_words_as_digits(folded: str) -> str:
    """Cardinals and ordinals (from the second on) as digits: "fourteen" -> 14,
    "vingt-cinq" -> 25, "third" / "3rd" / "troisième" / "3e" -> 3."""
    text = _NUMBER_WORD.sub(_digits, folded)
    text = _ORDINAL.sub(lambda m: str(_ORDINALS[m.group(1)]), text)
    return _ORDINAL_DIGITS.sub(r"\1", text)


# -- all together -----------------------------------------------------------------------

_NUMERO = re.compile(r"(?<![\w])(?:n°|nº|no\.)(?=\s|$|\d|\?)")
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)?|[%$€£]|[0-9]+(?:[.,][0-9]+)*")


def _word(match: re.Match[str]) -> str:
    word = match.group(0)
    return _WORDS.get(word, word)


@lru_cache(maxsize=4096)
def canonical(question: str) -> str:
    """The question as the guard and the embedding see it: folded, without politeness,
    numbers as digits, one spelling per compound, abbreviation and synonym."""
    text = strip_politeness(fold(question))
    if _NUMERO.search(text):
        text = _NUMERO.sub(" numero " if guess_language(question) == "fr" else " number ", text)
    text = _PHRASE.sub(lambda m: _PHRASE_TO[m.group(1)], text)
    text = number_words_as_digits(text)
    text = _COMPOUND.sub(lambda m: _COMPOUNDS[m.group(1).replace("-", " ")], text)
    text = _INVERSION.sub(" ", text)
    text = _HYPHEN.sub("", text)
    text = re.sub(r"[^\W\d_]+(?:'[^\W\d_]+)?", _word, text)
    return re.sub(r"\s+", " ", text).strip()
