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
