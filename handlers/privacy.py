"""Citizens' phone numbers never leave the parse stage unmasked."""
import re

# Mainland mobiles (11 digits from 1[3-9]) and landlines with an area code, not inside longer digit runs.
# Landlines as people write them: 0755-26881234, 075526881234, (0755)26881234, （0755）2688 1234, 0755-2688-1234.
_MOBILE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?(1[3-9]\d)[- ]?(\d{4})[- ]?(\d{4})(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)[(（]?(0\d{2,3})[)）]?[- ]?(\d{3,4})[- ]?(\d{4})(?!\d)")


def mask_phones(text: str) -> str:
    text = _MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
    return _LANDLINE.sub(lambda m: f"{m.group(1)}-****{m.group(3)}", text)


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
