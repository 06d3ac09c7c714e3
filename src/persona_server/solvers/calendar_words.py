"""What the clock solver says, in English and Portuguese: times, dates, holidays, and places -> zones.

Kept apart from the question patterns (`clock.py`) so a new language is one more table here and a few patterns
there.
"""

from __future__ import annotations

import unicodedata
from datetime import date, datetime
from functools import cache
from importlib.resources import files

WEEKDAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "pt": ("segunda-feira", "terça-feira", "quarta-feira", "quinta-feira", "sexta-feira", "sábado", "domingo"),
}
MONTHS = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
    "pt": ("janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho", "agosto", "setembro", "outubro",
           "novembro", "dezembro"),
}

# Fixed-date holidays: the words people use (accent-free, lower case) -> (month, day, name as said).
HOLIDAYS: dict[str, dict[str, tuple[int, int, str]]] = {
    "en": {
        **dict.fromkeys(("christmas", "christmas day", "xmas"), (12, 25, "Christmas")),
        "christmas eve": (12, 24, "Christmas Eve"),
        "boxing day": (12, 26, "Boxing Day"),
        **dict.fromkeys(("new year", "new years", "new year's", "new year's day", "new years day", "the new year",
                         "new year day"), (1, 1, "New Year's Day")),
        **dict.fromkeys(("new year's eve", "new years eve"), (12, 31, "New Year's Eve")),
        **dict.fromkeys(("valentine's day", "valentines day", "valentine's", "valentines"),
                        (2, 14, "Valentine's Day")),
        "halloween": (10, 31, "Halloween"),
        **dict.fromkeys(("st patrick's day", "saint patrick's day", "st patricks day", "st. patrick's day"),
                        (3, 17, "St Patrick's Day")),
        **dict.fromkeys(("independence day", "the fourth of july", "fourth of july", "july fourth"),
                        (7, 4, "Independence Day")),
        **dict.fromkeys(("april fools day", "april fools' day", "april fool's day"), (4, 1, "April Fools' Day")),
    },
    "pt": {
        **dict.fromkeys(("natal", "dia de natal"), (12, 25, "o Natal")),
        **dict.fromkeys(("vespera de natal", "consoada"), (12, 24, "a véspera de Natal")),
        **dict.fromkeys(("ano novo", "dia de ano novo", "novo ano"), (1, 1, "o dia de Ano Novo")),
        **dict.fromkeys(("passagem de ano", "vespera de ano novo", "reveillon"), (12, 31, "a passagem de ano")),
        **dict.fromkeys(("dia das bruxas", "halloween"), (10, 31, "o Dia das Bruxas")),
        **dict.fromkeys(("25 de abril", "dia da liberdade"), (4, 25, "o 25 de Abril")),
        "dia de portugal": (6, 10, "o Dia de Portugal"),
        "dia de sao valentim": (2, 14, "o dia de São Valentim"),
    },
}


def plain(text: str) -> str:
    """Lower case without accents or extra spaces: "São Tomé" -> "sao tome"."""
    decomposed = unicodedata.normalize("NFKD", text.lower().replace("\u2019", "'"))
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).split())


@cache
def places() -> dict[str, tuple[str, str, str]]:
    """The shipped table: plain name -> (name as written, its English spelling, IANA zone).

    The first line for a name wins; English answers spell it as the first line without accents ("India", not
    the Portuguese "Índia"), when there is one.
    """
    table: dict[str, tuple[str, str, str]] = {}
    text = files("persona_server.data").joinpath("clock", "places.tsv").read_text(encoding="utf-8")
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, zone_name = line.split("\t")
        key = plain(name)
        if key not in table:
            table[key] = (name, name, zone_name)
        elif name.isascii() and not table[key][1].isascii():
            table[key] = (table[key][0], name, table[key][2])
    return table


def find_place(text: str, lang: str = "en") -> tuple[str, str] | None:
    """(name as said in the language, zone) for "tokyo", "the usa", "Tóquio", "new york city"; None when unknown."""
    key = plain(text).strip(" .,")
    for candidate in (key, key.removeprefix("the "), key.removeprefix("o ").removeprefix("a ")):
        found = places().get(candidate)
        if found:
            return (found[0] if lang == "pt" else found[1]), found[2]
    return None


# -- saying it ------------------------------------------------------------------------------------------------


def say_time(moment: datetime, lang: str) -> str:
    if lang == "pt":
        return f"{moment.hour}:{moment.minute:02d}"
    hour = moment.hour % 12 or 12
    return f"{hour}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"


def say_date(day: date, lang: str, *, year: bool = True) -> str:
    weekday = WEEKDAYS[lang][day.weekday()]
    month = MONTHS[lang][day.month - 1]
    if lang == "pt":
        return f"{weekday}, {day.day} de {month}" + (f" de {day.year}" if year else "")
    return f"{weekday}, {month} {day.day}" + (f", {day.year}" if year else "")


def time_is(moment: datetime, lang: str, place: str | None, *, other_day: bool) -> str:
    clock = say_time(moment, lang)
    if lang == "pt":
        verb = "É" if moment.hour in (0, 1) else "São"
        if place is None:
            return f"{verb} {clock}."
        when = f", {WEEKDAYS['pt'][moment.weekday()]}" if other_day else ""
        return f"{place} {verb.lower()} {clock}{when}."
    if place is None:
        return f"It's {clock}."
    when = f" on {WEEKDAYS['en'][moment.weekday()]}" if other_day else ""
    return f"{place} it's {clock}{when}."


def day_is(day: date, lang: str, offset: int, place: str | None = None) -> str:
    """ "Today is Tuesday, December 1, 2026."; `place` is the asker's "In Tokyo" / "Em Tóquio"."""
    said = say_date(day, lang)
    if lang == "pt":
        if place:
            return f"{place} é {said}."
        lead = {-2: "Anteontem foi", -1: "Ontem foi", 0: "Hoje é", 1: "Amanhã é", 2: "Depois de amanhã é"}[offset]
        return f"{lead} {said}."
    if place:
        return f"{place} it's {said}."
    lead = {-2: "The day before yesterday was", -1: "Yesterday was", 0: "Today is", 1: "Tomorrow is",
            2: "The day after tomorrow is"}[offset]
    return f"{lead} {said}."


def is_weekday(name: str, today: date, lang: str) -> str | None:
    """ "Is it Monday today?" -> "No, today is Tuesday." (None when `name` is no weekday)."""
    names = [plain(day) for day in WEEKDAYS[lang]]
    wanted = plain(name)
    if lang == "pt" and wanted in ("segunda", "terca", "quarta", "quinta", "sexta"):
        wanted += "-feira"
    if wanted not in names:
        return None
    actual = WEEKDAYS[lang][today.weekday()]
    if lang == "pt":
        return f"Sim, hoje é {actual}." if names.index(wanted) == today.weekday() else f"Não, hoje é {actual}."
    return f"Yes, today is {actual}." if names.index(wanted) == today.weekday() else f"No, today is {actual}."


def year_is(day: date, lang: str) -> str:
    return f"Estamos em {day.year}." if lang == "pt" else f"It's {day.year}."


def month_is(day: date, lang: str) -> str:
    month = MONTHS[lang][day.month - 1]
    return f"Estamos em {month}." if lang == "pt" else f"It's {month}."


def holiday_is(name: str, day: date, today: date, lang: str) -> str:
    said = say_date(day, lang)
    if not name:  # a day of the year: "March 3, 2027 is a Wednesday."
        weekday, when = said.split(", ", 1)
        if lang == "pt":
            return f"{when[:1].upper() + when[1:]} é {'um' if day.weekday() >= 5 else 'uma'} {weekday}."
        return f"{when} is a {weekday}."
    if lang == "pt":
        subject = name[:1].upper() + name[1:]
        return f"{subject} é hoje, {said}." if day == today else f"{subject} é {said}."
    return f"{name} is today, {said}." if day == today else f"{name} is on {said}."


def days_until(name: str, days: int, lang: str) -> str:
    if lang == "pt":
        if days == 0:
            return f"{name[:1].upper() + name[1:]} é hoje!"
        return f"{'Falta' if days == 1 else 'Faltam'} {days} {'dia' if days == 1 else 'dias'} para {name}."
    if days == 0:
        return f"{name} is today!"
    return f"There {'is' if days == 1 else 'are'} {days} {'day' if days == 1 else 'days'} until {name}."
