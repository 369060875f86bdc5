"""Writes the probe pilot's data: the numbers 1-99 as English words, French words and plus one.

Run from the repository root: `python pilots/data/probe/numbers.py`. Eight numbers per task are
held out as eval items (for the pilot's single and mixed modes); the rest are examples. The probe
itself draws from both (roi.pilot.probe_inputs).
"""

from __future__ import annotations

import csv
from pathlib import Path

EN_UNITS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
EN_TENS = {20: "twenty", 30: "thirty", 40: "forty", 50: "fifty", 60: "sixty", 70: "seventy", 80: "eighty", 90: "ninety"}
FR_UNITS = [
    "zéro",
    "un",
    "deux",
    "trois",
    "quatre",
    "cinq",
    "six",
    "sept",
    "huit",
    "neuf",
    "dix",
    "onze",
    "douze",
    "treize",
    "quatorze",
    "quinze",
    "seize",
    "dix-sept",
    "dix-huit",
    "dix-neuf",
]
FR_TENS = {20: "vingt", 30: "trente", 40: "quarante", 50: "cinquante", 60: "soixante"}
EVAL = [3, 14, 27, 38, 45, 59, 66, 83]


def english(n: int) -> str:
    if n < 20:
        return EN_UNITS[n]
    tens, unit = divmod(n, 10)
    return EN_TENS[tens * 10] + (f"-{EN_UNITS[unit]}" if unit else "")


def french(n: int) -> str:
    if n < 20:
        return FR_UNITS[n]
    if n < 70:
        tens, unit = divmod(n, 10)
        if unit == 0:
            return FR_TENS[tens * 10]
        return FR_TENS[tens * 10] + (" et un" if unit == 1 else f"-{FR_UNITS[unit]}")
    if n < 80:  # 70-79: soixante + 10..19
        return "soixante et onze" if n == 71 else f"soixante-{FR_UNITS[n - 60]}"
    if n == 80:
        return "quatre-vingts"
    return f"quatre-vingt-{FR_UNITS[n - 80]}"


TASKS = {"number_en": english, "number_fr": french, "plus_one": lambda n: str(n + 1)}


def main() -> None:
    here = Path(__file__).parent
    for name, answer in TASKS.items():
        for kind, numbers in (("examples", [n for n in range(1, 100) if n not in EVAL]), ("eval", EVAL)):
            with (here / f"{name}_{kind}.csv").open("w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f, lineterminator="\n")
                writer.writerow(["input", "output"])
                writer.writerows([str(n), answer(n)] for n in numbers)


if __name__ == "__main__":
    main()
