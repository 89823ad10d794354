"""A fixed, topic-neutral reference corpus: the origin that embeddings are centred on.

all-MiniLM-L6-v2 puts every sentence of one language, and every chat-style request, in a
narrow cone: French prompts all share a strong "French" direction, English questions a
"question" direction. The rule subtracts a per-language mean before comparing prompts with
examples (``classifier.scoring.Centering``). That mean used to be the mean of the configured
examples, so a label's scores moved whenever another label was added or removed, and with
one or two labels the "mean" was the topic itself. It is now the mean of these sentences:
the same for every label set.

What the sentences are: prompts a chat assistant gets, in both languages, spread over many
everyday subjects (no subject twice), in the usual shapes (questions, commands, first-person
statements, short and long), so that their mean keeps the language and "this is a request"
directions and averages the subjects out. They were written for this purpose; none is an
evaluation prompt. Editing them changes every score, so re-run the dev/eval numbers
(docs/CLASSIFIER.md) after any change.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifier.encoder import Encoder
from classifier.scoring import Centering
from classifier.text import ENGLISH, FRENCH

NEUTRAL_ENGLISH: tuple[str, ...] = (
    "What is the tallest waterfall in South America?",
    "Can you suggest a name for a small bakery?",
    "How do glaciers move down a valley?",
    "Summarise the main ideas of this paragraph for me.",
    "I'm looking for a board game that works with six players.",
    "Why do leaves change colour in the autumn?",
    "Write a thank-you note to my neighbour for watering my plants.",
    "What was daily life like for a Roman soldier?",
    "Why does a curling stone curve on the ice?",
    "Which birds migrate the longest distance?",
    "Help me plan a picnic for ten people in the park.",
    "How are stained glass windows made?",
    "Can you translate this sentence into German?",
    "How should I prepare for a job interview tomorrow?",
    "What do axolotls eat in the wild?",
    "I need ideas for a science fair project about magnets.",
    "Who invented the printing press?",
    "What should I pack for a weekend of camping in the mountains?",
    "Write a riddle whose answer is a lighthouse.",
    "How do I remove a coffee stain from a wool carpet?",
    "Why is the Dead Sea so salty?",
    "Recommend an audiobook for a long train journey.",
    "What are the rules for a polite email to a teacher?",
    "How long does an ice hockey match last?",
    "Describe a sunset over the ocean in three sentences.",
    "How do I get better at drawing hands?",
    "Can you explain how a rainbow forms?",
    "My houseplant's leaves are turning yellow, what am I doing wrong?",
    "Which languages are spoken in Switzerland?",
    "Suggest a theme for our office's end-of-year party.",
    "How does a hot air balloon stay up?",
    "What is the plot of the opera Carmen?",
    "I want to learn photography, where should I start?",
    "How long does it take to walk across the Golden Gate Bridge?",
    "Write a short bedtime story about a brave mouse.",
    "What do the colours of the Olympic rings mean?",
    "How can I make my small bedroom look bigger?",
    "Please proofread my cover letter and fix the grammar.",
    "How deep is Lake Baikal?",
    "Why do cats purr?",
    "Suggest some hobbies I can do with my grandparents.",
    "How do I keep my bike chain from rusting?",
    "What happened at the first moon landing?",
    "Hello! Can you help me with something?",
    "Compare electric cars and hybrid cars for a long commute.",
    "What are the stages of a butterfly's life?",
    "I feel bored at home this evening, any ideas?",
    "Make a packing list for a beach holiday with kids.",
)

NEUTRAL_FRENCH: tuple[str, ...] = (
    "Quelle est la plus haute cascade d'Amérique du Sud ?",
    "Peux-tu me proposer un nom pour une petite boulangerie ?",
    "Comment un glacier descend-il dans une vallée ?",
    "Résume-moi les idées principales de ce paragraphe.",
    "Je cherche un jeu de société pour six joueurs.",
    "Pourquoi les feuilles changent-elles de couleur en automne ?",
    "Écris un mot de remerciement pour ma voisine qui a arrosé mes plantes.",
    "Comment vivait un soldat romain au quotidien ?",
    "Pourquoi une pierre de curling dévie-t-elle sur la glace ?",
    "Quels oiseaux migrent le plus loin ?",
    "Aide-moi à organiser un pique-nique pour dix personnes.",
    "Comment fabrique-t-on un vitrail ?",
    "Peux-tu traduire cette phrase en allemand ?",
    "Comment me préparer pour un entretien d'embauche demain ?",
    "Que mangent les axolotls dans la nature ?",
    "J'ai besoin d'idées pour un exposé sur les aimants.",
    "Qui a inventé l'imprimerie ?",
    "Que dois-je emporter pour un week-end de camping en montagne ?",
    "Écris une devinette dont la réponse est un phare.",
    "Comment enlever une tache de café sur un tapis en laine ?",
    "Pourquoi la mer Morte est-elle si salée ?",
    "Conseille-moi un livre audio pour un long voyage en train.",
    "Comment écrire un mail poli à un professeur ?",
    "Combien de temps dure un match de hockey sur glace ?",
    "Décris un coucher de soleil sur la mer en trois phrases.",
    "Comment progresser pour dessiner des mains ?",
    "Comment se forme un arc-en-ciel ?",
    "Les feuilles de ma plante verte jaunissent, qu'est-ce que je fais mal ?",
    "Quelles langues parle-t-on en Suisse ?",
    "Propose un thème pour la fête de fin d'année du bureau.",
    "Comment une montgolfière reste-t-elle en l'air ?",
    "Quelle est l'histoire de l'opéra Carmen ?",
    "Je veux apprendre la photographie, par où commencer ?",
    "Combien de temps faut-il pour traverser Paris à vélo ?",
    "Écris une histoire courte pour endormir un enfant, avec une souris courageuse.",
    "Que représentent les couleurs des anneaux olympiques ?",
    "Comment faire paraître ma petite chambre plus grande ?",
    "Peux-tu relire ma lettre de motivation et corriger les fautes ?",
    "Quelle est la profondeur du lac Baïkal ?",
    "Pourquoi les chats ronronnent-ils ?",
    "Propose-moi des activités à faire avec mes grands-parents.",
    "Comment empêcher la chaîne de mon vélo de rouiller ?",
    "Que s'est-il passé lors du premier pas sur la Lune ?",
    "Bonjour ! Tu peux m'aider à quelque chose ?",
    "Compare les voitures électriques et hybrides pour de longs trajets.",
    "Quelles sont les étapes de la vie d'un papillon ?",
    "Je m'ennuie ce soir à la maison, des idées ?",
    "Fais-moi une liste de choses à emporter pour des vacances à la plage avec les enfants.",
)

NEUTRAL: dict[str, tuple[str, ...]] = {ENGLISH: NEUTRAL_ENGLISH, FRENCH: NEUTRAL_FRENCH}


def _fingerprint(encoder: Encoder) -> tuple[object, ...] | None:
    """What the corpus's embeddings depend on: the model file and the encoder's settings."""
    path = getattr(encoder, "model_path", None)
    if path is None:
        return None
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    return (
        str(Path(path).resolve()),
        stat.st_size,
        stat.st_mtime_ns,
        getattr(encoder, "max_tokens", None),
        getattr(encoder, "batch_size", None),
    )


@dataclass(frozen=True)
class NeutralReference:
    """The corpus embedded by one model: the centring, and the raw embeddings that the
    threshold calibration scores as far out-of-scope prompts."""

    centering: Centering
    embeddings: np.ndarray
    languages: tuple[str, ...]


# Reloading the config builds a new Encoder on the same model file: the corpus is embedded
# once per model file and settings, not once per reload. Bounded: one entry per model file.
_CACHE: dict[tuple[object, ...], NeutralReference] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_MAX = 8


def neutral_reference(encoder: Encoder) -> NeutralReference:
    key = _fingerprint(encoder)
    if key is not None:
        with _CACHE_LOCK:
            cached = _CACHE.get(key)
        if cached is not None:
            return cached
    texts = [text for sentences in NEUTRAL.values() for text in sentences]
    langs = tuple(lang for lang, sentences in NEUTRAL.items() for _ in sentences)
    embeddings = encoder.encode(texts)
    reference = NeutralReference(Centering.fit(embeddings, langs), embeddings, langs)
    if key is not None:
        with _CACHE_LOCK:
            if len(_CACHE) >= _CACHE_MAX:
                _CACHE.clear()
            _CACHE[key] = reference
    return reference


def neutral_centering(encoder: Encoder) -> Centering:
    return neutral_reference(encoder).centering
