"""Phone numbers are masked in any script, digit width or separator, and nothing else is touched."""
import pytest

from handlers.privacy import mask_phones


@pytest.mark.parametrize("text, masked", [
    ("市民13912345678来电", "市民139****5678来电"),
    ("+86 139-1234-5678", "139****5678"),
    ("139 1234 5678", "139****5678"),
    ("139.1234.5678", "139****5678"),
    ("139－1234－5678", "139****5678"),             # full-width hyphens
    ("139\u30001234\u30005678", "139****5678"),      # ideographic spaces
    ("１３９１２３４５６７８", "139****5678"),         # full-width digits
    ("١٣٩١٢٣٤٥٦٧٨", "139****5678"),                  # Arabic-Indic digits
    ("一三九一二三四五六七八", "139****5678"),         # Chinese numerals
    ("电话0755-86001234", "电话0755-****1234"),
    ("（0755）2688 1234", "0755-****1234"),
    ("0755·2688·1234", "0755-****1234"),
])
def test_phone_numbers_are_masked_whatever_their_digits_and_separators(text, masked):
    assert mask_phones(text) == masked


@pytest.mark.parametrize("text", ["订单号 201912345678901", "价格 3.14 元", "２０２６年１２月", "一二三", "1380013800"])
def test_other_numbers_stay_as_they_are(text):
    assert mask_phones(text) == text


# ------------------------------------------------------------------ property: no number survives

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

DIGIT_SETS = ["0123456789", "０１２３４５６７８９", "٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९", "〇一二三四五六七八九"]
SEPARATORS = ["", " ", "-", ".", "\u3000", "－", "·", "\u00a0", "\u2009"]
FILLER = st.text(alphabet=st.sampled_from("市民来电称请联系谢谢，。abc: "), max_size=8)


def _in(digits: str, script: str) -> str:
    return "".join(script[int(d)] for d in digits)


@st.composite
def written_numbers(draw) -> str:
    """A mobile (1[3-9] + 9 digits, maybe +86) or a landline (area code + 7-8 digits), as people write it."""
    script, sep = draw(st.sampled_from(DIGIT_SETS)), draw(st.sampled_from(SEPARATORS))
    if draw(st.booleans()):
        groups = [f"1{draw(st.sampled_from('3456789'))}{draw(st.integers(0, 9))}",
                  f"{draw(st.integers(0, 9999)):04d}", f"{draw(st.integers(0, 9999)):04d}"]
        prefix = draw(st.sampled_from(["", "+86" + sep, "86" + sep]))
    else:
        area = draw(st.sampled_from(["010", "020", "0755", "0769"]))
        groups = [area, f"{draw(st.integers(0, 9999)):0{draw(st.sampled_from([3, 4]))}d}",
                  f"{draw(st.integers(0, 9999)):04d}"]
        prefix = ""
    return prefix + sep.join(_in(g, script) for g in groups)


def _plain_digits(text: str) -> str:
    import unicodedata
    numerals = {c: str(i) for i, c in enumerate("〇一二三四五六七八九")}
    return "".join(str(unicodedata.digit(c)) if unicodedata.digit(c, None) is not None else numerals.get(c, "")
                   for c in text if unicodedata.digit(c, None) is not None or c in numerals)


@settings(max_examples=400, deadline=None)
@given(FILLER, written_numbers(), FILLER)
def test_no_written_phone_number_survives_the_masker(before, number, after):
    masked = mask_phones(before + number + after)
    original = _plain_digits(number)
    # Only the first 3 (or the area code) and the last 4 digits are left, never the whole number.
    assert original not in _plain_digits(masked) and "****" in masked


def test_a_case_number_carrying_a_phone_number_is_masked_in_the_incident(config, sample):
    import json
    from datetime import datetime, timezone

    from handlers.base import Context
    from handlers.intake import to_incident
    report = {**sample("city", "hotline_noise"), "case_no": "12345-13912345678"}
    incident = to_incident("city", json.dumps(report).encode(), Context(config, datetime.now(timezone.utc), {}))
    assert incident.source_ref == "12345-139****5678"
