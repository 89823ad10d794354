"""Opposites the guard derives from morphology and small lexicons (English and French).

Each model turns a question (its folded, canonical words) into what it says on one
axis; two questions that both speak on an axis must say the same thing there:

- scales: an adjective of a graded scale with its direction and degree. "cheapest" is
  (price, low, superlative); "the most expensive" (price, high, superlative); "le moins
  cher" (price, low, superlative). Degrees come from morphology (-er/-est, -ier/-iest,
  doubled consonants, more/most/less/least, plus/moins, le plus), so one lexicon line
  per scale covers every form.
- permission: allowed vs forbidden. Verbs are conjugated by rule: English (-s, -ed,
  -ing, doubled consonants) and French of every group (-er, -ir with -iss-, -re with
  its participle: permis, interdit, défendu, proscrit), plus the usual adjectives.
- relative time: yesterday/today/tomorrow, last/this/next week, hier/demain/après-demain,
  le mois dernier/prochain, ce matin/ce soir...: a set of (unit, offset) and times of day.
- people roles: family and other roles as a base relation with its prefixes
  (grand-, great-, step-, petit(e)-, arrière-, beau/belle-, -in-law): "grandmother"
  is not "mother", "petite-fille" is not "fille", "tenant" is not "landlord".
- negation prefixes: a word that is another word of the other question with un-, in-,
  im-, il-, ir-, dis-, non- (dé-, dés-, mal- in French) in front ("unavailable",
  "irréversible", "impayée").
"""

from __future__ import annotations

from collections.abc import Iterable


def _words(text: str) -> list[str]:
    return text.split()


# -- verbs ------------------------------------------------------------------------------

_VOWELS = "aeiou"


def en_verb(base: str, *, double: bool = False) -> set[str]:
    """An English verb's forms; `double` doubles the final consonant (ban -> banned)."""
    stem = base[:-1] if base.endswith("e") else base
    last = base + base[-1] if double else stem
    forms = {base, base + ("es" if base.endswith(("s", "sh", "ch", "x")) else "s")}
    if base.endswith("y") and base[-2:-1] not in _VOWELS:
        forms |= {base[:-1] + "ied", base[:-1] + "ies", base + "ing"}
    else:
        forms |= {last + "ed" if not base.endswith("e") else base + "d", last + "ing"}
    return forms


_FR_ER = _words("er e es ons ez ent ant ai a as ait aient erai eras era erons erez eront erait")
_FR_IR = _words("ir is it issons issez issent issant issait issaient irai ira iront irait")
_FR_RE_PARTICIPLE = (
    ("ettre", "is"),
    ("dire", "dit"),
    ("crire", "crit"),
    ("uire", "uit"),
    ("dre", "du"),
)
_FR_RE_STEM = (("dire", "dis"), ("crire", "criv"), ("ettre", "ett"), ("uire", "uis"), ("dre", "d"))


def _agree(participle: str) -> set[str]:
    """A participle with its feminine and plural forms (interdit, interdite, interdits...)."""
    base = participle
    forms = {base, base + "e", base + "es"}
    forms.add(base if base.endswith("s") else base + "s")
    return forms


def fr_verb(infinitive: str) -> set[str]:
    """A French verb's common forms, folded (no accents), by its group: -er (1st group),
    -ir with -iss- (2nd), -re (3rd: mettre, dire, écrire, -uire, -dre patterns)."""
    if infinitive.endswith("er"):
        stem = infinitive[:-2]
        return {stem + e for e in _FR_ER} | _agree(stem + "e")
    if infinitive.endswith("ir"):
        stem = infinitive[:-2]
        return {stem + e for e in _FR_IR} | _agree(stem + "i")
    if infinitive.endswith("re"):
        forms = {infinitive}
        for ending, participle in _FR_RE_PARTICIPLE:
            if infinitive.endswith(ending):
                forms |= _agree(infinitive[: -len(ending)] + participle)
                break
        # permettre -> permet(s), dire -> di(s/t), défendre -> défend(s)
        singular = infinitive[:-3] if infinitive.endswith("ttre") else infinitive[:-2]
        forms |= {singular + "s", singular if singular.endswith(("d", "t")) else singular + "t"}
        for ending, plural_stem in _FR_RE_STEM:
            if infinitive.endswith(ending):
                stem = infinitive[: -len(ending)] + plural_stem
                forms |= {stem + e for e in ("ons", "ez", "ent", "ant", "ait", "aient")}
                break
        forms |= {infinitive[:-1] + "a", infinitive[:-1] + "ont"}  # permettra, interdiront
        return forms
    return {infinitive}


# -- scales -----------------------------------------------------------------------------

LOW, HIGH = -1, 1
BASE, COMPARATIVE, SUPERLATIVE = 0, 1, 2

_EN_SCALES: tuple[tuple[str, str, str], ...] = (
    # (scale, low end, high end): a few synonyms per end, separated by "/".
    ("price", "cheap/inexpensive/affordable", "expensive/costly/pricey"),
    ("speed", "slow", "fast/quick/rapid/speedy"),
    ("size", "small/little/tiny", "big/large/huge"),
    ("length", "short/brief", "long/lengthy"),
    ("height", "low", "high/tall"),
    ("weight", "light", "heavy"),
    ("time", "early", "late"),
    ("age", "new/young/recent", "old/ancient"),
    ("distance", "near", "far/distant"),
    ("difficulty", "easy/simple", "hard/difficult/complicated"),
    ("quality", "bad/poor", "good"),
    ("strength", "weak", "strong"),
    ("temperature", "cold", "hot/warm"),
    ("width", "narrow/thin", "wide/broad/thick"),
    ("noise", "quiet", "loud/noisy"),
    ("safety", "risky/unsafe", "safe/secure"),
)
_EN_IRREGULAR = {
    "better": ("good", COMPARATIVE), "best": ("good", SUPERLATIVE),
    "worse": ("bad", COMPARATIVE), "worst": ("bad", SUPERLATIVE),
    "less": ("little", COMPARATIVE), "least": ("little", SUPERLATIVE),
    "farther": ("far", COMPARATIVE), "farthest": ("far", SUPERLATIVE),
    "further": ("far", COMPARATIVE), "furthest": ("far", SUPERLATIVE),
}  # fmt: skip
_FR_SCALES: tuple[tuple[str, str, str], ...] = (
    ("price", "abordable/economique", "cher/couteux/onereux"),
    ("speed", "lent", "rapide/vite"),
    ("size", "petit", "grand/gros/enorme"),
    ("length", "court/bref", "long"),
    ("height", "bas", "haut/eleve"),
    ("weight", "leger", "lourd"),
    ("time", "tot", "tard"),
    ("age", "nouveau/jeune/recent", "ancien/vieux"),
    ("distance", "proche", "loin/eloigne/lointain"),
    ("difficulty", "facile/simple", "difficile/complique/dur"),
    ("quality", "mauvais", "bon/meilleur"),
    ("strength", "faible", "fort/puissant"),
    ("temperature", "froid", "chaud"),
    ("width", "etroit/mince", "large/epais"),
    ("safety", "risque/dangereux", "securise"),
)
_FR_FEMININE = {
    "longue": "long", "basse": "bas", "grosse": "gros", "nouvelle": "nouveau",
    "nouvel": "nouveau", "vieille": "vieux", "vieil": "vieux", "legere": "leger",
    "chere": "cher", "bonne": "bon", "seche": "sec",
    "meilleure": "meilleur", "pire": "mauvais", "pires": "mauvais", "breve": "bref",
}  # fmt: skip


def _scale_index() -> dict[str, tuple[str, int]]:
    index: dict[str, tuple[str, int]] = {}
    for table in (_EN_SCALES, _FR_SCALES):
        for scale, low, high in table:
            for end, words in ((LOW, low), (HIGH, high)):
                for word in words.split("/"):
                    index.setdefault(word, (scale, end))
    return index


_SCALE_OF = _scale_index()
_MORE = {"more": COMPARATIVE, "most": SUPERLATIVE, "plus": COMPARATIVE}
_LESS = {"less": COMPARATIVE, "least": SUPERLATIVE, "fewer": COMPARATIVE, "moins": COMPARATIVE}
_FR_ARTICLES = frozenset({"le", "la", "les", "l"})
_AMOUNT = {
    "more": (HIGH, COMPARATIVE), "most": (HIGH, SUPERLATIVE), "plus": (HIGH, COMPARATIVE),
    "less": (LOW, COMPARATIVE), "least": (LOW, SUPERLATIVE), "fewer": (LOW, COMPARATIVE),
    "fewest": (LOW, SUPERLATIVE), "moins": (LOW, COMPARATIVE),
}  # fmt: skip


def _en_root(word: str) -> tuple[str, int] | None:
    """ "cheapest" -> ("cheap", superlative); "bigger" -> ("big", comparative)."""
    if word in _EN_IRREGULAR:
        return _EN_IRREGULAR[word]
    for suffix, degree in (("est", SUPERLATIVE), ("er", COMPARATIVE)):
        if not word.endswith(suffix) or len(word) <= len(suffix) + 2:
            continue
        stem = word[: -len(suffix)]
        candidates = [stem, stem + "e"]
        if stem.endswith("i"):
            candidates.append(stem[:-1] + "y")
        if len(stem) > 2 and stem[-1] == stem[-2]:
            candidates.append(stem[:-1])  # bigger, thinner
        for candidate in candidates:
            if candidate in _SCALE_OF:
                return candidate, degree
    return None


def _fr_root(word: str) -> str | None:
    if word in _FR_FEMININE:
        return _FR_FEMININE[word]
    for candidate in (word, word[:-1], word[:-2], word[:-1] + "x" if word.endswith("s") else ""):
        if candidate in _SCALE_OF:
            return candidate
        if candidate.endswith("e") and candidate[:-1] in _SCALE_OF:
            return candidate[:-1]  # lente, petite, grande
    return None


def scales(words: list[str]) -> frozenset[tuple[str, int, int]]:
    """(scale, direction, degree) of every graded adjective: "the cheapest" is
    (price, LOW, SUPERLATIVE), "le plus cher" (price, HIGH, SUPERLATIVE)."""
    found: set[tuple[str, int, int]] = set()
    for i, word in enumerate(words):
        root: str | None
        degree = BASE
        en = _en_root(word)
        if en is not None:
            root, degree = en
        elif word in _SCALE_OF:
            root = word
        else:
            root = _fr_root(word) if len(word) > 2 else None
        if (root is None or root == "little") and word in _AMOUNT:
            # "the most storage", "le moins de frais": an amount, not an adjective
            following = words[i + 1] if i + 1 < len(words) else ""
            if following not in _SCALE_OF and _en_root(following) is None:
                direction, degree = _AMOUNT[word]
                if word in ("plus", "moins"):
                    if following not in ("de", "d"):
                        continue
                    if i > 0 and words[i - 1] in _FR_ARTICLES:
                        degree = SUPERLATIVE
                found.add(("amount", direction, degree))
            continue
        if root is None or (root == "little" and degree != BASE):
            continue
        scale, direction = _SCALE_OF[root]
        before = words[max(0, i - 2) : i]
        if before and (before[-1] in _MORE or before[-1] in _LESS):
            modifier = before[-1]
            degree = _MORE.get(modifier, _LESS.get(modifier, BASE))
            if modifier in _LESS:
                direction = -direction
            if modifier in ("plus", "moins") and len(before) == 2 and before[0] in _FR_ARTICLES:
                degree = SUPERLATIVE
        elif word.startswith(("meilleur", "pire")):
            degree = SUPERLATIVE if before and before[-1] in _FR_ARTICLES else COMPARATIVE
        found.add((scale, direction, degree))
    return frozenset(found)


# -- permission -------------------------------------------------------------------------


def _forms(en: Iterable[str] = (), en_double: Iterable[str] = (), fr: Iterable[str] = (),
           words: str = "") -> frozenset[str]:  # fmt: skip
    found: set[str] = set(words.split())
    for verb in en:
        found |= en_verb(verb)
    for verb in en_double:
        found |= en_verb(verb, double=True)
    for verb in fr:
        found |= fr_verb(verb)
    return frozenset(found)


ALLOWED = _forms(
    en=("allow", "authorize", "authorise", "entitle"),
    en_double=("permit",),
    fr=("autoriser", "permettre"),
    words="permissible allowable legal licit droit permission",
)
FORBIDDEN = _forms(
    en=("forbid", "prohibit", "disallow", "outlaw"),
    en_double=("ban", "bar"),
    fr=("interdire", "defendre", "bannir", "proscrire", "prohiber"),
    words="forbade forbidden illegal illicit interdiction prohibition",
)


# -- relative days and times ------------------------------------------------------------

_DAY_OFFSET = {
    "yesterday": -1, "today": 0, "tonight": 0, "tomorrow": 1,
    "hier": -1, "avanthier": -2, "aujourd'hui": 0, "demain": 1, "apresdemain": 2,
}  # fmt: skip
_TIME_OF_DAY = {
    "morning": "morning", "afternoon": "afternoon", "evening": "evening", "night": "night",
    "tonight": "evening", "noon": "noon", "midnight": "midnight",
    "matin": "morning", "matinee": "morning", "apresmidi": "afternoon", "soir": "evening",
    "soiree": "evening", "nuit": "night", "midi": "noon", "minuit": "midnight",
}  # fmt: skip
_UNITS = {
    "day": "day", "days": "day", "week": "week", "weekend": "weekend", "month": "month",
    "year": "year", "quarter": "quarter", "jour": "day", "semaine": "week", "mois": "month",
    "annee": "year", "an": "year", "trimestre": "quarter",
}  # fmt: skip
_BEFORE_UNIT = {
    "last": -1, "past": -1, "previous": -1, "this": 0, "current": 0, "next": 1,
    "coming": 1, "upcoming": 1, "ce": 0, "cet": 0, "cette": 0,
}  # fmt: skip
_AFTER_UNIT = {
    "dernier": -1, "derniere": -1, "passe": -1, "passee": -1, "precedent": -1,
    "precedente": -1, "prochain": 1, "prochaine": 1, "suivant": 1, "suivante": 1,
    "courant": 0, "courante": 0,
}  # fmt: skip


def relative_time(words: list[str]) -> frozenset[tuple[str, object]]:
    """("day", -1) for yesterday, ("week", 1) for next week, ("part", "evening") for
    tonight or ce soir."""
    found: set[tuple[str, object]] = set()
    for i, word in enumerate(words):
        if word in _DAY_OFFSET:
            offset = _DAY_OFFSET[word]
            # "the day after tomorrow", "the day before yesterday"
            if i >= 2 and words[i - 2] == "day" and words[i - 1] in ("after", "before"):
                offset += 1 if words[i - 1] == "after" else -1
            found.add(("day", offset))
        if word in _TIME_OF_DAY:
            found.add(("part", _TIME_OF_DAY[word]))
            if i > 0 and words[i - 1] in ("this", "ce", "cet", "cette"):
                found.add(("day", 0))
        unit = _UNITS.get(word)
        if unit is None:
            continue
        if i > 0 and words[i - 1] in _BEFORE_UNIT:
            found.add((unit, _BEFORE_UNIT[words[i - 1]]))
        elif i + 1 < len(words) and words[i + 1] in _AFTER_UNIT:
            found.add((unit, _AFTER_UNIT[words[i + 1]]))
    return frozenset(found)


# -- people roles -----------------------------------------------------------------------

_ROLES = {
    # base role: its words, English and French, singular (plurals by rule).
    "mother": "mother mom mum mommy mummy mama maman mere",
    "father": "father dad daddy papa pere",
    "parent": "parent",
    "son": "son fils",
    "daughter": "daughter fille",
    "child": "child children kid enfant",
    "brother": "brother frere",
    "sister": "sister soeur sœur",
    "sibling": "sibling",
    "husband": "husband mari epoux",
    "wife": "wife femme epouse",
    "spouse": "spouse conjoint conjointe",
    "partner": "partner partenaire compagnon compagne",
    "aunt": "aunt tante",
    "uncle": "uncle oncle",
    "niece": "niece",
    "nephew": "nephew neveu",
    "cousin": "cousin cousine",
    "boyfriend": "boyfriend copain",
    "girlfriend": "girlfriend copine",
    "employer": "employer boss patron employeur",
    "employee": "employee worker staff employe employee salarie salariee",
    "manager": "manager supervisor responsable",
    "landlord": "landlord landlady bailleur proprietaire owner",
    "tenant": "tenant renter locataire",
    "buyer": "buyer purchaser acheteur acheteuse",
    "seller": "seller vendor merchant vendeur vendeuse marchand",
    "sender": "sender expediteur expeditrice",
    "recipient": "recipient receiver destinataire beneficiary beneficiaire payee",
    "doctor": "doctor physician medecin docteur",
    "patient": "patient",
    "teacher": "teacher professeur prof enseignant enseignante",
    "adult": "adult adulte",
    "student": "student pupil eleve etudiant etudiante",
    "customer": "customer client cliente",
    "guest": "guest invite invitee",
    "host": "host hote",
}
_ROLE_OF = {word: role for role, words in _ROLES.items() for word in words.split()}
_ROLE_PREFIXES = ("great", "grand", "step", "half", "arriere", "petite", "petit", "beau",
                  "belle", "demi")  # fmt: skip


def _role(word: str) -> str | None:
    prefixes: list[str] = []
    rest = word
    while True:
        for prefix in _ROLE_PREFIXES:
            if rest.startswith(prefix) and len(rest) > len(prefix) + 2:
                prefixes.append("petit" if prefix == "petite" else prefix)
                rest = rest[len(prefix) :]
                break
        else:
            break
    suffix = ""
    if rest.endswith("inlaw"):
        rest, suffix = rest[: -len("inlaw")], "-in-law"
    for candidate in (rest, rest[:-1] if rest.endswith(("s", "x")) else ""):
        role = _ROLE_OF.get(candidate)
        if role is not None:
            return "-".join([*prefixes, role]) + suffix
    return None


def people(words: list[str]) -> frozenset[str]:
    """The roles named: "grandmother" -> grand-mother, "petite-fille" -> petit-daughter."""
    found = set()
    for i, word in enumerate(words):
        role = _role(word)
        if role is None:
            continue
        if i + 2 < len(words) and words[i + 1] == "in" and words[i + 2] == "law":
            role += "-in-law"
        found.add(role)
    return frozenset(found)


# -- negation prefixes ------------------------------------------------------------------

_NEGATION_PREFIXES = ("non", "un", "in", "im", "il", "ir", "dis", "des", "de", "mal", "a")
_NOT_NEGATIONS = frozenset(
    _words(
        "include install instal insure invoice inform information index insert into intend "
        "interest internal import important impact improve input inbox income increase "
        "issue display discount discuss dispute describe deliver delete demand depend deposit "
        "detail design desire destination device devise demander depuis definir decider "
        "unit unique union universal"
    )
)


def negated_words(mine: Iterable[str], theirs: frozenset[str]) -> bool:
    """Does one of my words negate one of theirs by a prefix ("unavailable" vs
    "available", "irreversible" vs "reversible", "impayee" vs "payee")?"""
    for word in mine:
        if word in theirs or word in _NOT_NEGATIONS:
            continue
        for prefix in _NEGATION_PREFIXES:
            base = word[len(prefix) :]
            if word.startswith(prefix) and len(base) >= 4 and base in theirs:
                return True
            # "irreversible": ir + reversible; "illisible": il + lisible (doubled letter).
    return False
