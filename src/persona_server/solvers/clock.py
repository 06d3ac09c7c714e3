"""`persona-solver-clock`: the time, the date, the day of the week, holidays, and the time in a city or country,
in English and Portuguese.

The zone is the request's `timezone` extension, else the persona block's `timezone`, else the server's (`TZ`).
Places come from a shipped table of cities and countries (`data/clock/places.tsv`) and resolve through the IANA
database (`zoneinfo`, with `tzdata`). Tests fix "now" with `PERSONA_SERVER_FAKE_NOW` (see `timezones.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Literal

from persona_server import timezones
from persona_server.query import Query
from persona_server.solvers import calendar_words as words
from persona_server.solvers.base import Solver, SolverOptions

MAX_QUESTION_CHARS = 120

Kind = Literal["time", "date", "year", "month", "holiday", "until", "weekday"]


@dataclass(frozen=True, slots=True)
class Request:
    kind: Kind
    offset: int = 0  # days from today, for "date": -1 yesterday, 1 tomorrow
    place: str | None = None  # as the asker wrote it
    preposition: str = ""  # Portuguese: the asker's "em" / "no" / "na" before the place, said back
    target: str | None = None  # a holiday or a date, for "holiday" and "until"


_EN_LEAD = re.compile(r"^(?:(?:hey|ok|okay|so|please|excuse me|sorry|can you|could you|tell me|do you know)"
                      r"[,\s]+)+")
_PT_LEAD = re.compile(r"^(?:(?:ola|ei|por favor|desculpe|desculpa|podes|pode|sabes|sabe|diz-me|diga-me|me diz)"
                      r"[,\s]+)+")
_PLACE = r"(?:\s+(?:in|at|for)\s+(?P<place>[a-z][a-z .'-]{1,40}))?"
_PLACE_PT = r"(?:\s+(?P<prep>em|no|na|nos|nas)\s+(?P<place>[a-z][a-z .'-]{1,40}))?"

_EN: list[tuple[Kind, int, re.Pattern[str]]] = [
    ("time", 0, re.compile(
        # "What is the time", never "what is time" (the dictionary's).
        r"^(?:what(?:'s| is|s)?\s+(?:the\s+(?:current\s+|local\s+|exact\s+)?|current\s+|local\s+)time(?:\s+is\s+it)?"
        r"|what\s+time\s+is\s+it|what\s+time\s+it\s+is|(?:the\s+)?(?:current\s+|local\s+)?time|what\s+hour\s+is\s+it"
        r"|have\s+you\s+got\s+the\s+time|do\s+you\s+have\s+the\s+time)"
        rf"(?:\s+(?:now|right\s+now|currently))?{_PLACE}(?:\s+(?:now|right\s+now))?$")),
    ("date", 2, re.compile(
        r"^(?:what(?:'s| is|s)?|(?:what|which)\s+(?:day|date)\s+is(?:\s+it)?)\s+(?:the\s+)?day\s+after\s+tomorrow$")),
    ("date", -2, re.compile(
        r"^(?:what\s+was|(?:what|which)\s+(?:day|date)\s+was(?:\s+it)?)\s+(?:the\s+)?day\s+before\s+yesterday$")),
    ("date", 1, re.compile(
        r"^(?:what(?:'s| is|s)?\s+(?:the\s+)?(?:date|day)\s+(?:is\s+it\s+)?tomorrow|what\s+(?:date|day)\s+is\s+"
        r"(?:it\s+)?tomorrow|what(?:'s| is)\s+tomorrow(?:'s|s)?\s+date|tomorrow(?:'s|s)?\s+date"
        r"|what\s+is\s+tomorrow)$")),
    ("date", -1, re.compile(
        r"^(?:what\s+(?:was|day\s+was|date\s+was)\s+(?:the\s+date\s+|it\s+)?yesterday|what\s+(?:date|day)\s+was\s+"
        r"(?:it\s+)?yesterday|what\s+was\s+yesterday(?:'s|s)?\s+date|yesterday(?:'s|s)?\s+date)$")),
    ("date", 0, re.compile(
        r"^(?:what(?:'s| is|s)?\s+(?:the\s+|today(?:'s|s)\s+)?(?:date|day)(?:\s+of\s+the\s+week)?(?:\s+is\s+it)?"
        r"(?:\s+today)?|what\s+(?:date|day)(?:\s+of\s+the\s+week)?\s+is\s+(?:it|today)(?:\s+today)?|today(?:'s|s)\s+"
        r"date|what(?:'s| is)\s+today|which\s+day\s+is\s+(?:it|today)|what\s+day\s+it\s+is|the\s+date)"
        rf"(?:\s+today)?{_PLACE}$")),
    ("year", 0, re.compile(r"^(?:what|which)(?:'s| is)?\s+(?:the\s+)?(?:current\s+)?year(?:\s+is\s+it)?$")),
    ("month", 0, re.compile(r"^(?:what|which)(?:'s| is)?\s+(?:the\s+)?(?:current\s+)?month(?:\s+is\s+it)?$")),
    ("until", 0, re.compile(
        r"^(?:how\s+many\s+(?:more\s+)?(?:days|sleeps)\s+(?:are\s+there\s+|is\s+it\s+|left\s+|are\s+left\s+)?"
        r"(?:until|till|til|to|before)|how\s+long\s+(?:is\s+it\s+)?(?:until|till|to|before))\s+(?P<target>.+)$")),
    ("holiday", 0, re.compile(
        r"^(?:(?:what|which)\s+day(?:\s+of\s+the\s+week)?\s+(?:is|does|will\s+be)|when\s+is|what\s+date\s+is)\s+"
        r"(?P<target>.+?)(?:\s+(?:on|fall\s+on|fall|this\s+year|falling\s+on))?$")),
    # "is it monday today", "is today friday": the target is a weekday name.
    ("weekday", 0, re.compile(r"^(?:is\s+it|is\s+today|today\s+is)\s+(?:a\s+)?(?P<target>[a-z]+day)(?:\s+today)?$")),
]
_PT: list[tuple[Kind, int, re.Pattern[str]]] = [
    ("time", 0, re.compile(
        r"^(?:que\s+horas\s+sao|que\s+horas\s+e|que\s+hora\s+e|qual\s+e\s+a\s+hora|qual\s+a\s+hora|as\s+horas"
        r"|horas|que\s+horas\s+tens|a\s+hora\s+atual)(?:\s+agora)?" + _PLACE_PT + r"(?:\s+agora)?$")),
    ("date", 2, re.compile(r"^(?:que\s+dia\s+e\s+depois\s+de\s+amanha|depois\s+de\s+amanha\s+e\s+que\s+dia)$")),
    ("date", -2, re.compile(r"^(?:que\s+dia\s+foi\s+anteontem|anteontem\s+foi\s+que\s+dia)$")),
    ("date", 1, re.compile(
        r"^(?:que\s+dia\s+e\s+amanha|qual\s+e\s+a\s+data\s+de\s+amanha|qual\s+a\s+data\s+de\s+amanha"
        r"|amanha\s+e\s+que\s+dia|que\s+data\s+e\s+amanha)$")),
    ("date", -1, re.compile(
        r"^(?:que\s+dia\s+foi\s+ontem|ontem\s+foi\s+que\s+dia|qual\s+foi\s+a\s+data\s+de\s+ontem)$")),
    ("date", 0, re.compile(
        r"^(?:que\s+dia\s+e\s+hoje|que\s+dia\s+e|qual\s+e\s+a\s+data(?:\s+de\s+hoje)?|qual\s+a\s+data(?:\s+de\s+hoje)?"
        r"|que\s+data\s+e\s+hoje|em\s+que\s+dia\s+estamos|hoje\s+e\s+que\s+dia|que\s+dia\s+da\s+semana\s+e\s+hoje"
        r"|a\s+data\s+de\s+hoje|que\s+dia\s+e\s+hoje\s+em)$")),
    ("year", 0, re.compile(r"^(?:em\s+que\s+ano\s+estamos|que\s+ano\s+e|qual\s+e\s+o\s+ano|em\s+que\s+ano\s+e)$")),
    ("month", 0, re.compile(r"^(?:em\s+que\s+mes\s+estamos|que\s+mes\s+e|qual\s+e\s+o\s+mes)$")),
    ("until", 0, re.compile(
        r"^(?:quantos\s+dias\s+faltam|quanto\s+tempo\s+falta|faltam\s+quantos\s+dias|quantos\s+dias\s+sao)\s+"
        r"(?:para|ate|pro|pra)\s+(?:o\s+|a\s+)?(?P<target>.+)$")),
    ("holiday", 0, re.compile(
        r"^(?:que\s+dia\s+(?:e|calha|cai|sera)|quando\s+e|em\s+que\s+dia\s+(?:e|calha|cai))\s+(?:o\s+|a\s+)?"
        r"(?P<target>.+?)(?:\s+este\s+ano)?$")),
    ("weekday", 0, re.compile(r"^(?:hoje\s+e|e\s+hoje)\s+(?P<target>[a-z]+(?:-feira)?|sabado|domingo)(?:\s+hoje)?$")),
]


def parse(question: str, lang: str) -> Request | None:
    text = words.plain(question)
    if len(text) > MAX_QUESTION_CHARS:
        return None
    text = re.sub(r"[\s?!.]+$", "", text).replace(",", "")
    text = (_PT_LEAD if lang == "pt" else _EN_LEAD).sub("", text)
    text = re.sub(r"\s+(?:please|por favor)$", "", text)
    for kind, offset, pattern in _PT if lang == "pt" else _EN:
        match = pattern.match(text)
        if match is None:
            continue
        groups = match.groupdict()
        return Request(kind, offset, place=groups.get("place"), target=groups.get("target"),
                       preposition=groups.get("prep") or "")
    return None


_MONTH_NUMBERS = {
    words.plain(name): number
    for names in words.MONTHS.values()
    for number, name in enumerate(names, start=1)
}
_DAY_MONTH = re.compile(r"^(?:the\s+)?(?P<day>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+|de\s+)?(?P<month>[a-z]+)$")
_MONTH_DAY = re.compile(r"^(?P<month>[a-z]+)\s+(?:the\s+)?(?P<day>\d{1,2})(?:st|nd|rd|th)?$")


def target_day(target: str, today: date, lang: str) -> tuple[str | None, date] | None:
    """The next date (today or later) of a holiday or a day of the year ("march 3", "25 de abril"), with the
    holiday's name (None for a plain date)."""
    text = words.plain(target).removeprefix("the ") if lang == "en" else words.plain(target)
    holiday = words.HOLIDAYS[lang].get(text)
    if holiday is not None:
        month, day, name = holiday
    else:
        match = _DAY_MONTH.match(text) or _MONTH_DAY.match(text)
        if match is None or match.group("month") not in _MONTH_NUMBERS:
            return None
        month, day = _MONTH_NUMBERS[match.group("month")], int(match.group("day"))
        name = None
    for year in (today.year, today.year + 1, today.year + 2, today.year + 3, today.year + 4):
        try:
            candidate = date(year, month, day)
        except ValueError:
            if month == 2 and day == 29:
                continue  # the next leap year
            return None
        if candidate >= today:
            return name, candidate
    return None


_MAY_BE_CLOCK = re.compile(
    r"time|day|date|year|month|hour|when|until|till|\bhoras?\b|\bdias?\b|\bdata\b|\bano\b|\bm[eê]s\b|natal|"
    r"amanh|ontem|hoje|quando|faltam?|yesterday|tomorrow",
    re.IGNORECASE,
)


class ClockOptions(SolverOptions):
    timezone: timezones.TimezoneName | None = None


class ClockSolver(Solver):
    name = "persona-solver-clock"
    instant = True  # answers without awaiting anything
    aliases = ("clock",)
    description = "The current time and date (optionally in a city or country), holidays, days until a date."
    speculative = True
    default_timeout = 1.0
    Options = ClockOptions
    options: ClockOptions

    def _zone(self, query: Query) -> tzinfo:
        name = query.timezone or self.options.timezone
        return timezones.zone(name) if name else timezones.local_zone()

    async def answer(self, query: Query) -> str | None:
        lang = query.lang_code
        if lang not in words.WEEKDAYS:
            return None
        if not _MAY_BE_CLOCK.search(query.question):
            return None  # most questions of the default persona: no regex set to try
        request = parse(query.question, lang)
        if request is None:
            return None
        here = timezones.now(self._zone(query))
        return say(request, here, lang)


def say(request: Request, here: datetime, lang: str) -> str | None:
    moment, place = here, None
    if request.place:
        found = words.find_place(request.place, lang)
        if found is None:
            return None  # a place we do not know: better no answer than the wrong zone
        place, zone_name = found
        moment = here.astimezone(timezones.zone(zone_name))
        if lang == "pt":
            place = f"{(request.preposition or 'em').capitalize()} {place}"
        else:
            place = f"In {'the ' if words.plain(request.place).startswith('the ') else ''}{place}"
    if request.kind == "time":
        return words.time_is(moment, lang, place, other_day=moment.date() != here.date())
    today = moment.date()
    if request.kind == "date":
        return words.day_is(today + timedelta(days=request.offset), lang, request.offset, place)
    if request.kind == "year":
        return words.year_is(today, lang)
    if request.kind == "month":
        return words.month_is(today, lang)
    if request.kind == "weekday":
        return words.is_weekday(request.target or "", today, lang)
    found_day = target_day(request.target or "", today, lang)
    if found_day is None:
        return None
    name, day = found_day
    if request.kind == "until":
        return words.days_until(name or words.say_date(day, lang, year=False).split(", ", 1)[1],
                                (day - today).days, lang)
    return words.holiday_is(name or "", day, today, lang)
