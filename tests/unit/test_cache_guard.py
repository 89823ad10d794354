"""The cache guard, one table per kind of difference (English and French): each case is
a cached question, a new one and whether the cached answer may serve it
(extproc.cache.guard; the rates on whole pair sets are bench/cache_pairs.py's)."""

from __future__ import annotations

import pytest

from extproc.cache.guard import disagreement, same_words
from extproc.cache.opposites import fr_verb
from extproc.cache.wording import canonical

SAME, OTHER = True, False

DIRECTION = [
    # the objects around from/to, into, vs, than, before/after must keep their roles
    ("How do I convert GBP to JPY?", "How do I convert JPY to GBP?", OTHER),
    ("Send 50 euros from my wallet to my bank", "Send 50 euros from my bank to my wallet", OTHER),
    ("How do I migrate from MySQL to Postgres?", "How do I migrate from Postgres to MySQL?", OTHER),
    ("Can I copy files from the laptop into the cloud?",
     "Can I copy files from the cloud into the laptop?", OTHER),
    ("Is fibre faster than 5G?", "Is 5G faster than fibre?", OTHER),
    ("Arsenal vs Chelsea tickets", "Chelsea vs Arsenal tickets", OTHER),
    ("Do I sign the lease before the inspection?", "Do I sign the inspection before the lease?",
     OTHER),
    ("Can my bank charge me a fee?", "Can I charge my bank a fee?", OTHER),
    ("Does the seller refund the buyer?", "Does the buyer refund the seller?", OTHER),
    ("Comment convertir des yens en euros ?", "Comment convertir des euros en yens ?", OTHER),
    ("Comment transférer mes contacts d'Android vers l'iPhone ?",
     "Comment transférer mes contacts de l'iPhone vers Android ?", OTHER),
    ("Comment passer du forfait mensuel au forfait annuel ?",
     "Comment passer du forfait annuel au forfait mensuel ?", OTHER),
    ("Mon fils peut-il payer mon loyer ?", "Mon loyer peut-il payer mon fils ?", OTHER),
    ("Can I transfer my points to my wife?", "Can my wife transfer her points to me?", OTHER),
    ("¿Cómo cambio dólares a pesos?", "¿Cómo cambio pesos a dólares?", OTHER),
    # what keeps the question: the same roles, a neutral reordering
    ("How do I convert USD to EUR?", "How can I convert USD to EUR?", SAME),
    ("Do you deliver to Spain and Italy?", "Do you deliver to Italy and Spain?", SAME),
    ("Can I pay with cash or card?", "Can I pay with card or cash?", SAME),
    ("What payment methods do you take?", "What methods of payment do you take?", SAME),
    ("On Android, how do I clear the cache?", "How do I clear the cache on Android?", SAME),
    ("Can I send money to my brother?", "Can I send my brother money?", SAME),
    ("Livrez-vous en Suisse et en Belgique ?", "Livrez-vous en Belgique et en Suisse ?", SAME),
    ("Comment convertir des euros en dollars ?", "Comment convertir des euros en dollars ?", SAME),
]  # fmt: skip

COMPARATIVE = [
    ("Which laptop is the lightest?", "Which laptop is the heaviest?", OTHER),
    ("Which plan is cheaper?", "Which plan is more expensive?", OTHER),
    ("Which route is the shortest?", "Which route is the longest?", OTHER),
    ("Is the new version better?", "Is the new version worse?", OTHER),
    ("Which flight is the earliest?", "Which flight is the latest?", OTHER),
    ("Which bundle has the most data?", "Which bundle has the least data?", OTHER),
    ("Is the bigger box cheaper?", "Is the smaller box cheaper?", OTHER),
    ("Quel est le vol le moins cher ?", "Quel est le vol le plus cher ?", OTHER),
    ("Quel ordinateur est le plus léger ?", "Quel ordinateur est le plus lourd ?", OTHER),
    ("Quelle est la meilleure offre ?", "Quelle est la pire offre ?", OTHER),
    ("Quel trajet est le plus court ?", "Quel trajet est le plus long ?", OTHER),
    ("Quelle connexion est la plus lente ?", "Quelle connexion est la plus rapide ?", OTHER),
    ("Which plan is the cheapest?", "Which plan is cheapest?", SAME),
    ("Quel est le forfait le moins cher ?", "Quel forfait est le moins cher ?", SAME),
]

PERMISSION = [
    ("Is it allowed to park here?", "Is it forbidden to park here?", OTHER),
    ("Are dogs permitted on the bus?", "Are dogs prohibited on the bus?", OTHER),
    ("Does the policy allow refunds?", "Does the policy ban refunds?", OTHER),
    # French, every group: -er (autoriser), -ir (bannir), -re (interdire, permettre,
    # défendre, proscrire)
    ("La loi autorise-t-elle la chasse ?", "La loi interdit-elle la chasse ?", OTHER),
    ("Le club autorise les chiens ?", "Le club bannit les chiens ?", OTHER),
    ("Nous permettez-vous de filmer ?", "Nous interdisez-vous de filmer ?", OTHER),
    ("Les écouteurs sont-ils permis ?", "Les écouteurs sont-ils défendus ?", OTHER),
    ("Le règlement permet-il les visites ?", "Le règlement proscrit-il les visites ?", OTHER),
    ("Les parents autorisent-ils les sorties ?", "Les parents interdisent-ils les sorties ?",
     OTHER),
    ("Ai-je le droit de revendre mon billet ?", "Est-il interdit de revendre mon billet ?",
     OTHER),
    ("Is it allowed to park here?", "Am I allowed to park here?", SAME),
    ("Est-il interdit de fumer ici ?", "Est-ce interdit de fumer ici ?", SAME),
]  # fmt: skip

RELATIVE_TIME = [
    ("Is the shop open today?", "Is the shop open tomorrow?", OTHER),
    ("What did I spend last month?", "What did I spend this month?", OTHER),
    ("Can I book for next week?", "Can I book for next month?", OTHER),
    ("Is there a train tonight?", "Is there a train this morning?", OTHER),
    ("Will it come the day after tomorrow?", "Will it come tomorrow?", OTHER),
    ("Was I billed yesterday?", "Was I billed the day before?", SAME),  # no relative day
    ("Le magasin est-il ouvert demain ?", "Le magasin est-il ouvert après-demain ?", OTHER),
    ("Mes dépenses de la semaine dernière ?", "Mes dépenses de la semaine prochaine ?", OTHER),
    ("Y a-t-il un train ce soir ?", "Y a-t-il un train cet après-midi ?", OTHER),
    ("Ai-je été débité hier ?", "Ai-je été débité aujourd'hui ?", OTHER),
    ("Is the shop open today?", "Is the store open today?", SAME),
]

PEOPLE = [
    ("Can my aunt use my account?", "Can my uncle use my account?", OTHER),
    ("Can I add my grandson?", "Can I add my son?", OTHER),
    ("Can my stepfather sign?", "Can my father sign?", OTHER),
    ("Does the tenant pay the water bill?", "Does the landlord pay the water bill?", OTHER),
    ("Can the patient see the file?", "Can the doctor see the file?", OTHER),
    ("Does my mother-in-law need an account?", "Does my mother need an account?", OTHER),
    ("Ma grand-mère peut-elle ouvrir un compte ?", "Ma mère peut-elle ouvrir un compte ?", OTHER),
    ("Mon neveu peut-il voyager seul ?", "Ma nièce peut-elle voyager seule ?", OTHER),
    ("Le vendeur paie-t-il la livraison ?", "L'acheteur paie-t-il la livraison ?", OTHER),
    ("Mon employeur voit-il mes congés ?", "Mon salarié voit-il mes congés ?", OTHER),
    ("Can my mom use my card?", "Can my mother use my card?", SAME),
    ("Ma maman peut-elle utiliser ma carte ?", "Ma mère peut-elle utiliser ma carte ?", SAME),
]

NEGATION_PREFIX = [
    ("Why is the item available?", "Why is the item unavailable?", OTHER),
    ("Is the change reversible?", "Is the change irreversible?", OTHER),
    ("Is the deposit refundable?", "Is the deposit non-refundable?", OTHER),
    ("Why is my email verified?", "Why is my email unverified?", OTHER),
    ("Why does it say legal?", "Why does it say illegal?", OTHER),
    ("Why is the network connected?", "Why is the network disconnected?", OTHER),
    ("Pourquoi l'article est-il disponible ?", "Pourquoi l'article est-il indisponible ?", OTHER),
    ("Pourquoi ma facture est-elle payée ?", "Pourquoi ma facture est-elle impayée ?", OTHER),
    ("Le compte est-il actif ?", "Le compte est-il inactif ?", OTHER),
    ("Ce code est-il lisible ?", "Ce code est-il illisible ?", OTHER),
    ("How do I install the printer?", "How can I install the printer?", SAME),
    ("Where is my invoice?", "Where can I find my invoice?", SAME),
]

OTHER_OPPOSITES = [
    ("Why is my balance negative?", "Why is my balance positive?", OTHER),
    ("Can I pay with a credit card?", "Can I pay with a debit card?", OTHER),
    ("Is the app free?", "Is the app paid?", OTHER),
    ("Is this a major update?", "Is this a minor update?", OTHER),
    ("Le solde est-il négatif ?", "Le solde est-il positif ?", OTHER),
    ("L'application est-elle gratuite ?", "L'application est-elle payante ?", OTHER),
    ("Les frais à l'étranger ?", "Les frais nationaux ?", OTHER),
    ("Can I cancel within 24 hours?", "Can I cancel after 24 hours?", OTHER),
    ("Why was I charged twice?", "Why was I charged once?", OTHER),
    (
        "Dois-je changer mon mot de passe avant la mise à jour ?",
        "Faut-il changer mon mot de passe avant la mise à jour ?",
        SAME,
    ),
    ("Is the app free?", "Is the application free?", SAME),
    ("L'application est-elle gratuite ?", "L'appli est-elle gratuite ?", SAME),
]

NORMALISED = [
    # digits and number words
    ("Can I add 4 users?", "Can I add four users?", SAME),
    ("Is the trial 21 days?", "Is the trial twenty-one days?", SAME),
    ("Puis-je inviter 15 personnes ?", "Puis-je inviter quinze personnes ?", SAME),
    ("Le colis pèse-t-il 90 kg ?", "Le colis pèse-t-il quatre-vingt-dix kg ?", SAME),
    ("Can I add 4 users?", "Can I add fourteen users?", OTHER),
    ("Puis-je inviter trois personnes ?", "Puis-je inviter treize personnes ?", OTHER),
    ("Does it cost 50 cents?", "Does it cost fifty cents?", SAME),
    ("Does it cost 50 cents?", "Does it cost 5 cents?", OTHER),
    ("Le billet coûte-t-il deux cents euros ?", "Le billet coûte-t-il 200 euros ?", SAME),
    ("Are you open on Sunday?", "Are you open on Sundays?", SAME),  # a name in the plural
    ("Are you open on Sunday?", "Are you open on Saturdays?", OTHER),
    # ordinals
    ("What is the 3rd step?", "What is the third step?", SAME),
    ("Quelle est la troisième étape ?", "Quelle est la 3e étape ?", SAME),
    ("What is the second step?", "What is the third step?", OTHER),
    ("Where is the 1st invoice?", "Where is the last invoice?", OTHER),
    # hyphenation and compounds
    ("How do I change my e-mail?", "How do I change my email?", SAME),
    ("How do I sign up?", "How do I signup?", SAME),
    ("Is there a set-up fee?", "Is there a setup fee?", SAME),
    ("Comment configurer le wi-fi ?", "Comment configurer le wifi ?", SAME),
    # support abbreviations
    ("How do I turn on 2FA?", "How do I turn on two-factor authentication?", SAME),
    ("Where is my acct number?", "Where is my account number?", SAME),
    ("I forgot my pwd", "I forgot my password", SAME),
    ("Comment activer la double authentification ?", "Comment activer la 2FA ?", SAME),
    ("Quel est mon n° de contrat ?", "Quel est mon numéro de contrat ?", SAME),
    # negation said two ways
    ("Why am I unable to pay?", "Why can't I pay?", SAME),
    ("Je n'arrive pas à payer", "Je ne peux pas payer", SAME),
    ("I can't pay", "I can pay", OTHER),
]

POLITENESS = [
    ("Hi, could you tell me how to reset my PIN?", "How to reset my PIN?"),
    ("Hello there! Where is my parcel? Thanks!", "Where is my parcel?"),
    ("Hey, I was wondering: can I pause my plan? Many thanks", "can I pause my plan?"),
    ("Please, how do I close my account?", "how do I close my account?"),
    ("Bonjour, pourriez-vous me dire où est mon colis ? Merci d'avance", "où est mon colis ?"),
    ("Salut ! Comment payer en ligne s'il vous plaît ?", "comment payer en ligne ?"),
    ("Bonsoir, je voudrais savoir comment annuler. Cordialement", "comment annuler"),
]

MISSPELT_OPPOSITES = [
    # a word one typo away from a word of an antonym group counts as that word
    ("How do I turn on dark mode?", "How do I trun off dark mode?", OTHER),
    ("How do I enable backups?", "How do I disabel backups?", OTHER),
    ("How do I upload my invoice?", "How do I donwload my invoice?", OTHER),
    ("Comment activer le mode sombre ?", "Comment désactvier le mode sombre ?", OTHER),
    ("Comment verrouiller mon compte ?", "Comment déverouiller mon compte ?", OTHER),
    ("How do I enable backups?", "How do I enabel backups?", SAME),
    ("Comment activer le mode sombre ?", "Comment actvier le mode sombre ?", SAME),
]

TYPOS = [
    ("How do I reset my password?", "How do I resett my pasword?", SAME),
    ("Where is my receipt?", "Where is my reciept?", SAME),
    ("How do I unsubscribe?", "How do I unsubscibe?", SAME),
    ("Comment télécharger ma facture ?", "Comment télécharger ma factrue ?", SAME),
    ("Where is my parcel?", "Where is my parcels tracking?", OTHER),  # another word, not a typo
    ("How do I lock my card?", "How do I unlock my card?", OTHER),  # two known words
]


def _decide(table: list[tuple[str, str, bool]]) -> list[tuple[str, str, bool]]:
    """The cases whose decision differs from the expected one, either way round."""
    return [
        (a, b, expected)
        for a, b, expected in table
        if (disagreement(a, b) is None) != expected or (disagreement(b, a) is None) != expected
    ]


@pytest.mark.parametrize(
    "table",
    [DIRECTION, COMPARATIVE, PERMISSION, RELATIVE_TIME, PEOPLE, NEGATION_PREFIX, NORMALISED,
     MISSPELT_OPPOSITES, OTHER_OPPOSITES],
    ids=["direction", "comparative", "permission", "relative_time", "people",
         "negation_prefix", "normalised", "misspelt_opposites", "other_opposites"],
)  # fmt: skip
def test_each_table_decides_every_case(table: list[tuple[str, str, bool]]) -> None:
    assert _decide(table) == []


def test_every_table_has_english_and_french_cases_of_both_kinds() -> None:
    for table in (DIRECTION, COMPARATIVE, PERMISSION, RELATIVE_TIME, PEOPLE, NEGATION_PREFIX):
        french = [case for case in table if " ?" in case[0]]
        english = [case for case in table if " ?" not in case[0]]
        assert french and english
        assert {expected for _, _, expected in table} == {SAME, OTHER}


def test_the_direction_reason_names_what_changed() -> None:
    assert disagreement("Convert USD to EUR", "Convert EUR to USD") == "direction"
    assert disagreement("Can my bank charge me?", "Can I charge my bank?") == "order"
    assert disagreement("Which is the cheapest?", "Which is the most expensive?") in (
        "comparative",
        "antonym",
    )
    assert disagreement("Open tomorrow?", "Open today?") == "time"
    assert disagreement("Can my aunt sign?", "Can my uncle sign?") == "role"
    assert disagreement("Is it reversible?", "Is it irreversible?") == "negation"


@pytest.mark.parametrize(("wrapped", "bare"), POLITENESS)
def test_politeness_and_greetings_are_not_part_of_the_question(wrapped: str, bare: str) -> None:
    assert canonical(wrapped) == canonical(bare)


@pytest.mark.parametrize(("cached", "new", "expected"), TYPOS)
def test_typos_leave_the_same_words(cached: str, new: str, expected: bool) -> None:
    assert same_words(cached, new) == expected
    assert same_words(new, cached) == expected


def test_two_correctly_spelt_words_are_not_a_typo() -> None:
    # The cache passes the encoder vocabulary's words (tests/classifier/test_cache_rates.py).
    spelt = frozenset({"export", "expert", "sister", "sitter"})
    assert same_words("How do I export my data?", "How do I expert my data?")
    assert not same_words("How do I export my data?", "How do I expert my data?", spelt)
    assert not same_words("Can my sister collect it?", "Can my sitter collect it?", spelt)
    assert same_words("Can my sister collect it?", "Can my sistr collect it?", spelt)


def test_french_verbs_of_every_group_are_conjugated() -> None:
    assert {"autorise", "autorisons", "autorisee", "autorisent"} <= fr_verb("autoriser")
    assert {"bannit", "bannissons", "bannie", "bannissent"} <= fr_verb("bannir")
    assert {"interdit", "interdisons", "interdisez", "interdite"} <= fr_verb("interdire")
    assert {"permet", "permettons", "permis", "permise"} <= fr_verb("permettre")
    assert {"defend", "defendons", "defendu", "defendues"} <= fr_verb("defendre")
    assert {"proscrit", "proscrivons", "proscrite"} <= fr_verb("proscrire")
