"""A small compositional grammar: English sentences with German, Spanish and French translations.

A sentence is a `Sentence` structure sampled from a seeded `random.Random`;
`render(sentence, lang)` turns the same structure into text in each language,
so the four versions always say the same thing. The lexicon is a few hundred
words, the constructions are few but exercise the usual agreement rules:

* German: der/ein/mein/kein declension in nominative, accusative and dative
  (after prepositions and for recipients), strong/weak/mixed adjective endings,
  dative plural -n, verb-second order with the time adverb after the verb,
  `nicht` vs `kein`, capitalised nouns, im/am contractions.
* Spanish: article and adjective agreement (adjective after the noun), personal
  `a` (and a + el = al), `gustar` for "like", ser/estar/tener hambre, estar +
  gerund for the English progressive, clitic le/les for recipients, el agua.
* French: article and adjective agreement and position (petit chat, chat
  noir), vieil/nouvel/bel, elision (l', d', n', mon before a vowel),
  au/aux/du, partitive articles (du pain, de l'eau) and `pas de` under negation.

Semantic restrictions (who eats what, which adjective fits which noun, who is
found where) keep the sentences sensible.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

LANGS = ("en", "de", "es", "fr")


# --------------------------------------------------------------------------
# Lexicon
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Noun:
    key: str
    tags: frozenset
    en: tuple          # (singular, plural)
    de: tuple          # (gender m/f/n, singular, plural)
    es: tuple          # (gender, singular, plural)
    fr: tuple          # (gender, singular, plural)
    es_el: bool = False  # feminine noun taking el/un (el agua)

    @property
    def mass(self) -> bool:
        return "mass" in self.tags

    @property
    def sg_only(self) -> bool:
        return "mass" in self.tags or "sg" in self.tags or "place" in self.tags


def _noun(key, tags, en, de, es, fr, es_el=False):
    """Compact entry: en 'sg pl', others 'gender sg pl' (plural '-' for mass nouns)."""
    return Noun(key, frozenset(tags.split()), tuple(en.split()), tuple(de.split()),
                tuple(es.split()), tuple(fr.split()), es_el)


NOUNS = {n.key: n for n in [
    # people ("adult" excludes children from old/young; "kin" only as "my sister",
    # "nomy" never as "my man")
    _noun("man", "person adult nomy", "man men", "m Mann Männer", "m hombre hombres", "m homme hommes"),
    _noun("woman", "person adult nomy", "woman women", "f Frau Frauen", "f mujer mujeres",
          "f femme femmes"),
    _noun("child", "person young", "child children", "n Kind Kinder", "m niño niños", "m enfant enfants"),
    _noun("girl", "person young nomy", "girl girls", "n Mädchen Mädchen", "f niña niñas", "f fille filles"),
    _noun("teacher", "person adult", "teacher teachers", "m Lehrer Lehrer", "m profesor profesores",
          "m professeur professeurs"),
    _noun("doctor", "person adult", "doctor doctors", "m Arzt Ärzte", "m médico médicos",
          "m médecin médecins"),
    _noun("cook", "person adult", "cook cooks", "m Koch Köche", "m cocinero cocineros",
          "m cuisinier cuisiniers"),
    _noun("friend", "person adult", "friend friends", "m Freund Freunde", "m amigo amigos", "m ami amis"),
    _noun("sister", "person adult kin", "sister sisters", "f Schwester Schwestern", "f hermana hermanas",
          "f sœur sœurs"),
    _noun("brother", "person adult kin", "brother brothers", "m Bruder Brüder", "m hermano hermanos",
          "m frère frères"),
    _noun("king", "person adult nomy", "king kings", "m König Könige", "m rey reyes", "m roi rois"),
    _noun("queen", "person adult nomy", "queen queens", "f Königin Königinnen", "f reina reinas",
          "f reine reines"),
    _noun("mother", "person adult kin sg", "mother mothers", "f Mutter Mütter", "f madre madres",
          "f mère mères"),
    _noun("father", "person adult kin sg", "father fathers", "m Vater Väter", "m padre padres",
          "m père pères"),
    # animals ("pet" animals go to gardens and kitchens, "farm" animals to fields)
    _noun("dog", "animal pet", "dog dogs", "m Hund Hunde", "m perro perros", "m chien chiens"),
    _noun("cat", "animal pet", "cat cats", "f Katze Katzen", "m gato gatos", "m chat chats"),
    _noun("bird", "animal pet", "bird birds", "m Vogel Vögel", "m pájaro pájaros", "m oiseau oiseaux"),
    _noun("mouse", "animal pet", "mouse mice", "f Maus Mäuse", "m ratón ratones", "f souris souris"),
    _noun("horse", "animal farm", "horse horses", "n Pferd Pferde", "m caballo caballos",
          "m cheval chevaux"),
    _noun("duck", "animal pet", "duck ducks", "f Ente Enten", "m pato patos", "m canard canards"),
    _noun("rabbit", "animal pet", "rabbit rabbits", "n Kaninchen Kaninchen", "m conejo conejos",
          "m lapin lapins"),
    _noun("cow", "animal farm", "cow cows", "f Kuh Kühe", "f vaca vacas", "f vache vaches"),
    _noun("pig", "animal farm", "pig pigs", "n Schwein Schweine", "m cerdo cerdos", "m cochon cochons"),
    _noun("sheep", "animal farm", "sheep sheep", "n Schaf Schafe", "f oveja ovejas", "m mouton moutons"),
    # things ("carry": can be carried; "colour": has a colour worth naming)
    _noun("book", "thing carry colour", "book books", "n Buch Bücher", "m libro libros", "m livre livres"),
    _noun("ball", "thing carry colour", "ball balls", "m Ball Bälle", "f pelota pelotas",
          "m ballon ballons"),
    _noun("car", "thing colour", "car cars", "n Auto Autos", "m coche coches", "f voiture voitures"),
    _noun("letter", "thing carry", "letter letters", "m Brief Briefe", "f carta cartas", "f lettre lettres"),
    _noun("key", "thing carry", "key keys", "m Schlüssel Schlüssel", "f llave llaves", "f clé clés"),
    _noun("cup", "thing carry colour", "cup cups", "f Tasse Tassen", "f taza tazas", "f tasse tasses"),
    _noun("hat", "thing carry colour", "hat hats", "m Hut Hüte", "m sombrero sombreros",
          "m chapeau chapeaux"),
    _noun("bag", "thing carry colour", "bag bags", "f Tasche Taschen", "m bolso bolsos", "m sac sacs"),
    _noun("flower", "thing carry colour", "flower flowers", "f Blume Blumen", "f flor flores",
          "f fleur fleurs"),
    _noun("shoe", "thing carry colour", "shoe shoes", "m Schuh Schuhe", "m zapato zapatos",
          "f chaussure chaussures"),
    _noun("chair", "thing carry colour", "chair chairs", "m Stuhl Stühle", "f silla sillas",
          "f chaise chaises"),
    _noun("box", "thing carry colour", "box boxes", "f Kiste Kisten", "f caja cajas", "f boîte boîtes"),
    _noun("bottle", "thing carry colour", "bottle bottles", "f Flasche Flaschen", "f botella botellas",
          "f bouteille bouteilles"),
    _noun("umbrella", "thing carry colour", "umbrella umbrellas", "m Regenschirm Regenschirme",
          "m paraguas paraguas", "m parapluie parapluies"),
    _noun("bicycle", "thing colour", "bicycle bicycles", "n Fahrrad Fahrräder", "f bicicleta bicicletas",
          "m vélo vélos"),
    # food: countable, and mass nouns (no plural, no "a", bare as objects)
    _noun("apple", "food count", "apple apples", "m Apfel Äpfel", "f manzana manzanas", "f pomme pommes"),
    _noun("egg", "food count", "egg eggs", "n Ei Eier", "m huevo huevos", "m œuf œufs"),
    _noun("cake", "food count", "cake cakes", "m Kuchen Kuchen", "m pastel pasteles", "m gâteau gâteaux"),
    _noun("orange", "food count", "orange oranges", "f Orange Orangen", "f naranja naranjas",
          "f orange oranges"),
    _noun("banana", "food count", "banana bananas", "f Banane Bananen", "m plátano plátanos",
          "f banane bananes"),
    _noun("bread", "food mass", "bread -", "n Brot -", "m pan -", "m pain -"),
    _noun("soup", "food mass", "soup -", "f Suppe -", "f sopa -", "f soupe -"),
    _noun("cheese", "food mass", "cheese -", "m Käse -", "m queso -", "m fromage -"),
    _noun("rice", "food mass", "rice -", "m Reis -", "m arroz -", "m riz -"),
    _noun("fish", "food mass", "fish -", "m Fisch -", "m pescado -", "m poisson -"),
    _noun("meat", "food mass", "meat -", "n Fleisch -", "f carne -", "f viande -"),
    _noun("grass", "fodder mass", "grass -", "n Gras -", "f hierba -", "f herbe -"),  # animals only
    _noun("milk", "drink mass", "milk -", "f Milch -", "f leche -", "m lait -"),
    _noun("water", "drink mass", "water -", "n Wasser -", "f agua -", "f eau -", es_el=True),
    _noun("coffee", "drink mass", "coffee -", "m Kaffee -", "m café -", "m café -"),
    _noun("tea", "drink mass", "tea -", "m Tee -", "m té -", "m thé -"),
    _noun("juice", "drink mass", "juice -", "m Saft -", "m zumo -", "m jus -"),
    # places (singular only; the preposition is per place and language below)
    _noun("garden", "place", "garden -", "m Garten -", "m jardín -", "m jardin -"),
    _noun("kitchen", "place", "kitchen -", "f Küche -", "f cocina -", "f cuisine -"),
    _noun("park", "place", "park -", "m Park -", "m parque -", "m parc -"),
    _noun("house", "place", "house -", "n Haus -", "f casa -", "f maison -"),
    _noun("forest", "place", "forest -", "m Wald -", "m bosque -", "f forêt -"),
    _noun("street", "place", "street -", "f Straße -", "f calle -", "f rue -"),
    _noun("market", "place", "market -", "m Markt -", "m mercado -", "m marché -"),
    _noun("school", "place", "school -", "f Schule -", "f escuela -", "f école -"),
    _noun("field", "place", "field -", "n Feld -", "m campo -", "m champ -"),
    _noun("city", "place", "city -", "f Stadt -", "f ciudad -", "f ville -"),
    _noun("beach", "place", "beach -", "m Strand -", "f playa -", "f plage -"),
    _noun("restaurant", "place", "restaurant -", "n Restaurant -", "m restaurante -", "m restaurant -"),
    _noun("lake", "place", "lake -", "m See -", "m lago -", "m lac -"),
]}

# Location phrases: English preposition, German preposition (+dative),
# French preposition ("à" contracts with le/les); Spanish always uses "en".
PLACES = {
    "garden": ("in", "in", "dans"), "kitchen": ("in", "in", "dans"), "park": ("in", "in", "dans"),
    "house": ("in", "in", "dans"), "forest": ("in", "in", "dans"), "street": ("on", "auf", "dans"),
    "market": ("at", "auf", "à"), "school": ("at", "in", "à"), "field": ("in", "auf", "dans"),
    "city": ("in", "in", "dans"), "beach": ("on", "an", "sur"), "restaurant": ("at", "in", "à"),
    "lake": ("in", "in", "dans"),
}
# Who can plausibly be where (classes: person, pet, farm).
PLACE_WHO = {
    "garden": {"person", "pet"}, "kitchen": {"person", "pet"}, "park": {"person", "pet"},
    "house": {"person", "pet"}, "forest": {"person", "pet"}, "street": {"person", "pet"},
    "market": {"person"}, "school": {"person"}, "field": {"person", "pet", "farm"},
    "city": {"person", "pet"}, "beach": {"person", "pet"}, "restaurant": {"person"},
    "lake": set(),  # only for swimming, see _sample_once
}
# Things and food are found indoors or at the market.
PLACE_THINGS = ("kitchen", "house", "school", "market", "garden")
PLACE_FOOD = ("kitchen", "house", "market", "restaurant")
PLACES_MY = ("garden", "kitchen", "house", "school")  # "in my garden" but not "in my street"


@dataclass(frozen=True)
class Adjective:
    key: str           # also the English word
    de: str            # predicative form; attributive forms add endings
    es: tuple          # (m sg, f sg, m pl, f pl)
    fr: tuple          # (m sg, f sg, m pl, f pl)
    fr_pre: bool = False        # French adjective before the noun
    fr_vowel: str = ""          # masculine singular before a vowel (vieil, nouvel, bel)
    es_pred: str = "ser"        # ser / estar / tener (hambre)
    fr_pred: tuple = ()         # predicative French forms when they differ (neuf)
    state: bool = False         # a temporary state: fine with "today"/"now"


def _adj(key, de, es, fr, **kw):
    return Adjective(key, de, tuple(es.split()), tuple(fr.split()), **kw)


ADJECTIVES = {a.key: a for a in [
    _adj("red", "rot", "rojo roja rojos rojas", "rouge rouge rouges rouges"),
    _adj("blue", "blau", "azul azul azules azules", "bleu bleue bleus bleues"),
    _adj("green", "grün", "verde verde verdes verdes", "vert verte verts vertes"),
    _adj("yellow", "gelb", "amarillo amarilla amarillos amarillas", "jaune jaune jaunes jaunes"),
    _adj("black", "schwarz", "negro negra negros negras", "noir noire noirs noires"),
    _adj("white", "weiß", "blanco blanca blancos blancas", "blanc blanche blancs blanches"),
    _adj("small", "klein", "pequeño pequeña pequeños pequeñas", "petit petite petits petites",
         fr_pre=True),
    _adj("big", "groß", "grande grande grandes grandes", "grand grande grands grandes", fr_pre=True),
    _adj("old", "alt", "viejo vieja viejos viejas", "vieux vieille vieux vieilles", fr_pre=True,
         fr_vowel="vieil"),
    _adj("young", "jung", "joven joven jóvenes jóvenes", "jeune jeune jeunes jeunes", fr_pre=True),
    _adj("new", "neu", "nuevo nueva nuevos nuevas", "nouveau nouvelle nouveaux nouvelles",
         fr_pre=True, fr_vowel="nouvel", fr_pred=("neuf", "neuve", "neufs", "neuves")),
    _adj("beautiful", "schön", "hermoso hermosa hermosos hermosas", "beau belle beaux belles",
         fr_pre=True, fr_vowel="bel"),
    _adj("tired", "müde", "cansado cansada cansados cansadas",
         "fatigué fatiguée fatigués fatiguées", es_pred="estar", state=True),
    _adj("hungry", "hungrig", "hambriento hambrienta hambrientos hambrientas",
         "affamé affamée affamés affamées", es_pred="tener", state=True),
    _adj("cold", "kalt", "frío fría fríos frías", "froid froide froids froides", es_pred="estar",
         state=True),
    _adj("hot", "heiß", "caliente caliente calientes calientes", "chaud chaude chauds chaudes",
         es_pred="estar", state=True),
    _adj("dirty", "schmutzig", "sucio sucia sucios sucias", "sale sale sales sales", es_pred="estar",
         state=True),
    _adj("clean", "sauber", "limpio limpia limpios limpias", "propre propre propres propres",
         es_pred="estar", state=True),
    _adj("fresh", "frisch", "fresco fresca frescos frescas", "frais fraîche frais fraîches",
         es_pred="estar"),
]}


def adjective_fits(adj: str, noun: Noun) -> bool:
    """Whether `adj` makes sense with `noun` (no "hungry books", no "young cars")."""
    t, k = noun.tags, noun.key
    if adj in ("red", "blue", "green", "yellow"):
        return "colour" in t or k == "bird"
    if adj in ("black", "white"):
        return "colour" in t or "animal" in t
    if adj == "small":
        return bool(t & {"animal", "thing", "place", "count", "young"})
    if adj == "big":
        return bool(t & {"animal", "thing", "place", "count"})
    if adj == "old":  # not for kin: "mi madre vieja" sounds rude
        return (bool(t & {"adult", "animal", "thing"}) and "kin" not in t
                or k in ("house", "school", "market", "city", "restaurant"))
    if adj == "young":
        return bool(t & {"adult", "animal"}) and "kin" not in t
    if adj == "new":
        return "thing" in t or k in ("house", "school", "park", "restaurant")
    if adj == "beautiful":
        return (bool(t & {"animal", "place"})
                or k in ("woman", "girl", "queen", "flower", "hat", "car", "box", "bicycle"))
    if adj in ("tired", "hungry"):
        return bool(t & {"person", "animal"})
    if adj in ("cold", "hot"):
        return ("drink" in t or k in ("soup", "rice", "fish")) and not (adj == "hot" and k == "juice")
    if adj == "fresh":
        return k in ("bread", "cheese", "fish", "meat", "milk", "juice", "apple", "egg", "cake",
                     "orange", "banana")
    if adj in ("dirty", "clean"):
        return k in ("car", "bicycle", "cup", "bottle", "shoe", "hat", "bag", "chair", "dog", "pig",
                     "kitchen", "house", "street", "restaurant", "beach", "city")
    raise KeyError(adj)


@dataclass(frozen=True)
class Verb:
    key: str
    en: tuple       # (base, 3sg, -ing or "" when the progressive is unnatural)
    de: tuple       # (3sg, 3pl)
    es: tuple       # (3sg, 3pl, gerund)
    fr: tuple       # (3sg, 3pl)
    de_animal: tuple = ()  # German verb with an animal subject (frisst)


def _verb(key, en, de, es, fr, de_animal=""):
    return Verb(key, tuple(en.split()) + (("",) if len(en.split()) == 2 else ()),
                tuple(de.split()), tuple(es.split()), tuple(fr.split()), tuple(de_animal.split()))


VERBS = {v.key: v for v in [
    # transitive
    _verb("see", "see sees", "sieht sehen", "ve ven viendo", "voit voient"),
    _verb("hear", "hear hears", "hört hören", "oye oyen oyendo", "entend entendent"),
    _verb("eat", "eat eats eating", "isst essen", "come comen comiendo", "mange mangent",
          de_animal="frisst fressen"),
    _verb("drink", "drink drinks drinking", "trinkt trinken", "bebe beben bebiendo", "boit boivent"),
    _verb("buy", "buy buys buying", "kauft kaufen", "compra compran comprando", "achète achètent"),
    _verb("carry", "carry carries carrying", "trägt tragen", "lleva llevan llevando", "porte portent"),
    _verb("find", "find finds", "findet finden", "encuentra encuentran encontrando",
          "trouve trouvent"),
    _verb("read", "read reads reading", "liest lesen", "lee leen leyendo", "lit lisent"),
    _verb("write", "write writes writing", "schreibt schreiben", "escribe escriben escribiendo",
          "écrit écrivent"),
    _verb("cook", "cook cooks cooking", "kocht kochen", "cocina cocinan cocinando",
          "prépare préparent"),
    _verb("open", "open opens opening", "öffnet öffnen", "abre abren abriendo", "ouvre ouvrent"),
    _verb("sell", "sell sells selling", "verkauft verkaufen", "vende venden vendiendo", "vend vendent"),
    _verb("wash", "wash washes washing", "wäscht waschen", "lava lavan lavando", "lave lavent"),
    _verb("like", "like likes", "mag mögen", "gusta gustan gustando", "aime aiment"),
    # with a recipient
    _verb("give", "give gives giving", "gibt geben", "da dan dando", "donne donnent"),
    _verb("show", "show shows showing", "zeigt zeigen", "muestra muestran mostrando",
          "montre montrent"),
    _verb("bring", "bring brings bringing", "bringt bringen", "trae traen trayendo",
          "apporte apportent"),
    # intransitive
    _verb("sleep", "sleep sleeps sleeping", "schläft schlafen", "duerme duermen durmiendo",
          "dort dorment"),
    _verb("play", "play plays playing", "spielt spielen", "juega juegan jugando", "joue jouent"),
    _verb("run", "run runs running", "rennt rennen", "corre corren corriendo", "court courent"),
    _verb("sing", "sing sings singing", "singt singen", "canta cantan cantando", "chante chantent"),
    _verb("wait", "wait waits waiting", "wartet warten", "espera esperan esperando",
          "attend attendent"),
    _verb("dance", "dance dances dancing", "tanzt tanzen", "baila bailan bailando", "danse dansent"),
    _verb("swim", "swim swims swimming", "schwimmt schwimmen", "nada nadan nadando", "nage nagent"),
    _verb("work", "work works working", "arbeitet arbeiten", "trabaja trabajan trabajando",
          "travaille travaillent"),
]}

TRANSITIVE = ("see", "hear", "eat", "drink", "buy", "sell", "carry", "find", "open", "read", "write",
              "cook", "wash")
DITRANSITIVE = ("give", "show", "bring")
INTRANSITIVE = ("sleep", "play", "run", "sing", "dance", "swim", "wait", "work")

# What animals eat and drink (people eat and drink everything on the menu).
ANIMAL_DIET = {
    "dog": ("bread", "meat", "fish", "cheese", "water", "milk"),
    "cat": ("fish", "meat", "cheese", "milk", "water"),
    "bird": ("bread", "rice", "water"), "mouse": ("cheese", "bread", "apple", "rice", "water"),
    "duck": ("bread", "rice", "water"), "rabbit": ("grass", "apple", "water"),
    "horse": ("apple", "bread", "grass", "water"), "cow": ("grass", "water"),
    "pig": ("apple", "banana", "bread", "rice", "water"), "sheep": ("grass", "water"),
}

# Time adverbs: en, de, es, fr; `habit` ones go with the simple present only,
# `now` with the progressive or a state.
TIMES = {
    "today": ("today", "heute", "hoy", "aujourd'hui"),
    "now": ("now", "jetzt", "ahora", "maintenant"),
    "every_day": ("every day", "jeden Tag", "todos los días", "tous les jours"),
    "morning": ("in the morning", "am Morgen", "por la mañana", "le matin"),
    "afternoon": ("in the afternoon", "am Nachmittag", "por la tarde", "l'après-midi"),
    "night": ("at night", "nachts", "por la noche", "la nuit"),
    "sundays": ("on Sundays", "sonntags", "los domingos", "le dimanche"),
}
HABIT_TIMES = ("today", "every_day", "morning", "afternoon", "night", "sundays")
NOW_TIMES = ("today", "now")

NUMBERS = {2: ("two", "zwei", "dos", "deux"), 3: ("three", "drei", "tres", "trois"),
           4: ("four", "vier", "cuatro", "quatre"), 5: ("five", "fünf", "cinco", "cinq")}


# --------------------------------------------------------------------------
# Structures
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class NP:
    """A noun phrase: determiner the/a/my/num/bare (bare = mass noun, no article)."""

    noun: str
    det: str = "the"
    plural: bool = False
    num: int = 0
    adj: str | None = None


@dataclass(frozen=True)
class Sentence:
    """kind: tr (subj verb obj), intr (subj verb), like, give (subj verb recipient obj),
    pred (subj is adj), exist (there is subj place)."""

    kind: str
    subj: NP
    verb: str = ""
    obj: NP | None = None
    recipient: NP | None = None
    adj: str = ""
    place: NP | None = None
    time: str = ""
    neg: bool = False
    prog: bool = False


# --------------------------------------------------------------------------
# Rendering helpers
# --------------------------------------------------------------------------

_VOWELS = set("aeiouàâäéèêëîïôöùûüœæh")  # French h is mute in all our words (l'homme)


def _starts_with_vowel(word: str) -> bool:
    return word[:1].lower() in _VOWELS


def _finish(tokens: list[str]) -> str:
    """Join tokens (a token ending in an apostrophe sticks to the next one),
    capitalise the first letter, add the final period."""
    text = ""
    for tok in tokens:
        if not tok:
            continue
        text += tok if (not text or text.endswith("'")) else " " + tok
    return text[:1].upper() + text[1:] + "."


# ---- English ----

def _en_np(np: NP) -> list[str]:
    noun = NOUNS[np.noun]
    det = NUMBERS[np.num][0] if np.det == "num" else {"the": "the", "a": "a", "my": "my", "bare": ""}[np.det]
    words = [det, np.adj or "", noun.en[1] if np.plural else noun.en[0]]
    return [w for w in words if w]


def _en_fix_articles(tokens: list[str]) -> list[str]:
    """a -> an before a vowel (an old man, an apple); English h is not silent here."""
    return ["an" if t == "a" and i + 1 < len(tokens) and tokens[i + 1][0] in "aeiou" else t
            for i, t in enumerate(tokens)]


def _en_place(place: NP) -> list[str]:
    return [PLACES[place.noun][0]] + _en_np(place)


def render_en(s: Sentence) -> str:
    subj = _en_np(s.subj)
    pl = s.subj.plural
    toks = list(subj)
    if s.kind in ("tr", "intr", "like", "give"):
        verb = VERBS[s.verb]
        if s.prog:
            toks += ["are" if pl else "is"] + (["not"] if s.neg else []) + [verb.en[2]]
        elif s.neg:
            toks += ["do" if pl else "does", "not", verb.en[0]]
        else:
            toks += [verb.en[0] if pl else verb.en[1]]
        if s.kind == "give":
            toks += _en_np(s.recipient)
        if s.obj is not None:
            toks += _en_np(s.obj)
    elif s.kind == "pred":
        toks += ["are" if pl else "is"] + (["not"] if s.neg else []) + [s.adj]
    elif s.kind == "exist":
        toks = ["there", "are" if pl else "is"] + subj
    if s.place is not None:
        toks += _en_place(s.place)
    if s.time:
        toks += TIMES[s.time][0].split()
    return _finish(_en_fix_articles(toks))


# ---- German ----

_DE_DEF = {"nom": {"m": "der", "f": "die", "n": "das", "pl": "die"},
           "acc": {"m": "den", "f": "die", "n": "das", "pl": "die"},
           "dat": {"m": "dem", "f": "der", "n": "dem", "pl": "den"}}
_DE_EIN = {"nom": {"m": "", "f": "e", "n": "", "pl": "e"},
           "acc": {"m": "en", "f": "e", "n": "", "pl": "e"},
           "dat": {"m": "em", "f": "er", "n": "em", "pl": "en"}}
# Adjective endings after der-words (weak), ein-words (mixed), no article (strong).
_DE_WEAK = {"nom": {"m": "e", "f": "e", "n": "e", "pl": "en"},
            "acc": {"m": "en", "f": "e", "n": "e", "pl": "en"},
            "dat": {"m": "en", "f": "en", "n": "en", "pl": "en"}}
_DE_MIXED = {"nom": {"m": "er", "f": "e", "n": "es", "pl": "en"},
             "acc": {"m": "en", "f": "e", "n": "es", "pl": "en"},
             "dat": {"m": "en", "f": "en", "n": "en", "pl": "en"}}
_DE_STRONG = {"nom": {"m": "er", "f": "e", "n": "es", "pl": "e"},
              "acc": {"m": "en", "f": "e", "n": "es", "pl": "e"},
              "dat": {"m": "em", "f": "er", "n": "em", "pl": "en"}}


def _de_np(np: NP, case: str, neg: bool = False) -> list[str]:
    """German NP in `case`; neg turns a/bare into kein (keine Katze, kein Brot)."""
    noun = NOUNS[np.noun]
    gender = "pl" if np.plural else noun.de[0]
    det = np.det
    if neg and det in ("a", "bare"):
        det = "kein"
    if det == "the":
        article, endings = _DE_DEF[case][gender], _DE_WEAK
    elif det in ("a", "my", "kein"):
        stem = {"a": "ein", "my": "mein", "kein": "kein"}[det]
        article, endings = stem + _DE_EIN[case][gender], _DE_MIXED
    elif det == "num":
        article, endings = NUMBERS[np.num][1], _DE_STRONG
    else:  # bare mass noun
        article, endings = "", _DE_STRONG
    words = [article]
    if np.adj:
        base = ADJECTIVES[np.adj].de
        stem = base[:-1] if base.endswith("e") else base  # müde -> müd-e/-en/-er
        words.append(stem + endings[case][gender])
    form = noun.de[2] if np.plural else noun.de[1]
    if np.plural and case == "dat" and not form.endswith(("n", "s")):
        form += "n"  # dative plural: den Kindern, but den Autos, den Frauen
    words.append(form)
    return [w for w in words if w]


def _de_place(place: NP) -> list[str]:
    prep = PLACES[place.noun][1]
    words = _de_np(place, "dat")
    if words[0] == "dem" and prep in ("in", "an"):
        return [prep[0] + "m"] + words[1:]  # in dem -> im, an dem -> am
    return [prep] + words


def render_de(s: Sentence) -> str:
    pl = s.subj.plural
    time = TIMES[s.time][1].split() if s.time else []
    if s.kind == "exist":
        # Verb second: the place comes first, the subject after the verb.
        toks = _de_place(s.place) + ["sind" if pl else "ist"] + _de_np(s.subj, "nom") + time
        return _finish(toks)
    toks = _de_np(s.subj, "nom")
    if s.kind == "pred":
        toks += ["sind" if pl else "ist"] + time + (["nicht"] if s.neg else []) + [ADJECTIVES[s.adj].de]
        return _finish(toks)
    verb = VERBS[s.verb]
    forms = verb.de_animal if verb.de_animal and "animal" in NOUNS[s.subj.noun].tags else verb.de
    toks += [forms[1] if pl else forms[0]] + time  # animals "fressen", people "essen"
    if s.kind == "give":
        toks += _de_np(s.recipient, "dat")
    nicht = s.neg
    if s.obj is not None:
        kein = s.neg and s.obj.det in ("a", "bare")
        toks += _de_np(s.obj, "acc", neg=kein)
        nicht = s.neg and not kein
    if nicht:
        toks.append("nicht")
    if s.place is not None:
        toks += _de_place(s.place)
    return _finish(toks)


# ---- Spanish ----

def _es_np(np: NP, det_override: str | None = None) -> list[str]:
    noun = NOUNS[np.noun]
    gender = noun.es[0]
    det = det_override or np.det
    g = 0 if gender == "m" else 1
    idx = g + (2 if np.plural else 0)
    if det == "the":
        article = ("el", "la", "los", "las")[idx]
        if noun.es_el and article == "la":
            article = "el"  # el agua
    elif det == "a":
        article = "un" if (gender == "m" or noun.es_el) else "una"
    elif det == "my":
        article = "mis" if np.plural else "mi"
    elif det == "num":
        article = NUMBERS[np.num][2]
    else:
        article = ""
    words = [article, noun.es[2] if np.plural else noun.es[1]]
    if np.adj:
        words.append(ADJECTIVES[np.adj].es[idx])
    return [w for w in words if w]


def _es_contract(tokens: list[str]) -> list[str]:
    """a + el -> al, de + el -> del."""
    out: list[str] = []
    for tok in tokens:
        if tok == "el" and out and out[-1] in ("a", "de"):
            out[-1] = "al" if out[-1] == "a" else "del"
        else:
            out.append(tok)
    return out


def _es_personal_a(np: NP) -> bool:
    """Personal `a` before people, and before particular (the/my) animals."""
    tags = NOUNS[np.noun].tags
    return "person" in tags or ("animal" in tags and np.det in ("the", "my"))


def _es_place(place: NP) -> list[str]:
    return ["en"] + _es_np(place)


def render_es(s: Sentence) -> str:
    pl = s.subj.plural
    time = TIMES[s.time][2].split() if s.time else []
    no = ["no"] if s.neg else []
    if s.kind == "exist":
        toks = ["hay"] + _es_np(s.subj) + _es_place(s.place) + time
        return _finish(_es_contract(toks))
    if s.kind == "like":
        # gustar: "A mi hermana no le gusta la sopa"; the liked thing is the subject
        # of the verb and takes the definite article even when generic.
        obj = s.obj
        verb = VERBS["like"].es[1] if obj.plural else VERBS["like"].es[0]
        toks = (["a"] + _es_np(s.subj) + no + ["les" if pl else "le", verb]
                + _es_np(obj, "the" if obj.det == "bare" else None) + time)
        return _finish(_es_contract(toks))
    toks = _es_np(s.subj) + no
    if s.kind == "pred":
        adj = ADJECTIVES[s.adj]
        if adj.es_pred == "tener":
            toks += ["tienen" if pl else "tiene", "hambre"]
        else:
            verb = {"ser": ("es", "son"), "estar": ("está", "están")}[adj.es_pred]
            g = 0 if NOUNS[s.subj.noun].es[0] == "m" else 1
            toks += [verb[1] if pl else verb[0], adj.es[g + (2 if pl else 0)]]
        return _finish(_es_contract(toks + time))
    verb = VERBS[s.verb]
    if s.kind == "give":
        toks.append("les" if s.recipient.plural else "le")  # clitic doubling of the recipient
    if s.prog:
        toks += ["están" if pl else "está", verb.es[2]]
    else:
        toks.append(verb.es[1] if pl else verb.es[0])
    if s.obj is not None:
        if s.kind == "tr" and _es_personal_a(s.obj):
            toks.append("a")
        toks += _es_np(s.obj)
    if s.kind == "give":
        toks += ["a"] + _es_np(s.recipient)
    if s.place is not None:
        toks += _es_place(s.place)
    return _finish(_es_contract(toks + time))


# ---- French ----

def _fr_np(np: NP, det_override: str | None = None) -> list[str]:
    """French NP; det 'part' is the partitive (du pain), 'de' the negated one (pas de pain)."""
    noun = NOUNS[np.noun]
    gender = noun.fr[0]
    g = 0 if gender == "m" else 1
    idx = g + (2 if np.plural else 0)
    det = det_override or np.det
    if det == "the":
        article = ["les"] if np.plural else [("le", "la")[g]]
    elif det == "a":
        article = [("un", "une")[g]]
    elif det == "my":
        article = ["mes"] if np.plural else [("mon", "ma")[g]]  # ma -> mon before a vowel: later
    elif det == "num":
        article = [NUMBERS[np.num][3]]
    elif det == "part":
        article = ["de", ("le", "la")[g]]  # de le -> du, de la, de l'
    elif det == "de":
        article = ["de"]
    else:
        raise ValueError(f"no French article for det {det!r}")
    form = noun.fr[2] if np.plural else noun.fr[1]
    pre, post = [], []
    if np.adj:
        adj = ADJECTIVES[np.adj]
        word = adj.fr[idx]
        if adj.fr_pre:
            if adj.fr_vowel and idx == 0 and _starts_with_vowel(form):
                word = adj.fr_vowel  # un vieil homme, un bel oiseau
            pre = [word]
        else:
            post = [word]
    return article + pre + [form] + post


def _fr_elide(tokens: list[str]) -> list[str]:
    """Elision and contraction: le/la -> l', de -> d', ne -> n', ma -> mon before a vowel;
    à le -> au, à les -> aux, de le -> du, de les -> des."""
    out: list[str] = []
    for i, tok in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if nxt and _starts_with_vowel(nxt):
            if tok in ("le", "la"):
                tok = "l'"
            elif tok in ("de", "ne"):
                tok = tok[0] + "'"
            elif tok == "ma":
                tok = "mon"
        if out and out[-1] in ("à", "de") and tok in ("le", "les"):
            out[-1] = {("à", "le"): "au", ("à", "les"): "aux",
                       ("de", "le"): "du", ("de", "les"): "des"}[(out[-1], tok)]
            continue
        out.append(tok)
    return out


def _fr_place(place: NP) -> list[str]:
    return [PLACES[place.noun][2]] + _fr_np(place)


def render_fr(s: Sentence) -> str:
    pl = s.subj.plural
    time = TIMES[s.time][3].split() if s.time else []
    if s.kind == "exist":
        det = "part" if s.subj.det == "bare" else None
        toks = ["il", "y", "a"] + _fr_np(s.subj, det) + _fr_place(s.place) + time
        return _finish(_fr_elide(toks))
    toks = _fr_np(s.subj)
    ne, pas = (["ne"], ["pas"]) if s.neg else ([], [])
    if s.kind == "pred":
        adj = ADJECTIVES[s.adj]
        if s.adj == "hungry":
            toks += ne + ["ont" if pl else "a"] + pas + ["faim"]  # avoir faim
        else:
            g = 0 if NOUNS[s.subj.noun].fr[0] == "m" else 1
            forms = adj.fr_pred or adj.fr
            toks += ne + ["sont" if pl else "est"] + pas + [forms[g + (2 if pl else 0)]]
        return _finish(_fr_elide(toks + time))
    verb = VERBS[s.verb]
    toks += ne + [verb.fr[1] if pl else verb.fr[0]] + pas
    if s.obj is not None:
        det = None
        if s.obj.det == "bare":
            if s.kind == "like":
                det = "the"  # aimer takes the definite article: il aime le pain
            else:
                det = "de" if s.neg else "part"
        toks += _fr_np(s.obj, det)
    if s.kind == "give":
        toks += ["à"] + _fr_np(s.recipient)
    if s.place is not None:
        toks += _fr_place(s.place)
    return _finish(_fr_elide(toks + time))


_RENDER = {"en": render_en, "de": render_de, "es": render_es, "fr": render_fr}


def render(s: Sentence, lang: str) -> str:
    """The sentence in `lang` (en, de, es or fr)."""
    try:
        return _RENDER[lang](s)
    except KeyError:
        raise ValueError(f"unsupported language {lang!r}; choose from {', '.join(LANGS)}") from None


# --------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------

MAX_WORDS = 11  # keep utterances short (about 2 s of speech)


def _nouns(*tags: str) -> list[str]:
    return [k for k, n in NOUNS.items() if n.tags & set(tags)]


PEOPLE = _nouns("person")
ANIMALS = _nouns("animal")
THINGS = _nouns("thing")
FOODS = _nouns("food")
DRINKS = _nouns("drink")


def _who_class(noun: str) -> str:
    tags = NOUNS[noun].tags
    return "person" if "person" in tags else ("farm" if "farm" in tags else "pet")


def _allowed_dets(noun: Noun, dets: tuple) -> list[str]:
    """The determiners of `dets` that suit `noun` (duplicates kept: they are weights)."""
    if "place" in noun.tags:
        return [d for d in dets if d == "the" or (d == "my" and noun.key in PLACES_MY)]
    if noun.mass:  # the bread, bread; not "a bread", and "my water" sounds odd
        return [d for d in dets if d in ("the", "bare")]
    if "kin" in noun.tags:  # my sister, never "a sister" or "the sister"
        return [d for d in dets if d == "my"]
    return [d for d in dets if d != "bare" and not (d == "num" and noun.sg_only)
            and not (d == "my" and "nomy" in noun.tags)]


def _sample_np(rng: random.Random, nouns: list[str], dets: tuple, p_adj: float = 0.35) -> NP:
    noun = NOUNS[rng.choice([n for n in nouns if _allowed_dets(NOUNS[n], dets)])]
    det = rng.choice(_allowed_dets(noun, dets))
    if det == "num":
        plural, num = True, rng.choice(sorted(NUMBERS))
    else:
        plural = det in ("the", "my") and not noun.sg_only and rng.random() < 0.35
        num = 0
    adj = None
    if rng.random() < p_adj:
        fits = [a for a in ADJECTIVES if adjective_fits(a, noun)]
        adj = rng.choice(fits) if fits else None
    return NP(noun.key, det, plural, num, adj)


def _sample_place(rng: random.Random, candidates: list[str]) -> NP:
    noun = rng.choice(candidates)
    det = "my" if noun in PLACES_MY and rng.random() < 0.25 else "the"
    adj = None
    if rng.random() < 0.2:
        adj = rng.choice([a for a in ADJECTIVES if adjective_fits(a, NOUNS[noun])])
    return NP(noun, det, False, 0, adj)


def _places_for(noun: str) -> list[str]:
    """Where `noun` (a person or animal) can be; the lake is only for swimming."""
    if noun == "duck":
        return ["garden", "park", "field"]
    return [p for p, who in PLACE_WHO.items() if _who_class(noun) in who]


def _time(rng: random.Random, prog: bool, p: float = 0.3) -> str:
    if rng.random() >= p:
        return ""
    return rng.choice(NOW_TIMES if prog else HABIT_TIMES)


def _objects(verb: str, subj: str) -> list[str]:
    """Sensible direct objects of `verb` for subject noun `subj`."""
    animal = "animal" in NOUNS[subj].tags
    if verb in ("see", "hear"):
        objs = PEOPLE + ANIMALS + ([] if verb == "hear" else THINGS)
    elif verb in ("eat", "drink"):
        menu = ANIMAL_DIET[subj] if animal else FOODS + DRINKS
        objs = [o for o in menu if ("drink" in NOUNS[o].tags) == (verb == "drink")]
    elif verb in ("buy", "sell"):
        objs = FOODS + DRINKS + THINGS
    elif verb in ("carry", "find"):
        objs = _nouns("carry")
    elif verb == "read":
        objs = ["book", "letter"]
    elif verb == "write":
        objs = ["letter", "book"]
    elif verb == "cook":
        objs = ["soup", "rice", "fish"]
    elif verb == "wash":
        objs = ["car", "bicycle", "cup", "bottle", "shoe", "dog", "horse", "pig"]
    elif verb == "open":
        objs = ["box", "bag", "bottle", "letter", "book", "umbrella"]
    elif verb == "like":
        objs = list(ANIMAL_DIET[subj]) if animal else FOODS + DRINKS + ANIMALS + PEOPLE + THINGS
    else:
        raise KeyError(verb)
    return [o for o in objs if o != subj]


# No "the hot tea is cold".
_OPPOSITES = [{"hot", "cold"}, {"old", "new"}, {"old", "young"}, {"small", "big"}, {"dirty", "clean"}]


def _sample_once(rng: random.Random) -> Sentence:
    kind = rng.choices(("tr", "intr", "like", "give", "pred", "exist"),
                       weights=(34, 16, 12, 12, 14, 12))[0]
    if kind == "tr":
        verb = rng.choice(TRANSITIVE)
        subj_pool = PEOPLE + ANIMALS if verb in ("see", "hear", "eat", "drink") else PEOPLE
        subj_pool = [n for n in subj_pool if _objects(verb, n)]  # cows only drink water
        subj = _sample_np(rng, subj_pool, ("the", "the", "a", "my", "num"))
        obj = _sample_np(rng, _objects(verb, subj.noun), ("the", "a", "my", "num", "bare"))
        prog = bool(VERBS[verb].en[2]) and rng.random() < 0.3
        place = _sample_place(rng, _places_for(subj.noun)) if rng.random() < 0.3 else None
        # Negation only without a place (German nicht placement) and with
        # the/my/bare objects (a or numbers read oddly under negation).
        neg = (place is None and obj.det in ("the", "my", "bare") and subj.det != "a"
               and rng.random() < 0.25)
        time = _time(rng, prog)
        if neg and time == "every_day":
            time = ""  # "does not ... every day" is ambiguous in German
        return Sentence("tr", subj, verb, obj=obj, place=place, time=time, neg=neg, prog=prog)
    if kind == "intr":
        verb = rng.choice(INTRANSITIVE)
        subj_pool = {"sleep": PEOPLE + ANIMALS, "play": PEOPLE + ["dog", "cat"],
                     "run": PEOPLE + ANIMALS, "sing": PEOPLE + ["bird"],
                     "swim": PEOPLE + ["dog", "duck"]}.get(verb, PEOPLE)
        subj = _sample_np(rng, subj_pool, ("the", "the", "a", "my", "num"))
        prog = rng.random() < 0.35
        places = ["lake"] if verb == "swim" else _places_for(subj.noun)
        place = _sample_place(rng, places) if rng.random() < 0.6 else None
        neg = place is None and subj.det != "a" and rng.random() < 0.3
        time = _time(rng, prog, 0.4)
        if neg and time == "every_day":
            time = ""
        return Sentence("intr", subj, verb, place=place, time=time, neg=neg, prog=prog)
    if kind == "like":
        subj = _sample_np(rng, PEOPLE + ANIMALS, ("the", "my", "num"))
        obj = _sample_np(rng, _objects("like", subj.noun), ("the", "my", "bare"))
        neg = rng.random() < 0.35
        time = "today" if rng.random() < 0.1 else ""
        return Sentence("like", subj, "like", obj=obj, time=time, neg=neg)
    if kind == "give":
        verb = rng.choice(DITRANSITIVE)
        subj = _sample_np(rng, PEOPLE, ("the", "a", "my"), p_adj=0.25)
        recipients = PEOPLE + (ANIMALS if verb != "show" else [])
        recipient = _sample_np(rng, [r for r in recipients if r != subj.noun], ("the", "my", "a"),
                               p_adj=0.2)
        things = _nouns("carry") if verb == "show" else _nouns("carry") + FOODS + DRINKS
        if "animal" in NOUNS[recipient.noun].tags:
            things = list(ANIMAL_DIET[recipient.noun])
        obj = _sample_np(rng, things, ("the", "a", "my", "num", "bare"), p_adj=0.25)
        prog = rng.random() < 0.25
        return Sentence("give", subj, verb, obj=obj, recipient=recipient, time=_time(rng, prog, 0.2),
                        prog=prog)
    if kind == "pred":
        while True:
            subj = _sample_np(rng, PEOPLE + ANIMALS + THINGS + FOODS + DRINKS + _nouns("place"),
                              ("the", "the", "my"), p_adj=0.3)
            adjs = [a for a in ADJECTIVES if adjective_fits(a, NOUNS[subj.noun])
                    and a != subj.adj and {a, subj.adj} not in _OPPOSITES]
            if adjs:
                break
        adj = rng.choice(adjs)
        time = rng.choice(NOW_TIMES) if ADJECTIVES[adj].state and rng.random() < 0.4 else ""
        return Sentence("pred", subj, adj=adj, time=time, neg=rng.random() < 0.25)
    # exist: "There is a cat in the garden."
    subj = _sample_np(rng, PEOPLE + ANIMALS + THINGS + FOODS + DRINKS, ("a", "num", "bare"))
    tags = NOUNS[subj.noun].tags
    if "food" in tags or "drink" in tags:
        places = list(PLACE_FOOD)
    elif subj.noun == "car":
        places = ["street"]
    elif "thing" in tags:
        places = list(PLACE_THINGS)
    else:
        places = _places_for(subj.noun)
    return Sentence("exist", subj, place=_sample_place(rng, places))


def sample_sentence(rng: random.Random) -> Sentence:
    """One random sentence structure of at most MAX_WORDS English words."""
    while True:
        s = _sample_once(rng)
        if len(render_en(s).split()) <= MAX_WORDS:
            return s


def words(text: str) -> list[str]:
    """Lower-cased word tokens (l'enfant -> l', enfant) for vocabulary checks."""
    return re.findall(r"\w+'?", text.lower())
