"""`persona-solver-units`: unit conversions with `pint` — "how many feet in a mile", "convert 30 celsius to
fahrenheit", "100 km in miles", "how tall is 180 cm".

Temperatures convert with their offsets (pint's offset units, built as quantities, never multiplied). When the
question names no target, the request's `units` (metric / imperial) picks one suited to the size; a quantity
already in that system is given in the other one. Only the common units people ask about are accepted (pint
also knows "a" as a year and "in" as an inch), so chit-chat that happens to parse is left alone.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from persona_server.cache import cache_dir, loading_static_data
from persona_server.query import Query
from persona_server.solvers.base import BlockingSolver, SolverOptions
from persona_server.solvers.numbers import DIGITS, NUMBER_WORDS, parse_digits, say_number, words_value

if TYPE_CHECKING:
    import pint

MAX_QUESTION_CHARS = 160
MAX_UNIT_CHARS = 40
MAX_MAGNITUDE = 1e30

# Names people use that pint reads differently, or not at all ("c" would be the speed of light).
_ALIASES = {
    "c": "degC", "celsius": "degC", "centigrade": "degC", "degrees c": "degC", "degrees celsius": "degC",
    "degree celsius": "degC", "degrees centigrade": "degC", "f": "degF", "fahrenheit": "degF",
    "degrees f": "degF", "degrees fahrenheit": "degF", "degree fahrenheit": "degF", "k": "kelvin",
    "kelvins": "kelvin", "degrees kelvin": "kelvin", "fluid ounces": "fluid_ounce", "fluid ounce": "fluid_ounce",
    "fl oz": "fluid_ounce", "nautical miles": "nautical_mile", "nautical mile": "nautical_mile",
    "kph": "km/h", "kmh": "km/h", "km/h": "km/h", "kilometers per hour": "km/h", "kilometres per hour": "km/h",
    "km per hour": "km/h", "miles per hour": "mph", "mile per hour": "mph", "meters per second": "m/s",
    "metres per second": "m/s", "tonnes": "metric_ton", "tonne": "metric_ton", "metric tons": "metric_ton",
    "metric ton": "metric_ton", "stones": "stone", "light years": "light_year", "light year": "light_year",
    "sq ft": "ft**2", "sq m": "m**2", "sq km": "km**2", "sq mi": "mi**2", "square miles": "mi**2",
    "square kilometers": "km**2", "square kilometres": "km**2", "square meters": "m**2", "square metres": "m**2",
    "square feet": "ft**2", "square foot": "ft**2", "square inches": "inch**2", "cubic meters": "m**3",
    "cubic metres": "m**3", "cubic feet": "ft**3", "cubic centimeters": "cm**3", "cc": "cm**3",
    "acre": "international_acre", "acres": "international_acre",
}

# pint's canonical names of the units accepted (each part of a compound unit must be one of these).
_ALLOWED = frozenset(
    "meter kilometer centimeter millimeter micrometer nanometer mile yard foot inch nautical_mile light_year "
    "gram kilogram milligram microgram metric_ton ton pound ounce stone "
    "liter milliliter centiliter deciliter gallon quart pint cup fluid_ounce tablespoon teaspoon "
    "degree_Celsius degree_Fahrenheit kelvin "
    "second minute hour day week year month millisecond decade century "
    "mile_per_hour kilometer_per_hour knot international_acre hectare "
    "joule kilojoule calorie kilocalorie kilowatt_hour watt kilowatt horsepower "
    "pascal kilopascal bar millibar psi atmosphere "
    "bit byte kilobyte megabyte gigabyte terabyte kibibyte mebibyte gibibyte".split()
)
_METRIC = frozenset(
    "meter kilometer centimeter millimeter micrometer nanometer gram kilogram milligram microgram metric_ton "
    "liter milliliter centiliter deciliter degree_Celsius kelvin kilometer_per_hour hectare".split()
)

# Spoken names where adding an "s" is wrong.
_SPOKEN: dict[str, tuple[str, str]] = {
    "foot": ("foot", "feet"), "inch": ("inch", "inches"), "degree_Celsius": ("degree Celsius", "degrees Celsius"),
    "degree_Fahrenheit": ("degree Fahrenheit", "degrees Fahrenheit"), "kelvin": ("kelvin", "kelvin"),
    "mile_per_hour": ("mile per hour", "miles per hour"),
    "kilometer_per_hour": ("kilometer per hour", "kilometers per hour"), "metric_ton": ("tonne", "tonnes"),
    "stone": ("stone", "stone"), "century": ("century", "centuries"), "psi": ("psi", "psi"),
    "horsepower": ("horsepower", "horsepower"), "international_acre": ("acre", "acres"),
}

# Targets for a question that names none: (limit in the dimension's base unit, unit) in ascending size.
_PREFERRED: dict[str, dict[str, list[tuple[float, str]]]] = {
    "[length]": {
        "metric": [(0.01, "millimeter"), (1, "centimeter"), (1000, "meter"), (float("inf"), "kilometer")],
        "imperial": [(0.3048, "inch"), (1609.344, "foot"), (float("inf"), "mile")],
    },
    "[mass]": {
        "metric": [(1, "gram"), (1000, "kilogram"), (float("inf"), "metric_ton")],
        "imperial": [(0.45359237, "ounce"), (907.18474, "pound"), (float("inf"), "ton")],
    },
    "[temperature]": {"metric": [(float("inf"), "degC")], "imperial": [(float("inf"), "degF")]},
    "[length] ** 3": {
        "metric": [(0.001, "milliliter"), (float("inf"), "liter")],
        "imperial": [(0.000946, "fluid_ounce"), (float("inf"), "gallon")],
    },
    "[length] / [time]": {"metric": [(float("inf"), "km/h")], "imperial": [(float("inf"), "mph")]},
    "[length] ** 2": {
        "metric": [(10000, "m**2"), (float("inf"), "hectare")],
        "imperial": [(4046.8564224, "ft**2"), (float("inf"), "international_acre")],
    },
}


class UnitsRegistry:
    """One `pint` registry for the process; its parse cache is not thread-safe.

    Building it parses pint's definition files (≈ 0.17 s); pint's own cache of the parsed files in our cache
    directory brings that to ≈ 0.02 s after the first start (importing pint is another ≈ 0.15 s).
    """

    def __init__(self) -> None:
        import pint

        # pint's cache records the paths of its definition files: keyed by where this pint is installed too, so
        # another virtualenv (or a deleted one) never hands this one paths that are not there.
        where = hashlib.sha256(str(Path(pint.__file__).resolve().parent).encode()).hexdigest()[:12]
        try:
            folder: Path | None = cache_dir(f"pint-{pint.__version__}-{where}")
        except OSError:
            folder = None  # a read-only home: parse the definitions every time
        with loading_static_data():
            try:
                self.ureg = pint.UnitRegistry(cache_folder=folder)
            except OSError:
                if folder is None:
                    raise
                self.ureg = pint.UnitRegistry()  # an unusable cache: parse the definitions instead
            # pint's acre is the US survey acre (retired in 2023); people mean the international one.
            self.ureg.define("international_acre = 43560 * foot ** 2")
        self.lock = threading.Lock()

    def unit(self, text: str) -> pint.Unit | None:
        text = re.sub(r"\s+", " ", text.strip().lower().replace("°", " degrees ")).strip()
        text = re.sub(r"^(?:of|the)\s+", "", text)
        name = _ALIASES.get(text)
        if name is None:
            # Names only, at most two words and one "per": no numbers or operators reach pint's parser.
            if len(text) > MAX_UNIT_CHARS or not re.fullmatch(r"[a-z]+(?: [a-z]+)?(?: ?/ ?[a-z]+)?", text):
                return None
            name = text
        try:
            unit = self.ureg.parse_units(name)
        except Exception:  # pint raises several error types for names it does not know
            return None
        parts = dict(unit._units)
        if not parts or any(part not in _ALLOWED for part in parts):
            return None
        return unit


_registry: UnitsRegistry | None = None
_registry_lock = threading.Lock()


def load_registry() -> UnitsRegistry:
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = UnitsRegistry()
        return _registry


# -- understanding the question -------------------------------------------------------------------------------

_NUM = r"(?:-?" + DIGITS.pattern + r")"
_LEAD = re.compile(r"^(?:(?:hey|ok|okay|so|please|can you|could you|would you|tell me|do you know)[,\s]+)+")
_HOW_MANY = re.compile(
    r"^how\s+many\s+(?P<to>.+?)\s+(?:are\s+(?:there\s+)?|is\s+(?:there\s+)?|make\s+)?(?:in|is|are|make|equals?)\s+"
    r"(?P<from>.+)$"
)
_CONVERT = re.compile(
    r"^(?:convert\s+|what\s+is\s+|what's\s+|whats\s+|how\s+much\s+is\s+|how\s+many\s+)?"
    r"(?P<from>.+?)\s+(?:in|to|into|in\s+to|as|is\s+how\s+many|equals\s+how\s+many|is\s+what\s+in)\s+"
    r"(?P<to>.+)$"
)
_OPEN = re.compile(
    r"^(?:convert|what\s+is|what's|whats|how\s+much\s+is|how\s+(?:tall|high|long|far|big|heavy|wide|deep|hot|"
    r"cold|warm|fast|large)\s+is)\s+(?P<from>.+?)(?:\s+in\s+(?P<system>metric|imperial|american|us)"
    r"(?:\s+units)?)?$"
)


@dataclass(frozen=True, slots=True)
class Conversion:
    value: float
    source: Any  # pint.Unit
    target: Any | None  # None: let the asker's system choose
    how_many: bool = False
    system: str | None = None


def split_quantity(text: str) -> tuple[Fraction, str] | None:
    """ "3.5 miles" -> (3.5, "miles"); "a mile" -> (1, "mile"); "thirty celsius" -> (30, "celsius")."""
    text = text.strip()
    match = re.match(_NUM + r"\s*", text)
    if match:
        return parse_digits(match.group().strip().lstrip("-")) * (-1 if text.startswith("-") else 1), \
            text[match.end():]
    words = text.split()
    j = 0
    while j < len(words) and (words[j] in NUMBER_WORDS or words[j] in ("a", "an", "and")):
        j += 1
    if j == 0 or j == len(words):
        return None
    value = words_value(words[:j])
    return (value, " ".join(words[j:])) if value is not None else None


def _normalize(question: str) -> str:
    text = question.replace("\u2019", "'").strip().lower()
    return _LEAD.sub("", re.sub(r"[\s?!.]+$", "", re.sub(r"\s+", " ", text)))


def may_be_conversion(question: str) -> bool:
    """A cheap first look, without pint: whether the question has the shape of a conversion with a quantity."""
    text = _normalize(question)
    if len(text) > MAX_QUESTION_CHARS:
        return False
    if _HOW_MANY.match(text):
        return True
    match = _CONVERT.match(text) or _OPEN.match(text)
    return bool(match and split_quantity(match.group("from")))


def parse(question: str, units: UnitsRegistry) -> Conversion | None:
    text = _normalize(question)
    if len(text) > MAX_QUESTION_CHARS:
        return None
    match = _HOW_MANY.match(text)
    if match:
        quantity = split_quantity(match.group("from")) or (Fraction(1), match.group("from"))
        source, target = units.unit(quantity[1]), units.unit(match.group("to"))
        if source is not None and target is not None:
            return Conversion(float(quantity[0]), source, target, how_many=True)
    match = _CONVERT.match(text)
    if match:
        quantity = split_quantity(match.group("from"))
        system = match.group("to").replace(" units", "").replace(" system", "")
        if quantity is not None:
            source = units.unit(quantity[1])
            if system in ("metric", "imperial", "american", "us"):
                return Conversion(float(quantity[0]), source, None, system=system) if source is not None else None
            target = units.unit(match.group("to"))
            if source is not None and target is not None:
                return Conversion(float(quantity[0]), source, target)
    match = _OPEN.match(text)
    # "What is a mile" asks what a mile is (the dictionary's); "what is 1 mile" asks for a conversion.
    if match and not re.match(r"(?:a|an)\s", match.group("from")):
        quantity = split_quantity(match.group("from"))
        if quantity is not None:
            source = units.unit(quantity[1])
            if source is not None:
                return Conversion(float(quantity[0]), source, None, system=match.group("system"))
    return None


# -- converting and saying it ---------------------------------------------------------------------------------


def _name(unit: Any, plural: bool) -> str:
    parts = list(unit._units.items())
    if len(parts) == 1 and parts[0][1] in (2, 3):
        prefix = "square" if parts[0][1] == 2 else "cubic"
        return f"{prefix} {_part_name(parts[0][0], plural)}"
    if len(parts) == 2 and parts[0][1] == 1 and parts[1][1] == -1:
        return f"{_part_name(parts[0][0], plural)} per {_part_name(parts[1][0], False)}"
    return _part_name(parts[0][0], plural)


def _part_name(name: str, plural: bool) -> str:
    singular, many = _SPOKEN.get(name, (name.replace("_", " "), name.replace("_", " ") + "s"))
    return many if plural else singular


def _amount(value: float, unit: Any, *, places: int) -> tuple[str, bool]:
    """ "62.14 miles", and whether the figure is exact."""
    rounded = round(value, places)
    exact = abs(value - rounded) <= 1e-9 * max(1.0, abs(value))
    words, _ = say_number(Fraction(rounded).limit_denominator(10**places) if exact else value, places=places)
    return f"{words} {_name(unit, words != '1')}", exact


def _a(unit: Any) -> str:
    name = _name(unit, False)
    return f"{'an' if name[0] in 'aeiou' or name.startswith('hour') else 'a'} {name}"


def _target(quantity: Any, system: str, ureg: Any) -> Any | None:
    dimension = str(quantity.dimensionality)
    choices = _PREFERRED.get(dimension)
    if choices is None:
        return None
    source_system = "metric" if all(part in _METRIC for part in quantity.units._units) else "imperial"
    if source_system == system:
        system = "imperial" if system == "metric" else "metric"
    base = abs(quantity.to_base_units().magnitude) if dimension != "[temperature]" else 0
    if dimension == "[length] ** 3":
        base = abs(quantity.to("m**3").magnitude)
    elif dimension == "[length] ** 2":
        base = abs(quantity.to("m**2").magnitude)
    elif dimension == "[mass]":
        base = abs(quantity.to("kg").magnitude)
    for limit, name in choices[system]:
        if base < limit:
            return ureg.parse_units(name)
    return None


def convert(conversion: Conversion, units: UnitsRegistry, default_system: str) -> str | None:
    ureg = units.ureg
    source = ureg.Quantity(conversion.value, conversion.source)
    system = {"american": "imperial", "us": "imperial"}.get(conversion.system or "", conversion.system)
    target = conversion.target
    if target is None:
        target = _target(source, system or default_system, ureg)
        if target is None:
            return None
    if source.dimensionality != ureg.Quantity(1, target).dimensionality or conversion.source == target:
        return None
    result = source.to(target)
    magnitude = float(result.magnitude)
    if abs(magnitude) > MAX_MAGNITUDE or abs(conversion.value) > MAX_MAGNITUDE:
        return None
    places = 2
    given, _ = _amount(conversion.value, conversion.source, places=4)
    if conversion.how_many:
        found, exact = _amount(magnitude, target, places=places)
        where = _a(conversion.source) if conversion.value == 1 else given
        verb = "is" if found.startswith("1 ") else "are"
        return f"There {verb} {'' if exact else 'about '}{found} in {where}."
    if str(target) == "foot" and conversion.target is None and abs(magnitude) < 10:
        inches = round(abs(magnitude) * 12)
        feet, inches = divmod(inches, 12)
        feet_words = f"{feet} {'foot' if feet == 1 else 'feet'}"
        tail = f" {inches} {'inch' if inches == 1 else 'inches'}" if inches else ""
        return _sentence(f"{given} is about {feet_words}{tail}")
    found, exact = _amount(magnitude, target, places=places)
    return _sentence(f"{given} is {'' if exact else 'about '}{found}")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


# -- the solver -----------------------------------------------------------------------------------------------


class UnitsOptions(SolverOptions):
    pass


class UnitsSolver(BlockingSolver):
    name = "persona-solver-units"
    aliases = ("units",)
    description = "Converts units (length, mass, volume, temperature, speed, area, ...). Argument: the conversion."
    speculative = True
    default_timeout = 2.0
    Options = UnitsOptions

    _units: UnitsRegistry | None = None

    def load_sync(self) -> None:
        self._units = load_registry()

    def solve(self, query: Query) -> str | None:
        if query.lang_code != "en":
            return None
        units = self._units or load_registry()
        with units.lock:
            conversion = parse(query.question, units)
            if conversion is None:
                return None
            return convert(conversion, units, query.units)

    async def answer(self, query: Query) -> str | None:
        # This solver runs (speculatively) for every question of the default persona: most are no conversion,
        # and a few microseconds of regex spare them the thread hop.
        if query.lang_code != "en" or not may_be_conversion(query.question):
            return None
        return await super().answer(query)
