"""The guard against the opposite question: a semantic candidate must agree on polarity,
specifics, direction and roles, not only be close in meaning.

Sentence encoders place "how do I turn on X" and "how do I turn off X" at cosine
0.93-0.97, "convert USD to EUR" and "convert EUR to USD" at 0.99: similarity alone
would serve one's answer to the other. Both questions are first written one way
(extproc.cache.wording: politeness dropped, number words as digits, compounds,
abbreviations), then a candidate close enough is a hit only when, compared with the
new question, it has (in English and French):

- the same polarity: an odd count of negations in one and an even count in the
  other disagree ("not", "never", "without", "can't"; "ne ... pas", "jamais", "sans"),
  and no word that is the other's with a negation prefix ("unavailable", "impayée");
- no antonym swap: in each group of opposites (on/off, enable/disable, allowed/
  forbidden, increase/decrease, before/after, monthly/yearly, Monday/Friday...)
  both use the same side, when both use the group at all (a typo of a group's word
  counts as the word);
- the same numbers and units ("5 GB" is not "50 GB", nor "5 MB"; "IPv4" is not "IPv6");
- the same named entities: a word written with a capital inside a sentence, an
  acronym, or a word with a digit in one must occur in the other ("iPhone" vs "Android");
- the same scales, relative times and people roles when both speak of them
  (extproc.cache.opposites: "cheapest" vs "most expensive", "today" vs "tomorrow",
  "mother" vs "grandmother");
- the same direction and roles, and not merely the same words reordered
  (extproc.cache.order: "USD to EUR" vs "EUR to USD").

It is deliberately strict: a rewording it refuses costs one model call, a wrong
hit serves a wrong answer. docs/CACHE.md gives its measured rates and what it cannot see.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from classifier.text import guess_language
from extproc.cache import opposites, order
from extproc.cache.wording import canonical, fold

_APOSTROPHES = "'\u2019"
_WORD = re.compile(rf"[^\W_]+(?:[{_APOSTROPHES}][^\W_]+)?|[%$€£]", re.UNICODE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


# -- negations ---------------------------------------------------------------------


def _split(words: str) -> list[str]:
    return words.split()


_NEGATIONS = frozenset(
    _split(
        "not no never without none nothing nobody nowhere neither nor cannot cant dont doesnt "
        "didnt wont isnt arent wasnt werent shouldnt wouldnt couldnt hasnt havent hadnt mustnt "
        "pas jamais sans aucun aucune rien nullement guere ni"
    )
)
_FRENCH_NE = frozenset({"ne", "n"})
"""French "ne"/"n'": a negation on its own only without a "pas", "jamais"... after it
(spoken French drops the "ne", written French keeps both words for one negation)."""
_AFTER_NE = frozenset({"pas", "jamais", "rien", "aucun", "aucune", "plus", "personne", "guere"})


def negations(words: list[str]) -> int:
    count = 0
    open_ne = False
    for word in words:
        if word in _FRENCH_NE or word.startswith("n'"):
            count += open_ne  # an earlier "ne" that nothing completed
            open_ne = True
            continue
        if open_ne and word in _AFTER_NE:
            count += 1
            open_ne = False
        elif word.replace("'", "") in _NEGATIONS or word.endswith("n't"):
            count += 1
    return count + open_ne


# -- antonym groups ----------------------------------------------------------------


def _side(*words: str, en: tuple[str, ...] = (), fr: tuple[str, ...] = ()) -> frozenset[str]:
    forms = set(words)
    for verb in en:
        forms.update(opposites.en_verb(verb))
    for verb in fr:
        forms.update(opposites.fr_verb(fold(verb)))
    return frozenset(forms)


_GROUPS: tuple[tuple[frozenset[str], ...], ...] = (
    (
        _side("+on", "active", "actif", "allume",
              en=("enable", "activate"), fr=("activer", "allumer")),
        _side("+off", "inactive", "inactif", "eteint", "eteindre", "eteins",
              en=("disable", "deactivate"), fr=("desactiver", "couper")),
    ),
    (
        _side(en=("lock",), fr=("verrouiller", "bloquer")),
        _side(en=("unlock",), fr=("deverrouiller", "debloquer")),
    ),
    # permission and prohibition: every form of the verbs (opposites.ALLOWED, FORBIDDEN)
    (_side(*opposites.ALLOWED), _side(*opposites.FORBIDDEN, en=("block", "deny"))),
    (
        _side("more", "higher", "+up", "plus", en=("increase", "raise"), fr=("augmenter",)),
        _side("less", "fewer", "lower", "+down", "moins",
              en=("decrease", "reduce"), fr=("diminuer", "baisser", "reduire")),
    ),
    (
        _side("before", "avant", "earlier", "prior", "within", "sous"),
        _side("after", "apres", "later", "beyond", "past"),
    ),
    (
        _side(en=("add", "include"), fr=("ajouter", "inclure")),
        _side(en=("remove", "delete", "exclude"),
              fr=("supprimer", "retirer", "enlever", "exclure")),
    ),
    (_side(en=("upgrade",)), _side(en=("downgrade",))),
    (
        _side(en=("subscribe",), fr=("abonner",)),
        _side(en=("unsubscribe",), fr=("desabonner", "resilier")),
    ),
    (
        _side("+in", "login", "signin", "connexion", fr=("connecter",)),
        _side("+out", "logout", "signout", "deconnexion", fr=("deconnecter",)),
    ),
    (_side(en=("open",), fr=("ouvrir", "ouvert")), _side(en=("close",), fr=("fermer",))),
    (
        _side(en=("start",), fr=("demarrer", "commencer", "lancer")),
        _side("stopped", "stopping", en=("stop",), fr=("arreter", "stopper")),
    ),
    (_side(en=("show", "display"), fr=("afficher",)),
     _side(en=("hide",), fr=("masquer", "cacher"))),
    (_side(en=("encrypt",), fr=("chiffrer",)), _side(en=("decrypt",), fr=("dechiffrer",))),
    (_side(en=("import",), fr=("importer",)), _side(en=("export",), fr=("exporter",))),
    (
        _side(en=("upload",), fr=("televerser",)),
        _side(en=("download",), fr=("telecharger",)),
    ),
    (_side(en=("install",), fr=("installer",)), _side(en=("uninstall",), fr=("desinstaller",))),
    (_side(en=("mute",)), _side(en=("unmute",))),
    (_side(en=("buy", "purchase"), fr=("acheter",)), _side("sell", "sold", "selling", "vendre")),
    (_side("send", "sent", "sending", fr=("envoyer",)), _side(en=("receive",), fr=("recevoir",))),
    (
        _side(en=("accept", "approve"), fr=("accepter", "approuver")),
        _side(en=("reject", "decline", "refuse"), fr=("refuser", "rejeter")),
    ),
    (_side("public", "publique"), _side("private", "prive", "privee")),
    (_side("incoming", "inbound", "entrant", "entrants"), _side("outgoing", "outbound", "sortant")),
    (_side("above", "over", "dessus"), _side("below", "under", "dessous")),
    (_side("first", "premier", "premiere", "oldest"),
     _side("last", "dernier", "derniere", "latest", "newest")),
    (_side("minimum", "min", "minimal", "minimale"),
     _side("maximum", "max", "maximal", "maximale")),
    (
        _side("cheap", "cheaper", "cheapest", "cher"),
        _side("expensive", "costly"),
    ),
    (_side("true", "vrai"), _side("false", "faux")),
    (_side("positive", "positif", "positive", "positifs", "positives"),
     _side("negative", "negatif", "negative", "negatifs", "negatives")),
    (_side("credit", "credits"), _side("debit", "debits")),
    (_side("major", "majeur", "majeure"), _side("minor", "mineur", "mineure")),
    (_side("free", "gratuit", "gratuite", "gratuits", "gratuites"),
     _side("paid", "payant", "payante", "payants", "payantes")),
    (_side("domestic", "national", "nationale", "nationaux"),
     _side("international", "internationale", "internationaux", "abroad", "etranger")),
    (_side("left", "gauche"), _side("right", "droite")),
    (_side("inside", "indoor", "indoors", "interieur"),
     _side("outside", "outdoor", "outdoors", "exterieur")),
    (_side("full", "plein", "pleine"), _side("empty", "vide")),
    (_side("arrival", "arrivals", "arrivee", "arrivees"),
     _side("departure", "departures", "depart", "departs")),
    (_side("personal", "personnel", "personnelle", "particulier"),
     _side("business", "professional", "professionnel", "professionnelle", "entreprise")),
    (_side("north", "nord"), _side("south", "sud"), _side("east"), _side("west", "ouest")),
    (_side("spring", "printemps"), _side("summer", "ete"), _side("autumn", "fall", "automne"),
     _side("winter", "hiver")),
    (_side("success", "succeed", "succeeded", "reussi"),
     _side("fail", "failed", "failure", "echec")),
    (
        _side("daily", "quotidien", "quotidienne"),
        _side("weekly", "hebdomadaire"),
        _side("monthly", "mensuel", "mensuelle"),
        _side("yearly", "annual", "annually", "annuel", "annuelle"),
    ),
    tuple(
        _side(en_day, fr_day)
        for en_day, fr_day in zip(
            _split("monday tuesday wednesday thursday friday saturday sunday"),
            _split("lundi mardi mercredi jeudi vendredi samedi dimanche"),
            strict=True,
        )
    ),
    tuple(
        _side(*_split(names))
        for names in (
            "january janvier jan", "february fevrier feb", "march mars", "april avril apr",
            "may mai", "june juin", "july juillet", "august aout aug",
            "september septembre sep sept", "october octobre oct", "november novembre nov",
            "december decembre dec",
        )
    ),
    (_side("kb", "ko", "kilobyte", "kilobytes"), _side("mb", "mo", "megabyte", "megabytes"),
     _side("gb", "gigabyte", "gigabytes"), _side("tb", "terabyte", "terabytes")),
    (_side("eur", "euro", "euros", "€"), _side("usd", "dollar", "dollars", "$"),
     _side("gbp", "£", "pound", "pounds")),
    (_side("windows"), _side("macos", "mac"), _side("linux"), _side("ios", "iphone", "ipad"),
     _side("android")),
)  # fmt: skip

_PHRASAL_PARTICLES = frozenset({"on", "off", "in", "out", "up", "down"})
"""Count as a side only after one of these verbs ("turn on", "log out"): alone,
"on my phone" or "in French" are prepositions."""
_PHRASAL_VERBS = frozenset(
    _split(
        "turn turns turned turning switch switches switched switching log logs logged logging "
        "sign signs signed signing opt opts opted opting power powers powered powering scale "
        "scales scaled scaling check checks checked checking shut shuts shutting"
    )
)


def _index_groups() -> dict[str, tuple[int, int]]:
    index: dict[str, tuple[int, int]] = {}
    for g, sides in enumerate(_GROUPS):
        for s, words in enumerate(sides):
            for word in words:
                # First group wins: a word stands for one opposition only.
                index.setdefault(word, (g, s))
    return index


_SIDE_OF = _index_groups()


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def _transpositions(word: str) -> set[str]:
    return {word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(len(word) - 1)}


def _index_omissions(words: Iterable[str], shortest: int) -> dict[str, frozenset[str]]:
    """Each word's one-letter deletions -> the words they come from."""
    index: dict[str, set[str]] = {}
    for word in words:
        if len(word) >= shortest and word.isalpha():
            for variant in _deletions(word):
                index.setdefault(variant, set()).add(word)
    return {variant: frozenset(found) for variant, found in index.items()}


_OMITTED_SIDE = _index_omissions(_SIDE_OF, 5)
_OMITTED_PHRASAL = _index_omissions(_PHRASAL_VERBS, 4)


def _typo_of_known(
    word: str, known: Container[str], omitted: dict[str, frozenset[str]]
) -> frozenset[str]:
    """The known words `word` is a typo of: a letter dropped, one too many, or two
    neighbours swapped. Not a changed letter: "clone" must not read as "close"."""
    found = {w for w in _deletions(word) | _transpositions(word) if w in known}
    return frozenset(found | omitted.get(word, frozenset()))


@lru_cache(maxsize=16384)
def _misspelt_side(word: str) -> tuple[int, int] | None:
    """The group side of a word that is a typo of group words all on that side."""
    read = {_SIDE_OF[w] for w in _typo_of_known(word, _SIDE_OF, _OMITTED_SIDE)}
    return read.pop() if len(read) == 1 else None


def antonym_sides(words: list[str]) -> dict[int, frozenset[int]]:
    """Per antonym group used in the text, the sides used; a word one typo away from a
    word of a group counts as that word ("disabel", "désactvier", "trun off", "déverouiller")."""
    sides: dict[int, set[int]] = {}
    for i, word in enumerate(words):
        if word in _PHRASAL_PARTICLES:
            before = words[i - 1] if i else ""
            if before not in _PHRASAL_VERBS and not _typo_of_known(
                before, _PHRASAL_VERBS, _OMITTED_PHRASAL
            ):
                continue
            word = "+" + word
        found = _SIDE_OF.get(word.replace("'", "")) or _SIDE_OF.get(word.split("'")[-1])
        if found is None and len(word) >= 5 and word.isalpha():
            found = _misspelt_side(word)
        if found is not None:
            sides.setdefault(found[0], set()).add(found[1])
    return {group: frozenset(used) for group, used in sides.items()}


# -- numbers, units, entities -------------------------------------------------------


def _number(raw: str) -> str:
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+", raw):
        raw = raw.replace(",", "")  # 1,000
    raw = raw.replace(",", ".")  # 1,5 (French decimal)
    return raw if "." in raw else raw.lstrip("0") or "0"


def numbers(text: str) -> tuple[str, ...]:
    """Every number, sorted; "1,000" and "1000" agree, "1,5" is 1.5. Versions keep
    their digits as written: "3.10" is not "3.1"."""
    return tuple(sorted(_number(raw) for raw in _NUMBER.findall(text)))


_UNITS = {
    **dict.fromkeys(["%", "percent", "pourcent", "pct"], "%"),
    **dict.fromkeys(["h", "hr", "hrs", "hour", "hours", "heure", "heures"], "h"),
    **dict.fromkeys(["min", "mins", "minute", "minutes"], "min"),
    **dict.fromkeys(["s", "sec", "secs", "second", "seconds", "seconde", "secondes"], "s"),
    **dict.fromkeys(["ms", "millisecond", "milliseconds", "milliseconde", "millisecondes"], "ms"),
    **dict.fromkeys(["day", "days", "jour", "jours"], "day"),
    **dict.fromkeys(["week", "weeks", "semaine", "semaines"], "week"),
    **dict.fromkeys(["month", "months", "mois"], "month"),
    **dict.fromkeys(["year", "years", "an", "ans", "annee", "annees"], "year"),
    **dict.fromkeys(["km", "kilometre", "kilometres", "kilometer", "kilometers"], "km"),
    **dict.fromkeys(["m", "metre", "metres", "meter", "meters"], "m"),
    **dict.fromkeys(["mile", "miles"], "mile"),
    **{unit: unit for unit in ("cm", "mm", "kg", "g", "mg", "l", "ml", "mph")},
}


def units(words: list[str]) -> frozenset[str]:
    """Units that follow a number ("5 GB", "5GB", "30 jours")."""
    found: set[str] = set()
    for i, word in enumerate(words):
        match = re.fullmatch(r"\d+(?:[.,]\d+)*([a-z%€$£]+)", word)
        unit = match.group(1) if match else None
        if unit is None and word[:1].isdigit() and i + 1 < len(words):
            unit = words[i + 1]
        if unit is None:
            continue
        if unit in _UNITS:
            found.add(_UNITS[unit])
    return frozenset(found)


_SENTENCE_START = re.compile(r"(?:^|[.!?:;]\s+|[\"«(]\s*)$")


def entities(text: str) -> frozenset[str]:
    """Words that name something: capitalised inside a sentence, acronyms, mixed case,
    words with digits (model names, versions)."""
    found: set[str] = set()
    for match in re.finditer(r"[^\W_](?:[\w.+#-]*[\w+#])?", text):
        word = match.group(0)
        if len(word) < 2 and not word.isdigit():
            continue
        has_digit = any(c.isdigit() for c in word)
        if word.isdigit():
            continue  # numbers are compared on their own
        upper_inside = any(c.isupper() for c in word[1:])
        capital = word[0].isupper() and not _SENTENCE_START.search(text[: match.start()])
        if has_digit or upper_inside or (capital and word not in ("I", "I'm")):
            found.add(fold(word))
    return frozenset(found)


_MARKERS_BY_LANGUAGE = ("en", "fr", "es", "de", "it", "pt")


@dataclass(frozen=True)
class Specifics:
    """What the guard compares, computed once per question."""

    words: frozenset[str]
    negated: bool
    sides: dict[int, frozenset[int]]
    numbers: tuple[str, ...]
    units: frozenset[str]
    entities: frozenset[str]
    scales: frozenset[tuple[str, int, int]]
    times: frozenset[tuple[str, object]]
    people: frozenset[str]
    roles: order.Roles


_ELISIONS = frozenset(_split("l d j m t s n c qu jusqu lorsqu puisqu"))


def _without_elision(word: str) -> str:
    head, _, tail = word.partition("'")
    return tail if tail and head in _ELISIONS else word


@lru_cache(maxsize=4096)
def specifics(text: str) -> Specifics:
    said = canonical(text)
    words = _WORD.findall(said)
    # "l'iPhone", "d'Android": the elided article is not part of the word.
    split = [_without_elision(w) for w in words]
    bare = set(split) | set(words)
    language = guess_language(text) or "en"
    return Specifics(
        words=frozenset(bare),
        negated=negations(words) % 2 == 1,
        sides=antonym_sides(words),
        numbers=numbers(said),
        units=units(words),
        entities=frozenset(canonical(entity) for entity in entities(text)),
        scales=opposites.scales(split),
        times=opposites.relative_time(split),
        people=opposites.people(split),
        roles=order.roles(said, language if language in _MARKERS_BY_LANGUAGE else "en"),
    )


def disagreement(cached: str, new: str) -> str | None:
    """Why two close questions must not share an answer, or None when they agree."""
    a, b = specifics(cached), specifics(new)
    if a.negated != b.negated:
        return "negation"
    for group in a.sides.keys() & b.sides.keys():
        if a.sides[group] != b.sides[group]:
            return "antonym"
    if a.numbers != b.numbers:
        return "number"
    if a.units != b.units:
        return "unit"
    for entity in a.entities ^ b.entities:
        parts = _WORD.findall(entity)
        if not all(_has(part, a.words) and _has(part, b.words) for part in parts):
            return "entity"
    if _differ_on_axis(a.scales, b.scales, lambda scale: scale[0]):
        return "comparative"
    if a.times and b.times and a.times != b.times:
        return "time"
    if a.people and b.people and a.people != b.people:
        return "role"
    if opposites.negated_words(a.words - b.words, b.words) or opposites.negated_words(
        b.words - a.words, a.words
    ):
        return "negation"
    return order.disagreement(a.roles, b.roles)


def _has(word: str, words: frozenset[str]) -> bool:
    """The word, or its singular or plural ("Sunday" in "on Sundays")."""
    return word in words or word + "s" in words or (word.endswith("s") and word[:-1] in words)


def _differ_on_axis(a: frozenset, b: frozenset, axis: Callable[[Any], Any]) -> bool:
    """Both speak on one axis (a scale) and do not say the same things on it."""
    for name in {axis(x) for x in a} & {axis(x) for x in b}:
        if {x for x in a if axis(x) == name} != {x for x in b if axis(x) == name}:
            return True
    return False


def agrees(cached: str, new: str) -> bool:
    return disagreement(cached, new) is None


# -- the same words, typed differently ---------------------------------------------------


def _within_one_edit(x: str, y: str) -> bool:
    """One insertion, deletion, substitution or swap of neighbours turns x into y."""
    if abs(len(x) - len(y)) > 1:
        return False
    if len(x) == len(y):
        diff = [i for i in range(len(x)) if x[i] != y[i]]
        return len(diff) == 1 or (
            len(diff) == 2 and diff[1] == diff[0] + 1 and x[diff[0]] == y[diff[1]]
            and x[diff[1]] == y[diff[0]]
        )  # fmt: skip
    short, long = (x, y) if len(x) < len(y) else (y, x)
    i = 0
    while i < len(short) and short[i] == long[i]:
        i += 1
    return short[i:] == long[i + 1 :]


def _typo_of(x: str, y: str, known: frozenset[str]) -> bool:
    """x and y are one word typed two ways: one edit apart (two for long words), at
    least five letters long between them, and not two words the guard or the
    vocabulary knows ("export" and "expert" are two words)."""
    if max(len(x), len(y)) < 5 or (x in _SIDE_OF and y in _SIDE_OF):
        return False
    if x in known and y in known:
        return False
    if _within_one_edit(x, y):
        return True
    if min(len(x), len(y)) < 8:
        return False
    return any(_within_one_edit(x[:i] + x[i + 1 :], y) for i in range(len(x)))


def same_words(cached: str, new: str, known: frozenset[str] = frozenset()) -> bool:
    """The same content words in both, up to typos ("pasword", "dowload", "suprimer");
    `known`: correctly spelt words (two of them are not a typo of each other)."""
    a = specifics(cached).roles.written
    b = specifics(new).roles.written
    if len(a) != len(b) or not a:
        return False
    rest = list(b)
    for word in a:
        match = next((w for w in rest if order.stem(w) == order.stem(word)), None)
        if match is None:
            match = next((w for w in rest if _typo_of(word, w, known)), None)
        if match is None:
            return False
        rest.remove(match)
    return not rest
