"""The units solver: conversions with pint, temperatures with offsets, targets chosen by the asker's units."""

from __future__ import annotations

import pytest

from persona_server.solvers.units import convert, load_registry, parse


def answer(question: str, units: str = "metric") -> str | None:
    registry = load_registry()
    conversion = parse(question, registry)
    return convert(conversion, registry, units) if conversion else None


@pytest.mark.parametrize(("question", "expected"), [
    ("how many feet in a mile", "There are 5280 feet in a mile."),
    ("How many feet are there in 3 miles?", "There are 15840 feet in 3 miles."),
    ("how many grams in a pound", "There are about 453.59 grams in a pound."),
    ("how many ounces are in a pound", "There are 16 ounces in a pound."),
    ("how many seconds in an hour", "There are 3600 seconds in an hour."),
    ("how many km is 10 miles", "There are about 16.09 kilometers in 10 miles."),
    ("convert 30 celsius to fahrenheit", "30 degrees Celsius is 86 degrees Fahrenheit."),
    ("convert 100 fahrenheit to celsius", "100 degrees Fahrenheit is about 37.78 degrees Celsius."),
    ("what is -40 degrees celsius in fahrenheit", "-40 degrees Celsius is -40 degrees Fahrenheit."),
    ("0 kelvin in celsius", "0 kelvin is -273.15 degrees Celsius."),
    ("30\u00b0C in F", "30 degrees Celsius is 86 degrees Fahrenheit."),
    ("100 km in miles", "100 kilometers is about 62.14 miles."),
    ("what is 5 miles in km", "5 miles is about 8.05 kilometers."),
    ("convert two liters to gallons", "2 liters is about 0.53 gallons."),
    ("what is 60 mph in km/h", "60 miles per hour is about 96.56 kilometers per hour."),
    ("1 inch in cm", "1 inch is 2.54 centimeters."),
    ("how many square feet in an acre", "There are 43560 square feet in an acre."),  # international acre
    ("what is 2 hectares in acres", "2 hectares is about 4.94 acres."),
])
def test_conversions(question: str, expected: str) -> None:
    assert answer(question) == expected


def test_an_open_target_follows_the_askers_units() -> None:
    # Imperial asker, metric height: feet and inches. Metric asker: the other system, since cm is already metric.
    assert answer("how tall is 180 cm", "imperial") == "180 centimeters is about 5 feet 11 inches."
    assert answer("how tall is 6 feet", "metric") == "6 feet is about 1.83 meters."
    assert answer("how heavy is 70 kg", "imperial") == "70 kilograms is about 154.32 pounds."
    assert answer("how far is 10 km", "imperial") == "10 kilometers is about 6.21 miles."
    assert answer("what is 20 celsius in imperial units", "metric") == "20 degrees Celsius is 68 degrees Fahrenheit."


@pytest.mark.parametrize("question", [
    "what is a prime number", "what time is it", "tell me a joke", "how many people live in Lisbon",
    "what is 1 in 3", "convert 3 am to pm", "how many miles in a kilogram", "what is 2+2",
    "how many a in b", "convert 5 meter**1000000 to feet",
])
def test_non_conversions_get_no_answer(question: str) -> None:
    assert answer(question) is None


def test_what_a_unit_is_is_left_to_the_dictionary() -> None:
    assert answer("what is a mile") is None
    assert answer("what is 1 mile", "metric") == "1 mile is about 1.61 kilometers."
    assert answer("what is a mile in feet") == "1 mile is 5280 feet."
