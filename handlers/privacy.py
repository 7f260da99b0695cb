"""Citizens' phone numbers never leave the parse stage unmasked."""
import re
import unicodedata

# Mainland mobiles (11 digits from 1[3-9]) and landlines with an area code, not inside longer digit runs.
# Landlines as people write them: 0755-26881234, 075526881234, (0755)26881234, （0755）2688 1234, 0755-2688-1234.
# Matched on a copy of the text whose digits of any script (full-width １３９, Arabic-Indic, Chinese
# numerals 一三九) read as ASCII, character for character, so the masks land on the original's positions
# (streams/http/static/common.js masks the same way).
# Separators between the groups: hyphens and dashes of any width, spaces (also the ideographic one), dots.
_SEP = r"[-‐‑‒–—―－﹣\s\u3000.．·・/]?"
_MOBILE = re.compile(rf"(?<!\d)(?:\+?86{_SEP})?(1[3-9]\d){_SEP}(\d{{4}}){_SEP}(\d{{4}})(?!\d)")
_LANDLINE = re.compile(rf"(?<!\d)[(（]?(0\d{{2,3}})[)）]?{_SEP}(\d{{3,4}}){_SEP}(\d{{4}})(?!\d)")
_NUMERALS = {**{c: str(i) for i, c in enumerate("〇一二三四五六七八九")}, "零": "0"}


def _ascii_digits(text: str) -> str:
    return "".join(str(unicodedata.digit(c)) if not c.isascii() and unicodedata.digit(c, None) is not None
                   else _NUMERALS.get(c, c) for c in text)


def _mask(pattern: re.Pattern, text: str, join: str) -> str:
    """Each match becomes its first group, join, ****, its last group (in ASCII digits, as the pages show it)."""
    plain = _ascii_digits(text)
    out, last = [], 0
    for m in pattern.finditer(plain):
        out += [text[last:m.start()], m.group(1), join, "****", m.group(3)]
        last = m.end()
    out.append(text[last:])
    return "".join(out)


def mask_phones(text: str) -> str:
    return _mask(_LANDLINE, _mask(_MOBILE, text, ""), "-")


def mask_phone(value: str) -> str:
    """A field that is a phone number whatever its format: keep only the first 3 and last 4 digits."""
    digits = re.sub(r"\D", "", value)
    return f"{digits[:3]}****{digits[-4:]}" if len(digits) >= 8 else "****"


def mask_everywhere(value):
    """Every string inside a JSON-like value, masked: sources put phone numbers in odd fields."""
    if isinstance(value, str):
        return mask_phones(value)
    if isinstance(value, dict):
        return {k: mask_everywhere(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_everywhere(v) for v in value]
    return value
