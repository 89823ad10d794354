"""A fixed, topic-neutral reference corpus: the origin that embeddings are centred on.

all-MiniLM-L6-v2 puts every sentence of one language, and every chat-style request, in a
narrow cone: French prompts all share a strong "French" direction, English questions a
"question" direction. The rule subtracts a per-language mean before comparing prompts with
examples (``classifier.scoring.Centering``). That mean used to be the mean of the configured
examples, so a label's scores moved whenever another label was added or removed, and with
one or two labels the "mean" was the topic itself. It is now the mean of these sentences:
the same for every label set.

What the sentences are: prompts a chat assistant gets, written in English and French and
translated into Spanish, German, Italian and Portuguese, spread over many everyday subjects
(no subject twice), in the usual shapes (questions, commands, first-person statements,
short and long), so that their mean keeps the language and "this is a request" directions
and averages the subjects out. They were written for this purpose; none is an evaluation
prompt. The calibration scores all of them as far out-of-scope prompts. Editing them
changes every score, so re-run the dev/eval numbers (docs/research/2026-classifier-log.md) after any
change.
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

# The same requests translated into four more languages the multilingual encoder reads
# (Portuguese as written in Brazil), so that every language's mean averages out the same
# subjects. Prompts in a language without a corpus are centred on the mean of all of them.
NEUTRAL_SPANISH: tuple[str, ...] = (
    "¿Cuál es la cascada más alta de Sudamérica?",
    "¿Me puedes sugerir un nombre para una panadería pequeña?",
    "¿Cómo se desplazan los glaciares valle abajo?",
    "Resúmeme las ideas principales de este párrafo.",
    "Busco un juego de mesa para seis jugadores.",
    "¿Por qué las hojas cambian de color en otoño?",
    "Escribe una nota de agradecimiento para mi vecino por regarme las plantas.",
    "¿Cómo era la vida cotidiana de un soldado romano?",
    "¿Por qué la piedra de curling hace una curva sobre el hielo?",
    "¿Qué aves recorren las distancias más largas al migrar?",
    "Ayúdame a organizar un pícnic en el parque para diez personas.",
    "¿Cómo se hacen las vidrieras?",
    "¿Puedes traducir esta frase al alemán?",
    "¿Cómo debería prepararme para una entrevista de trabajo mañana?",
    "¿Qué comen los ajolotes en la naturaleza?",
    "Necesito ideas para un proyecto de feria de ciencias sobre imanes.",
    "¿Quién inventó la imprenta?",
    "¿Qué debería llevar para un fin de semana de acampada en la montaña?",
    "Escribe una adivinanza cuya respuesta sea un faro.",
    "¿Cómo quito una mancha de café de una alfombra de lana?",
    "¿Por qué el mar Muerto es tan salado?",
    "Recomiéndame un audiolibro para un viaje largo en tren.",
    "¿Cuáles son las reglas para escribirle un correo educado a un profesor?",
    "¿Cuánto dura un partido de hockey sobre hielo?",
    "Describe una puesta de sol sobre el océano en tres frases.",
    "¿Cómo puedo mejorar al dibujar manos?",
    "¿Me puedes explicar cómo se forma un arcoíris?",
    "Las hojas de mi planta de interior se están poniendo amarillas, ¿qué estoy haciendo mal?",
    "¿Qué idiomas se hablan en Suiza?",
    "Sugiere una temática para la fiesta de fin de año de la oficina.",
    "¿Cómo se mantiene en el aire un globo aerostático?",
    "¿De qué trata la ópera Carmen?",
    "Quiero aprender fotografía, ¿por dónde empiezo?",
    "¿Cuánto se tarda en cruzar a pie el puente Golden Gate?",
    "Escribe un cuento corto para dormir sobre un ratón valiente.",
    "¿Qué significan los colores de los anillos olímpicos?",
    "¿Cómo puedo hacer que mi habitación pequeña parezca más grande?",
    "Por favor, revisa mi carta de presentación y corrige la gramática.",
    "¿Qué profundidad tiene el lago Baikal?",
    "¿Por qué ronronean los gatos?",
    "Sugiéreme algunos pasatiempos que pueda hacer con mis abuelos.",
    "¿Cómo evito que se oxide la cadena de mi bici?",
    "¿Qué pasó en la primera llegada del hombre a la Luna?",
    "¡Hola! ¿Me puedes ayudar con algo?",
    "Compara los coches eléctricos y los híbridos para un trayecto largo al trabajo.",
    "¿Cuáles son las etapas de la vida de una mariposa?",
    "Esta noche me aburro en casa, ¿alguna idea?",
    "Haz una lista de equipaje para unas vacaciones en la playa con niños.",
)

NEUTRAL_GERMAN: tuple[str, ...] = (
    "Was ist der höchste Wasserfall Südamerikas?",
    "Kannst du mir einen Namen für eine kleine Bäckerei vorschlagen?",
    "Wie bewegen sich Gletscher ein Tal hinunter?",
    "Fass mir bitte die Hauptgedanken dieses Absatzes zusammen.",
    "Ich suche ein Brettspiel, das man zu sechst spielen kann.",
    "Warum verfärben sich die Blätter im Herbst?",
    "Schreib eine Dankeskarte an meinen Nachbarn, weil er meine Pflanzen gegossen hat.",
    "Wie sah der Alltag eines römischen Soldaten aus?",
    "Warum macht ein Curlingstein auf dem Eis eine Kurve?",
    "Welche Vögel legen beim Zug die weitesten Strecken zurück?",
    "Hilf mir, ein Picknick im Park für zehn Personen zu planen.",
    "Wie werden Buntglasfenster hergestellt?",
    "Kannst du diesen Satz ins Französische übersetzen?",
    "Wie sollte ich mich auf ein Vorstellungsgespräch morgen vorbereiten?",
    "Was fressen Axolotl in freier Wildbahn?",
    "Ich brauche Ideen für ein Projekt über Magnete für einen Schülerwettbewerb.",
    "Wer hat den Buchdruck erfunden?",
    "Was sollte ich für ein Campingwochenende in den Bergen einpacken?",
    "Schreib ein Rätsel, dessen Lösung ein Leuchtturm ist.",
    "Wie bekomme ich einen Kaffeefleck aus einem Wollteppich?",
    "Warum ist das Tote Meer so salzig?",
    "Empfiehl mir ein Hörbuch für eine lange Zugfahrt.",
    "Worauf sollte ich bei einer höflichen E-Mail an eine Lehrkraft achten?",
    "Wie lange dauert ein Eishockeyspiel?",
    "Beschreibe einen Sonnenuntergang über dem Meer in drei Sätzen.",
    "Wie kann ich besser darin werden, Hände zu zeichnen?",
    "Kannst du erklären, wie ein Regenbogen entsteht?",
    "Die Blätter meiner Zimmerpflanze werden gelb, was mache ich falsch?",
    "Welche Sprachen werden in der Schweiz gesprochen?",
    "Schlag ein Motto für unsere Jahresabschlussfeier im Büro vor.",
    "Wie bleibt ein Heißluftballon in der Luft?",
    "Worum geht es in der Oper Carmen?",
    "Ich möchte fotografieren lernen: wo fange ich am besten an?",
    "Wie lange braucht man, um zu Fuß über die Golden Gate Bridge zu gehen?",
    "Schreib eine kurze Gutenachtgeschichte über eine mutige Maus.",
    "Was bedeuten die Farben der olympischen Ringe?",
    "Wie kann ich mein kleines Schlafzimmer größer wirken lassen?",
    "Bitte lies mein Anschreiben Korrektur und verbessere die Grammatik.",
    "Wie tief ist der Baikalsee?",
    "Warum schnurren Katzen?",
    "Schlag mir ein paar Hobbys vor, die ich mit meinen Großeltern machen kann.",
    "Wie verhindere ich, dass meine Fahrradkette rostet?",
    "Was ist bei der ersten Mondlandung passiert?",
    "Hallo! Kannst du mir bei etwas helfen?",
    "Vergleiche Elektroautos und Hybridautos für einen langen Arbeitsweg.",
    "Welche Entwicklungsstadien durchläuft ein Schmetterling?",
    "Mir ist heute Abend zu Hause langweilig, hast du eine Idee?",
    "Erstelle eine Packliste für einen Strandurlaub mit Kindern.",
)

NEUTRAL_ITALIAN: tuple[str, ...] = (
    "Qual è la cascata più alta del Sud America?",
    "Mi suggerisci un nome per un piccolo panificio?",
    "Come fanno i ghiacciai a scendere lungo una valle?",
    "Riassumimi le idee principali di questo paragrafo.",
    "Cerco un gioco da tavolo che si possa giocare in sei.",
    "Perché in autunno le foglie cambiano colore?",
    "Scrivi un biglietto di ringraziamento per il mio vicino che mi ha annaffiato le piante.",
    "Com'era la vita quotidiana di un soldato romano?",
    "Perché la pietra da curling curva sul ghiaccio?",
    "Quali uccelli migrano per le distanze più lunghe?",
    "Aiutami a organizzare un picnic al parco per dieci persone.",
    "Come si fanno le vetrate colorate?",
    "Puoi tradurre questa frase in tedesco?",
    "Come dovrei prepararmi per un colloquio di lavoro domani?",
    "Cosa mangiano gli axolotl in natura?",
    "Mi servono idee per un progetto sulle calamite per la fiera della scienza della scuola.",
    "Chi ha inventato la stampa a caratteri mobili?",
    "Cosa dovrei mettere nello zaino per un weekend in campeggio in montagna?",
    "Scrivi un indovinello la cui risposta sia un faro.",
    "Come tolgo una macchia di caffè da un tappeto di lana?",
    "Perché il Mar Morto è così salato?",
    "Consigliami un audiolibro per un lungo viaggio in treno.",
    "Quali sono le regole per scrivere un'email educata a un professore?",
    "Quanto dura una partita di hockey su ghiaccio?",
    "Descrivi un tramonto sul mare in tre frasi.",
    "Come posso migliorare nel disegnare le mani?",
    "Mi spieghi come si forma un arcobaleno?",
    "Le foglie della mia pianta da appartamento stanno ingiallendo, cosa sbaglio?",
    "Quali lingue si parlano in Svizzera?",
    "Suggerisci un tema per la festa di fine anno dell'ufficio.",
    "Come fa una mongolfiera a restare in aria?",
    "Qual è la trama dell'opera Carmen?",
    "Voglio imparare la fotografia, da dove comincio?",
    "Quanto ci vuole per attraversare a piedi il Golden Gate Bridge?",
    "Scrivi una breve favola della buonanotte su un topolino coraggioso.",
    "Cosa significano i colori dei cerchi olimpici?",
    "Come posso far sembrare più grande la mia camera da letto, che è piccola?",
    "Per favore, rileggi la mia lettera di presentazione e correggi la grammatica.",
    "Quanto è profondo il lago Bajkal?",
    "Perché i gatti fanno le fusa?",
    "Suggeriscimi qualche hobby da fare con i miei nonni.",
    "Come faccio a evitare che la catena della bici arrugginisca?",
    "Cosa è successo durante il primo sbarco sulla Luna?",
    "Ciao! Mi puoi aiutare con una cosa?",
    "Confronta le auto elettriche e quelle ibride per un lungo tragitto casa-lavoro.",
    "Quali sono le fasi della vita di una farfalla?",
    "Stasera mi annoio a casa, hai qualche idea?",
    "Fai una lista delle cose da portare per una vacanza al mare con i bambini.",
)

NEUTRAL_PORTUGUESE: tuple[str, ...] = (
    "Qual é a cachoeira mais alta da América do Sul?",
    "Você pode sugerir um nome para uma padaria pequena?",
    "Como as geleiras se deslocam vale abaixo?",
    "Resuma para mim as ideias principais deste parágrafo.",
    "Estou procurando um jogo de tabuleiro para seis jogadores.",
    "Por que as folhas mudam de cor no outono?",
    "Escreva um bilhete de agradecimento para o meu vizinho por ter regado minhas plantas.",
    "Como era o dia a dia de um soldado romano?",
    "Por que a pedra de curling faz uma curva no gelo?",
    "Quais aves migram as maiores distâncias?",
    "Me ajude a planejar um piquenique no parque para dez pessoas.",
    "Como são feitos os vitrais?",
    "Você pode traduzir esta frase para o alemão?",
    "Como devo me preparar para uma entrevista de emprego amanhã?",
    "O que os axolotes comem na natureza?",
    "Preciso de ideias para um projeto de feira de ciências sobre ímãs.",
    "Quem inventou a prensa de tipos móveis?",
    "O que devo levar para um fim de semana acampando nas montanhas?",
    "Escreva uma charada cuja resposta seja um farol.",
    "Como tiro uma mancha de café de um tapete de lã?",
    "Por que o Mar Morto é tão salgado?",
    "Me recomende um audiolivro para uma longa viagem de trem.",
    "Quais são as regras para escrever um e-mail educado para um professor?",
    "Quanto tempo dura uma partida de hóquei no gelo?",
    "Descreva um pôr do sol no mar em três frases.",
    "Como posso melhorar no desenho de mãos?",
    "Você pode explicar como se forma um arco-íris?",
    "As folhas da minha planta estão ficando amarelas, o que estou fazendo de errado?",
    "Quais idiomas são falados na Suíça?",
    "Sugira um tema para a festa de fim de ano do escritório.",
    "Como um balão de ar quente se mantém no ar?",
    "Qual é o enredo da ópera Carmen?",
    "Quero aprender fotografia, por onde eu começo?",
    "Quanto tempo leva para atravessar a ponte Golden Gate a pé?",
    "Escreva uma historinha curta para dormir sobre um ratinho corajoso.",
    "O que significam as cores dos anéis olímpicos?",
    "Como posso fazer meu quarto pequeno parecer maior?",
    "Por favor, revise minha carta de apresentação e corrija a gramática.",
    "Qual é a profundidade do Lago Baikal?",
    "Por que os gatos ronronam?",
    "Sugira alguns hobbies que eu possa fazer com meus avós.",
    "Como evito que a corrente da minha bicicleta enferruje?",
    "O que aconteceu na primeira chegada do homem à Lua?",
    "Oi! Você pode me ajudar com uma coisa?",
    "Compare carros elétricos e híbridos para quem faz um trajeto longo até o trabalho.",
    "Quais são as fases da vida de uma borboleta?",
    "Estou entediado em casa hoje à noite, alguma ideia?",
    "Faça uma lista do que levar para férias na praia com crianças.",
)

NEUTRAL: dict[str, tuple[str, ...]] = {
    ENGLISH: NEUTRAL_ENGLISH,
    FRENCH: NEUTRAL_FRENCH,
    "es": NEUTRAL_SPANISH,
    "de": NEUTRAL_GERMAN,
    "it": NEUTRAL_ITALIAN,
    "pt": NEUTRAL_PORTUGUESE,
}


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
