"""`ovos-solver-plugin-ddg`: DuckDuckGo's Instant Answer API.

Answers "what is X" with the abstract (or the instant answer, or a dictionary definition), and "when was X
born" / "how old is X" from the infobox facts, phrased in the asker's language. The API's content is English
whatever the region; `kl` still steers which topic a term resolves to.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any
from urllib.parse import quote

from pydantic import Field

from persona_server.query import Answer, Query, Source
from persona_server.solvers.lookup import LookupFailed, LookupOptions, LookupSolver
from persona_server.solvers.lookup_text import LookupQuestion, first_sentences, parse_question, valid_lang

# The usual DuckDuckGo region of a language, and every region code it knows ("country-language").
_DEFAULT_REGION = {
    "en": "us-en", "pt": "pt-pt", "es": "es-es", "fr": "fr-fr", "de": "de-de", "it": "it-it", "nl": "nl-nl",
    "ca": "ct-ca", "da": "dk-da", "fi": "fi-fi", "el": "gr-el", "hu": "hu-hu", "id": "id-id", "he": "il-he",
    "ja": "jp-jp", "ko": "kr-kr", "no": "no-no", "nb": "no-no", "pl": "pl-pl", "ro": "ro-ro", "ru": "ru-ru",
    "sk": "sk-sk", "sl": "sl-sl", "sv": "se-sv", "th": "th-th", "tr": "tr-tr", "uk": "ua-uk", "vi": "vn-vi",
    "zh": "cn-zh", "ar": "xa-ar", "bg": "bg-bg", "hr": "hr-hr", "cs": "cz-cs", "et": "ee-et", "lv": "lv-lv",
    "lt": "lt-lt", "ms": "my-ms", "tl": "ph-tl",
}
_REGIONS = frozenset(
    "xa-ar xa-en ar-es au-en at-de be-fr be-nl br-pt bg-bg ca-en ca-fr ct-ca cl-es cn-zh co-es hr-hr cz-cs "
    "dk-da ee-et fi-fi fr-fr de-de gr-el hk-tzh hu-hu in-en id-id id-en ie-en il-he it-it jp-jp kr-kr lv-lv "
    "lt-lt xl-es my-ms my-en mx-es nl-nl nz-en no-no pe-es ph-en ph-tl pl-pl pt-pt ro-ro ru-ru sg-en sk-sk "
    "sl-sl za-en es-es se-sv ch-de ch-fr ch-it tw-tzh th-th tr-tr ua-uk uk-en us-en ue-es ve-es vn-vi wt-wt".split()
)
_COUNTRY_ALIASES = {"gb": "uk", "us": "us", "br": "br"}


def region_for(lang: str) -> str:
    """The `kl` region of a language tag: "en" -> "us-en", "pt-BR" -> "br-pt", "xx" -> "wt-wt" (no region)."""
    parts = lang.replace("_", "-").lower().split("-")
    primary = parts[0]
    if len(parts) > 1 and len(parts[1]) == 2:
        country = _COUNTRY_ALIASES.get(parts[1], parts[1])
        if f"{country}-{primary}" in _REGIONS:
            return f"{country}-{primary}"
    return _DEFAULT_REGION.get(primary, "wt-wt")


class DuckDuckGoOptions(LookupOptions):
    base_url: str = Field(default="https://api.duckduckgo.com", description="the Instant Answer API's root")
    region: str | None = Field(default=None, description="the `kl` region (us-en...); default from the language")
    sentences: int = Field(default=2, ge=1, le=20, description="sentences of the abstract to answer with")
    app_name: str = Field(default="persona-server", description="the `t` parameter DuckDuckGo asks apps to send")
    bare_terms: bool = Field(
        default=False, description="also look up text that is not worded as a question ('Albert Einstein')"
    )


class DuckDuckGoSolver(LookupSolver):
    name = "ovos-solver-plugin-ddg"
    aliases = ("ovos-solver-ddg-plugin",)
    description = "Answers from DuckDuckGo's Instant Answers: abstracts, definitions, birth dates and ages."
    service = "DuckDuckGo"
    default_timeout = 5.0
    Options = DuckDuckGoOptions
    options: DuckDuckGoOptions
    # Replaceable in tests; ages are counted up to this day.
    today: Callable[[], date] = staticmethod(date.today)

    async def lookup(self, query: Query) -> Answer | None:
        lang = valid_lang(query.lang_code)
        question = parse_question(query.question, lang, bare=self.options.bare_terms)
        if question is None:
            return None
        region = self.options.region or region_for(query.lang)
        url = self.options.base_url.rstrip("/") + "/"
        data = await self.cached((url, region, question.term), lambda: self._fetch(url, question.term, region))
        if data is None:
            return None
        return self._answer(data, question, lang)

    async def _fetch(self, url: str, term: str, region: str) -> Any:
        params = {
            "q": term,
            "format": "json",
            "no_html": "1",
            "skip_disambig": "1",
            "no_redirect": "1",
            "kl": region,
            "t": self.options.app_name,
        }
        data = await self.get_json(url, params)
        if not isinstance(data, dict):
            raise LookupFailed("unexpected reply")
        # Cache the raw reply: one look-up serves "what is X", "when was X born" and "how old is X".
        return data

    def _answer(self, data: dict[str, Any], question: LookupQuestion, lang: str) -> Answer | None:
        if data.get("Type") == "D":  # a disambiguation list despite skip_disambig: no single answer
            return None
        name = _text(data.get("Heading")) or question.term
        source = Source(title=_text(data.get("AbstractSource")) or "DuckDuckGo",
                        url=_text(data.get("AbstractURL")) or _ddg_url(question.term))
        if question.intent in ("born", "age"):
            text = _fact(data, question.intent, name, lang, self.today())
            return Answer(text=text, sources=[source]) if text else None
        abstract = _text(data.get("AbstractText"))
        if abstract:
            return Answer(text=first_sentences(abstract, self.options.sentences), sources=[source])
        instant = _text(data.get("Answer"))
        if instant:
            return Answer(text=instant, sources=[Source("DuckDuckGo", _ddg_url(question.term))])
        definition = _text(data.get("Definition"))
        if definition:
            return Answer(text=definition, sources=[Source(
                title=_text(data.get("DefinitionSource")) or "DuckDuckGo",
                url=_text(data.get("DefinitionURL")) or _ddg_url(question.term),
            )])
        return None


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _ddg_url(term: str) -> str:
    return "https://duckduckgo.com/?q=" + quote(term, safe="")


# --------------------------------------------------------------------------------------------------------------
# Infobox facts
# --------------------------------------------------------------------------------------------------------------

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            "january jan", "february feb", "march mar", "april apr", "may", "june jun", "july jul",
            "august aug", "september sep sept", "october oct", "november nov", "december dec",
        ],
        start=1,
    )
    for name in names.split()
}
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DATE_PATTERNS = [
    re.compile(rf"\b(?P<month>{_MONTH})\.? (?P<day>\d{{1,2}}),? (?P<year>\d{{3,4}})\b", re.I),
    re.compile(rf"\b(?P<day>\d{{1,2}}) (?P<month>{_MONTH})\.?,? (?P<year>\d{{3,4}})\b", re.I),
    re.compile(r"\b(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})\b"),
]

_MONTH_NAMES = {
    "en": "January February March April May June July August September October November December",
    "pt": "janeiro fevereiro março abril maio junho julho agosto setembro outubro novembro dezembro",
    "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre",
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
}
_DATE_FORMATS = {
    "en": "{month} {day}, {year}", "pt": "{day} de {month} de {year}", "es": "{day} de {month} de {year}",
    "fr": "{day} {month} {year}", "de": "{day}. {month} {year}",
}
_BORN = {
    "en": ("{name} was born on {date}.", "{name} was born on {date}, in {place}."),
    "pt": ("{name} nasceu a {date}.", "{name} nasceu a {date}, em {place}."),
    "es": ("{name} nació el {date}.", "{name} nació el {date}, en {place}."),
    "fr": ("Date de naissance de {name} : {date}.", "Date de naissance de {name} : {date}, à {place}."),
    "de": ("{name} wurde am {date} geboren.", "{name} wurde am {date} in {place} geboren."),
}
_AGE = {
    "en": ("{name} is {age} years old.", "{name} died on {date}, at the age of {age}."),
    "pt": ("{name} tem {age} anos.", "{name} morreu a {date}, com {age} anos."),
    "es": ("{name} tiene {age} años.", "{name} murió el {date}, a los {age} años."),
    "fr": ("{name} a {age} ans.", "{name} nous a quittés le {date}, à {age} ans."),
    "de": ("{name} ist {age} Jahre alt.", "{name} starb am {date} im Alter von {age} Jahren."),
}


def _fact(data: dict[str, Any], intent: str, name: str, lang: str, today: date) -> str | None:
    facts = _infobox(data)
    born_value = next((facts[k] for k in ("born", "birth date", "date of birth") if k in facts), None)
    if born_value is None:
        return None
    born = _parse_date(born_value)
    if born is None:
        return None
    lang = lang if lang in _BORN else "en"
    if intent == "born":
        place = _place(born_value, born[1], name)
        alive, with_place = _BORN[lang]
        template = with_place if place else alive
        return template.format(name=name, date=_format_date(born[0], lang), place=place)
    died_value = next((facts[k] for k in ("died", "death date", "date of death") if k in facts), None)
    died = _parse_date(died_value) if died_value else None
    end = died[0] if died else today
    age = end.year - born[0].year - ((end.month, end.day) < (born[0].month, born[0].day))
    if age < 0:
        return None
    living, dead = _AGE[lang]
    return (dead if died else living).format(name=name, age=age, date=_format_date(end, lang))


def _infobox(data: dict[str, Any]) -> dict[str, str]:
    """Infobox entries by lower-case label (the API sends "" when there is no infobox)."""
    infobox = data.get("Infobox")
    content = infobox.get("content") if isinstance(infobox, dict) else None
    facts: dict[str, str] = {}
    for entry in content if isinstance(content, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("label"), str) and isinstance(entry.get("value"), str):
            facts.setdefault(entry["label"].strip().lower(), entry["value"].strip())
    return facts


def _parse_date(text: str) -> tuple[date, re.Match[str]] | None:
    for pattern in _DATE_PATTERNS:
        match = pattern.search(text)
        if match is None:
            continue
        month = match.group("month")
        month_number = int(month) if month.isdigit() else _MONTHS[month.lower()]
        try:
            return date(int(match.group("year")), month_number, int(match.group("day"))), match
        except ValueError:
            continue
    return None


def _place(value: str, match: re.Match[str], name: str) -> str:
    """The place after the date in a "Born" entry: "Albert Einstein March 14, 1879 Ulm, Germany" -> "Ulm, ..."."""
    place = re.sub(r"\((?:age|aged)[^)]*\)", "", value[match.end():])
    place = place.strip(" ,;.")
    return "" if place.lower() == name.lower() else place


def _format_date(day: date, lang: str) -> str:
    month = _MONTH_NAMES[lang].split()[day.month - 1]
    return _DATE_FORMATS[lang].format(day=day.day, month=month, year=day.year)
