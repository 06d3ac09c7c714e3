"""What the look-up solvers (Wikipedia, DuckDuckGo, Wolfram|Alpha) read in a question, and how they trim text.

- `parse_question`: "what is X", "who was X", "tell me about X", "when was X born", "how old is X"... -> the
  search term and what is asked about it (en, pt, es, fr, de).
- `first_sentences`: the first sentences of an extract, not cut after abbreviations or initials.
- `valid_lang`: a language subtag safe to put into a host name.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

Intent = Literal["about", "born", "age"]

# --------------------------------------------------------------------------------------------------------------
# Question -> search term
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LookupQuestion:
    """What a look-up question asks: a search term and whether it asks about it, its birth or its age."""

    term: str
    intent: Intent = "about"


def _rx(*patterns: str) -> list[re.Pattern[str]]:
    return [re.compile(rf"^(?:{p})$", re.I | re.U) for p in patterns]


# Said before the question proper: "hey, can you tell me ...", "please ...".
_PREFIXES = _rx(
    r"(?:hey|hi|ok|okay|so|well|please|por favor|bitte|s'il te plaît|s'il vous plaît)[,!]?\s+(?P<rest>.+)",
    r"(?:can|could|would) you (?:please )?tell me (?P<rest>.+)",
    r"(?:do|did) you know (?P<rest>.+)",
    r"i (?:want|would like|'d like) to know (?P<rest>.+)",
    r"(?:sabes|sabe|você sabe|voce sabe|podes dizer-me|pode me dizer|me diga|diz-me|dime|sabes tú) (?P<rest>.+)",
    r"(?:sais-tu|savez-vous|dis-moi|dites-moi) (?P<rest>.+)",
    r"(?:weißt du|weisst du|sag mir|sagen sie mir) (?P<rest>.+)",
)

_T = r"(?P<term>.+?)"
# Most specific first: "when was X born" must win over "what is X".
_PATTERNS: dict[str, list[tuple[Intent, re.Pattern[str]]]] = {
    "en": [
        *(("age", p) for p in _rx(
            rf"how old (?:is|was|are|were) {_T}",
            rf"what(?: is|'s) the age of {_T}",
            rf"what age is {_T}",
            rf"what(?: is|'s) {_T}'s? age",
        )),
        *(("born", p) for p in _rx(
            rf"when (?:was|were|is) {_T} born",
            rf"when did {_T} (?:get )?born",
            rf"what(?: is|'s|was) the (?:birth ?date|date of birth|birthday) of {_T}",
            rf"what(?: is|'s|was) {_T}'s? (?:birth ?date|date of birth|birthday)",
            rf"when(?: is|'s) {_T}'s? birthday",
            rf"(?:birth ?date|date of birth|birthday) of {_T}",
        )),
        *(("about", p) for p in _rx(
            rf"(?:what|who)(?: is|'s| was| are| were|'re) {_T}",
            rf"(?:can you )?tell me (?:something |more |a bit |a little )?(?:about|of) {_T}",
            rf"what do you know about {_T}",
            rf"what can you tell me about {_T}",
            rf"(?:give me )?(?:some )?(?:information|info|facts) (?:about|on) {_T}",
            rf"(?:define|describe|explain|look up|search for|search|wiki|wikipedia) {_T}",
            rf"(?:the )?(?:definition|meaning) of {_T}",
            rf"what does {_T} mean",
        )),
    ],
    "pt": [
        *(("age", p) for p in _rx(
            rf"quantos anos (?:tem|tinha) {_T}",
            rf"qual (?:é |e )?a idade d[eoa]s? {_T}",
            rf"que idade tem {_T}",
        )),
        *(("born", p) for p in _rx(
            rf"quando (?:é que )?(?:nasceu|nasceram) {_T}",
            rf"quando {_T} nasceu",
            rf"qual (?:é |e )?a data de nascimento d[eoa]s? {_T}",
        )),
        *(("about", p) for p in _rx(
            rf"o que (?:é|e|são|sao|era|foi|foram)(?: que)? {_T}",
            rf"o que (?:é|e) que (?:é|e) {_T}",
            rf"quem (?:é|e|foi|era|são|sao|foram)(?: que)? {_T}",
            rf"(?:fala|fale|conta|conte)(?:-me| me)? (?:um pouco )?(?:sobre|de|do|da|acerca de) {_T}",
            rf"o que sabes sobre {_T}",
            rf"(?:define|defina|descreve|descreva|explica|explique|pesquisa|pesquise|procura) {_T}",
            rf"(?:a )?(?:definição|definicao|significado) de {_T}",
        )),
    ],
    "es": [
        *(("age", p) for p in _rx(
            rf"(?:cuántos|cuantos) años (?:tiene|tenía|tenia) {_T}",
            rf"(?:qué|que) edad tiene {_T}",
            rf"(?:cuál|cual) es la edad de {_T}",
        )),
        *(("born", p) for p in _rx(
            rf"(?:cuándo|cuando) (?:nació|nacio|nacieron) {_T}",
            rf"(?:cuál|cual) es la fecha de nacimiento de {_T}",
        )),
        *(("about", p) for p in _rx(
            rf"(?:qué|que) (?:es|son|era|fue|fueron) {_T}",
            rf"(?:quién|quien|quiénes|quienes) (?:es|fue|era|son|fueron) {_T}",
            rf"(?:háblame|hablame|cuéntame|cuentame) (?:un poco )?(?:sobre|de|del|acerca de) {_T}",
            rf"(?:qué|que) sabes (?:sobre|de) {_T}",
            rf"(?:define|describe|explica|busca) {_T}",
            rf"(?:la )?(?:definición|definicion|significado) de {_T}",
        )),
    ],
    "fr": [
        *(("age", p) for p in _rx(
            rf"quel (?:âge|age) (?:a|avait) {_T}",
            rf"quel est l'(?:âge|age) de {_T}",
        )),
        *(("born", p) for p in _rx(
            rf"quand (?:est|était|etait) (?:né|ne|née|nee|nés|nes) {_T}",
            rf"quand {_T} (?:est-il|est-elle|est il|est elle) (?:né|ne|née|nee)",
            rf"quelle est la date de naissance d(?:e |'){_T}",
        )),
        *(("about", p) for p in _rx(
            rf"qu'est-ce qu(?:e |')(?:c'est )?{_T}",
            rf"qu'est ce qu(?:e |')(?:c'est )?{_T}",
            rf"c'est quoi {_T}",
            rf"(?:qui|que|quoi) (?:est|était|etait|sont|étaient|c'est) {_T}",
            rf"(?:parle|parlez)(?:-moi| moi)? (?:un peu )?(?:de |d'|du |des ){_T}",
            rf"que sais-tu (?:de |d'|du |des |sur ){_T}",
            rf"(?:définis|définissez|définir|décris|décrivez|explique|expliquez|cherche) {_T}",
            rf"(?:la )?(?:définition|definition|signification) d(?:e |'|u |es ){_T}",
        )),
    ],
    "de": [
        *(("age", p) for p in _rx(
            rf"wie alt (?:ist|war|sind|waren) {_T}",
            rf"(?:was|wie) ist das alter von {_T}",
        )),
        *(("born", p) for p in _rx(
            rf"wann (?:wurde|wurden|ist) {_T} geboren",
            rf"wann hat {_T} geburtstag",
            rf"was ist das geburtsdatum von {_T}",
        )),
        *(("about", p) for p in _rx(
            rf"(?:was|wer) (?:ist|sind|war|waren) {_T}",
            rf"(?:erzähl|erzähle|erzählen sie|erzaehl)(?: mir)? (?:etwas |was |mehr )?(?:über|ueber|von) {_T}",
            rf"was weißt du über {_T}",
            rf"(?:definiere|beschreibe|erkläre|erklaere|suche) {_T}",
            rf"(?:die )?(?:definition|bedeutung) von {_T}",
            rf"was bedeutet {_T}",
        )),
    ],
}

# Leading articles dropped from a term: "what is a cat" asks about "cat". "the" is kept in English, where it
# is often part of a name ("The Beatles", "The Hague").
_ARTICLES: dict[str, re.Pattern[str]] = {
    "en": re.compile(r"^(?:a|an)\s+", re.I),
    "pt": re.compile(r"^(?:o|a|os|as|um|uma|uns|umas)\s+", re.I),
    "es": re.compile(r"^(?:el|la|los|las|un|una|unos|unas)\s+", re.I),
    "fr": re.compile(r"^(?:(?:le|la|les|un|une|des)\s+|l')", re.I),
    "de": re.compile(r"^(?:der|die|das|ein|eine|einen|einem|einer)\s+", re.I),
}

# Terms about the conversation itself ("who are you", "what is your name", "what's up"): not look-ups.
_NOT_TERMS = frozenset(
    "you yours yourself me mine myself i it this that these those he she they we us him her them there here up "
    "new happening today "
    "tu você voce vocês eu isto isso aquilo ele ela usted tú yo eso esto toi vous moi ça ca cela "
    "du sie ich er es".split()
) | {"going on", "the matter", "the time", "the date", "the weather", "the news"}
_NOT_TERM_STARTS = frozenset(
    "you your yours yourself my me myself i i'm teu tua teus tuas meu minha meus minhas você voce tu mi mis "
    "tus ton ta tes mon ma mes votre vos dein deine deinen mein meine meinen".split()
)


def parse_question(text: str, lang: str = "en", *, bare: bool = False) -> LookupQuestion | None:
    """The search term of a look-up question, or None when the text is not one.

    With `bare`, text that matches no question form is taken as the term itself ("Albert Einstein?").
    """
    lang = lang.replace("_", "-").split("-")[0].lower()
    cleaned = _clean(text)
    if not cleaned:
        return None
    candidates = [cleaned]
    for prefix in _PREFIXES:
        match = prefix.match(candidates[-1])
        if match:
            candidates.append(match.group("rest").strip())
    # Someone asking in Portuguese may still word a question in English.
    langs = [lang, "en"] if lang in _PATTERNS and lang != "en" else ["en"]
    for candidate in reversed(candidates):
        for code in langs:
            for intent, pattern in _PATTERNS[code]:
                match = pattern.match(candidate)
                if match:
                    return _question(match.group("term"), intent, code)
    if bare:
        return _question(candidates[-1], "about", lang)
    return None


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace("\u2019", "'").replace("\u00bf", "").replace("\u00a1", "")
    text = re.sub(r"\s+", " ", text).strip()
    return text.strip(" ?!.;:,\"'")


def _question(term: str, intent: Intent, lang: str) -> LookupQuestion | None:
    term = term.strip(" ?!.;:,\"'")
    term = re.sub(r"\s+(?:please|por favor|bitte|s'il (?:te|vous) plaît)$", "", term, flags=re.I)
    term = re.sub(r"^(?:about|sobre)\s+", "", term, flags=re.I)
    article = _ARTICLES.get(lang)
    if article is not None:
        term = article.sub("", term, count=1)
    term = term.strip()
    # Arithmetic and numbers ("what is 2+2") are not encyclopedia look-ups; neither is small talk.
    if not term or not any(ch.isalpha() for ch in term):
        return None
    lowered = term.lower()
    if lowered in _NOT_TERMS or lowered.split()[0] in _NOT_TERM_STARTS:
        return None
    return LookupQuestion(term=term, intent=intent)


# --------------------------------------------------------------------------------------------------------------
# Text helpers
# --------------------------------------------------------------------------------------------------------------

_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt ft no nr vs etc e.g i.e ca approx c inc ltd co corp dept est fig gen gov "
    "lt col sgt capt rev hon u.s u.k a.d b.c jan feb mar apr jun jul aug sep sept oct nov dec "
    "sra dra av pág pag núm num bzw usw ca.".split()
)
# A sentence ends at . ! ? (plus closing quotes/brackets) followed by space and a capital or a digit.
_SENTENCE_END = re.compile(r"[.!?…][\"')\]]*(?=\s+[\"'(\[¿¡]?[A-ZÀ-ÖØ-Þ0-9])")


def first_sentences(text: str, count: int) -> str:
    """The first `count` sentences of plain text, not cut after abbreviations or initials."""
    text = _tidy(text)
    if count <= 0 or not text:
        return text
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        sentence = text[start:match.end()].strip()
        last_word = sentence.rsplit(None, 1)[-1] if sentence else ""
        word = last_word.rstrip(".").lower()
        # "J. R. R. Tolkien", "Dr. Smith", "the U.S. Army": a full stop that ends no sentence.
        if match.group().startswith(".") and (len(word) <= 1 or word in _ABBREVIATIONS):
            continue
        sentences.append(sentence)
        start = match.end()
        if len(sentences) == count:
            return " ".join(sentences)
    rest = text[start:].strip()
    if rest:
        sentences.append(rest)
    return " ".join(sentences[:count])


def _tidy(text: str) -> str:
    """Plain-text extracts keep the husks of removed markup: "( ; )", "(, )", doubled spaces."""
    text = re.sub(r"\s*\((?:[^()\w]|\s)*\)", "", text)
    text = re.sub(r"\(\s*[;,]?\s*", "(", text)
    text = re.sub(r"\s*[;,]?\s*\)", ")", text)
    text = re.sub(r"\s+", " ", text)
    return re.sub(r"\s+([,.;:])", r"\1", text).strip()


def valid_lang(code: str, fallback: str = "en") -> str:
    """A language subtag safe to put into a host name ("{lang}.wikipedia.org"); the fallback otherwise."""
    return code if re.fullmatch(r"[a-z]{2,3}", code or "") else fallback
