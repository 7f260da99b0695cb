"""Personal data in free text (phone numbers, resident ID numbers, e-mail addresses) masked before anything
is stored, sent, logged or shown, however the number is written.

A number is read on the text's digits of any script (ASCII, full-width, Arabic-Indic, ...), Chinese numerals
(〇一二…九, 零, 幺 for 1, the financial 壹贰叁…) as ASCII digits. Digits with at most MAX_GAP separators
between them (spaces and line breaks of any kind, zero-width and other format characters, dashes, dots, 、,
slashes, brackets) form a run, and where separators stand the run splits into groups. A number is a stretch
of a run that starts and ends where groups do, so a case number's middle digits are never a phone number,
while one written a digit at a time still is. Found in this order, each kind taking digits the later ones
cannot use:
- resident ID numbers: 18 characters (the last may be X) or 15 digits, with a region and a birth date:
  the first 6 and last 2 are kept;
- mobiles (1[3-9] and 9 digits, maybe after +86, 86, 0086 or 0): the first 3 and last 4 are kept;
- landlines with an area code (010 and 02x of 3 digits, 0[3-9]xx of 4) and 7 or 8 digits: the area code
  and the last 4;
- dates (2026-12-06, 2026 12 6, 20261206): kept as written, never a local number;
- local numbers of 8 digits from 2-9: the last 4.
A decimal number (2.35米, 22.526318, 113.966214: one point, no second one, no leading zero but a lone one) is
none of these and joins no run. Masking repeats
until nothing changes, so digits kept of one number never complete another. E-mail addresses keep the first
character of their local part and the domain (z***@example.com).

streams/http/static/common.js masks the same way in the pages (tests/unit/test_privacy.py runs both).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_GAP = 5
_SHORTEST = 8  # digits: a run with fewer holds no number of any kind here
_NUMERALS = {**{c: str(i) for i, c in enumerate("〇一二三四五六七八九")},
             **{c: str(i) for i, c in enumerate("零壹贰叁肆伍陆柒捌玖")},
             **{c: str(i) for i, c in enumerate("零壹貳參肆伍陸柒捌玖")}, "幺": "1"}
_SEPARATORS = "\t\n\v\f\r−.．·・、/／()（）"
_SEPARATOR_CATEGORIES = ("Zs", "Zl", "Zp", "Cf", "Pd")
_CHECK_X = "XxＸｘ"

_DAY = r"(?:0[1-9]|[12]\d|3[01])"
_MONTH = r"(?:0[1-9]|1[0-2])"
_ID = re.compile(rf"[1-8]\d{{5}}(?:(?:18|19|20)\d\d{_MONTH}{_DAY}\d{{3}}[\dX]|\d\d{_MONTH}{_DAY}\d{{3}})")
_DATE = re.compile(rf"(?:19|20)\d\d{_MONTH}{_DAY}")
_MOBILE = re.compile(r"(?:0086|86|0)?(1[3-9]\d)\d{4}(\d{4})")
_LANDLINE = re.compile(r"(0(?:[12]\d|[3-9]\d\d))\d{3,4}(\d{4})")
_LOCAL = re.compile(r"[2-9]\d{3}(\d{4})")
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])([A-Za-z0-9_%+-])[A-Za-z0-9._%+-]*[@＠]([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
_DIGIT_LIKE = re.compile(rf"[\d{''.join(_NUMERALS)}]")
# A decimal number (2.35, 22.526318, 113.966214, 0.5): one point between digits, no second one, and no
# leading zero before it but a lone one (0755.26881234 is a landline). Never a number of any kind here, and
# never joined to the digits around it.
_DECIMAL = re.compile(rf"(?<!{_DIGIT_LIKE.pattern}[.．])(?<!{_DIGIT_LIKE.pattern})({_DIGIT_LIKE.pattern}+)[.．]"
                      rf"{_DIGIT_LIKE.pattern}+(?![.．]?{_DIGIT_LIKE.pattern})")
# Where runs can be, found fast: digits apart by at most MAX_GAP of anything but letters and digits (every
# separator is such a character), which _runs then reads exactly.
_SPAN = re.compile(rf"{_DIGIT_LIKE.pattern}(?:\W{{0,{MAX_GAP}}}{_DIGIT_LIKE.pattern})*")


@dataclass(frozen=True)
class _Run:
    values: str  # its digits in ASCII; an X only ever last
    at: list[int]  # where each is in the text
    starts_group: list[bool]


@dataclass(frozen=True)
class _Number:
    start: int  # of the run's digits
    end: int
    masked: str | None  # None: kept as written (a date)
    opening: str = ""  # a character written just before the number that goes with it, + or (


def _digit(c: str) -> str | None:
    if "0" <= c <= "9":
        return c
    if c in _NUMERALS:
        return _NUMERALS[c]
    value = unicodedata.decimal(c, None)
    return None if value is None else str(value)


def _is_separator(c: str) -> bool:
    return c == " " or c in _SEPARATORS or unicodedata.category(c) in _SEPARATOR_CATEGORIES


def _without_decimals(text: str) -> str:
    """The text with each decimal number's characters as _ (no digit, no separator), in their places."""
    def blank(m: re.Match) -> str:
        whole = m[1]
        return "_" * len(m[0]) if len(whole) == 1 or _digit(whole[0]) != "0" else m[0]
    return _DECIMAL.sub(blank, text)


def _runs(original: str) -> list[_Run]:
    """The runs of at least _SHORTEST digits (shorter ones hold no number)."""
    runs: list[_Run] = []
    text = _without_decimals(original)
    n = len(text)
    for span in _SPAN.finditer(text):
        i, end = span.span()
        if end - i < _SHORTEST or len(_DIGIT_LIKE.findall(text, i, end)) < _SHORTEST:
            continue
        while (first := _DIGIT_LIKE.search(text, i, end)) is not None:
            i = first.start()
            values, at, starts = [_digit(text[i])], [i], [True]
            while True:
                j = i + 1
                while j < n and j - i - 1 < MAX_GAP and _is_separator(text[j]):
                    j += 1
                if j == i + 1 and j < n and text[j] in _CHECK_X:
                    values.append("X")
                    at.append(j)
                    starts.append(True)
                    i = j + 1
                    break
                digit = _digit(text[j]) if j < n else None
                if digit is None:
                    i = j
                    break
                values.append(digit)
                at.append(j)
                starts.append(j > i + 1)
                i = j
            if len(values) >= _SHORTEST:
                runs.append(_Run("".join(values), at, starts))
    return runs


def _numbers(run: _Run) -> list[_Number]:
    values = run.values
    n = len(values)
    bound = [*run.starts_group, True]
    taken = [False] * n
    found: list[_Number] = []

    def claim(lengths: tuple[int, ...], first: str, fits) -> None:
        # free[k]: where the first digit already taken at or after k is (n if none).
        free, nearest = [n] * (n + 1), n
        for k in range(n - 1, -1, -1):
            nearest = k if taken[k] else nearest
            free[k] = nearest
        resume = 0
        for start in range(n):
            if start < resume or not bound[start] or values[start] not in first:
                continue
            for end in (start + length for length in lengths):
                if end <= free[start] and bound[end] and (number := fits(start, end)) is not None:
                    found.append(number)
                    taken[start:end] = [True] * (end - start)
                    resume = end
                    break

    def identity(start: int, end: int) -> _Number | None:
        digits = values[start:end]
        if not _ID.fullmatch(digits):
            return None
        return _Number(start, end, f"{digits[:6]}{'*' * (end - start - 8)}{digits[-2:]}")

    def mobile(start: int, end: int) -> _Number | None:
        m = _MOBILE.fullmatch(values[start:end])
        return m and _Number(start, end, f"{m[1]}****{m[2]}", "+＋")

    def landline(start: int, end: int) -> _Number | None:
        m = _LANDLINE.fullmatch(values[start:end])
        return m and _Number(start, end, f"{m[1]}-****{m[2]}", "(（")

    def date(start: int, end: int) -> _Number | None:
        cuts = [k for k in range(start + 1, end) if bound[k]]
        if cuts and not (len(cuts) == 2 and cuts[0] == start + 4 and cuts[1] - cuts[0] <= 2 and end - cuts[1] <= 2):
            return None
        parts = [values[a:b] for a, b in zip([start, *cuts], [*cuts, end])]
        return _Number(start, end, None) if _DATE.fullmatch("".join(p.rjust(2, "0") for p in parts)) else None

    def local(start: int, end: int) -> _Number | None:
        m = _LOCAL.fullmatch(values[start:end])
        return m and _Number(start, end, f"****{m[1]}")

    claim((18, 15), "12345678", identity)
    claim((15, 13, 12, 11), "018", mobile)
    claim((12, 11, 10), "0", landline)
    claim((8, 7, 6), "12", date)
    claim((8,), "23456789", local)
    return sorted(found, key=lambda number: number.start)


def _mask_numbers(text: str) -> str:
    out, last = [], 0
    for run in _runs(text):
        for number in _numbers(run):
            if number.masked is None:
                continue
            begin = run.at[number.start]
            if begin > last and text[begin - 1] in number.opening:
                begin -= 1
            out += [text[last:begin], number.masked]
            last = run.at[number.end - 1] + 1
    out.append(text[last:])
    return "".join(out)


def mask_personal(text: str) -> str:
    """Phone numbers, resident ID numbers and e-mail addresses in `text`, masked."""
    # Most titles and notes hold neither an @ nor eight digits (the fewest a number here has): one scan.
    if "@" not in text and "＠" not in text and len(_DIGIT_LIKE.findall(text)) < _SHORTEST:
        return text
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    while (masked := _mask_numbers(text)) != text:
        text = masked
    return text


# A digit of an identifier that would read as part of a phone number, as a letter (0 -> g ... 9 -> p).
_AS_LETTER = str.maketrans("0123456789", "ghijklmnop")


def never_masked(identifier: str) -> str:
    """An identifier the system makes (a ticket id, a CAP station, an incident id), as it must be written for
    masking to leave it whole: its hash part is hex, and about one in fifty reads as a phone number
    (T20261207-41523493 as a local number), masked then in a webhook's payload, a page, a notification or
    a source_ref, so the id no longer names anything. The last digit of each number read in it becomes a
    letter, until none is read; every other identifier stays as it was."""
    while True:
        numbers = [(run, number) for run in _runs(identifier) for number in _numbers(run) if number.masked]
        if not numbers:
            return identifier
        chars = list(identifier)
        for run, number in numbers:
            # Its last digit: an ID number's check character X is a letter already.
            at = next(run.at[k] for k in reversed(range(number.start, number.end)) if chars[run.at[k]] not in _CHECK_X)
            chars[at] = chars[at].translate(_AS_LETTER) if chars[at].isascii() else "g"
        identifier = "".join(chars)


_MASKED_PHONE = re.compile(r"\d{3}\*{4}\d{4}|\*{4}")


def mask_phone(value: str) -> str:
    """A field that is a phone number whatever its format: keep only the first 3 and last 4 digits (a value
    masked already stays as it is)."""
    if _MASKED_PHONE.fullmatch(value):
        return value
    digits = re.sub(r"\D", "", value)
    return f"{digits[:3]}****{digits[-4:]}" if len(digits) >= 8 else "****"


def mask_everywhere(value):
    """Every string (keys too) and number inside a JSON-like value, masked: sources put personal data in odd
    fields, and a phone number sent as a JSON number is one too."""
    if isinstance(value, str):
        return mask_personal(value)
    if isinstance(value, dict):
        return {mask_personal(str(k)): mask_everywhere(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_everywhere(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        masked = mask_personal(str(value))
        return value if masked == str(value) else masked
    return value
