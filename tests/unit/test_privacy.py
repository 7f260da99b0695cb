"""Personal data (phone numbers, resident ID numbers, e-mail addresses) is masked however it is written, the
numbers a clerk needs are kept, and the pages' masker (static/common.js) gives the same text as the backend."""
import json
import shutil
import subprocess
import unicodedata
from datetime import date
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from handlers.privacy import mask_everywhere, mask_personal, never_masked
from streams.settings import REPO_ROOT

# Every form of one mobile a probe of the running stack wrote; the masked form keeps its first 3 and last 4.
MOBILE_FORMS = [
    "13912345678", "139 1234 5678", "139-1234-5678", "+86 139 1234 5678", "+8613912345678", "0086 139 1234 5678",
    "139.1234.5678", "139－1234－5678", "139\u30001234\u30005678", "１３９１２３４５６７８", "１３９ １２３４ ５６７８",
    "١٣٩١٢٣٤٥٦٧٨", "一三九一二三四五六七八",
    "1 3 9 1 2 3 4 5 6 7 8", "1-3-9-1-2-3-4-5-6-7-8", "139  1234  5678", "139 - 1234 - 5678", "139、1234、5678",
    "139\u200b1234\u200b5678", "13\u200d9\u20601234\ufeff5678", "1391\n2345678", "139\r\n1234\r\n5678",
    "139 12\n34 5678", "幺三九幺二三四五六七八", "壹叁玖壹贰叁肆伍陆柒捌", "壹參玖壹貳參肆伍陸柒捌",
]


@pytest.mark.parametrize("written", MOBILE_FORMS)
def test_every_written_form_of_a_mobile_is_masked(written):
    assert mask_personal(f"市民{written}来电") == "市民139****5678来电"


@pytest.mark.parametrize("text, masked", [
    ("电话0755-86001234", "电话0755-****1234"),
    ("（0755）2688 1234", "0755-****1234"),
    ("(0755)26881234", "0755-****1234"),
    ("0755·2688·1234", "0755-****1234"),
    ("010-6234 5678", "010-****5678"),
    ("0755.2688.1234", "0755-****1234"),
    ("0755.26881234", "0755-****1234"),               # a leading zero: no decimal number
    ("０７５５－２６８８１２３４", "0755-****1234"),
    ("联系 2688 1234 王先生", "联系 ****1234 王先生"),     # an 8-digit local number
    ("联系26881234", "联系****1234"),
    ("案件 12345-13912345678", "案件 12345-139****5678"),  # a case number carrying a mobile
    ("房号502 13912345678", "房号502 139****5678"),
    ("电话139 2026 12 06", "电话139****1206"),          # digits that also read as a date are a phone's
    ("水位2.35 13912345678", "水位2.35 139****5678"),  # a decimal number joins no run
])
def test_landlines_local_numbers_and_numbers_beside_others_are_masked(text, masked):
    assert mask_personal(text) == masked


@pytest.mark.parametrize("text, masked", [
    ("身份证号44030519900101123X", "身份证号440305**********3X"),
    ("身份证号44030519900101123x。", "身份证号440305**********3X。"),
    ("证件 4403 0519 9001 0112 34", "证件 440305**********34"),
    ("证件 440305 19900101 1234", "证件 440305**********34"),  # its birth date is not read as a date
    ("老证 110105491231002", "老证 110105*******02"),         # the old 15-digit numbers
    ("４４０３０５１９９００１０１１２３Ｘ", "440305**********3X"),
    # A mobile written into an ID number: what is left of one never completes the other.
    ("440305199001011391 2345678", "440305**********91 2345678"),
    ("4403 0519 9001 0112 13 912345678", "440305**********139****5678"),
])
def test_resident_id_numbers_keep_only_their_first_6_and_last_2(text, masked):
    assert mask_personal(text) == masked


@pytest.mark.parametrize("text, masked", [
    ("邮箱 zhang.san@example.com。", "邮箱 z***@example.com。"),
    ("13912345678@139.com", "1***@139.com"),
    ("ZHANG_SAN＠qq.com", "Z***@qq.com"),
    ("联系邮箱wang-wu+soc@mail.sz.gov.cn或电话", "联系邮箱w***@mail.sz.gov.cn或电话"),
])
def test_email_addresses_keep_the_first_character_and_the_domain(text, masked):
    assert mask_personal(text) == masked


KEPT = [
    "渔港路88号3栋502室", "水位2.35米，超警0.5米", "水位4.52米", "粤B12345", "粤B·D12345", "14:30", "14:30:59",
    "2026-12-06", "2026-12-06 14:30", "2026/12/6 9:05", "2026-1-5 14:30", "2026.12.06", "2026年12月6日", "20261206",
    "2026-12-06T14:30:00+08:00", "坐标22.52631,113.96621", "22.526318, 113.966214", "(22.52631, 113.96621)", "113.966214 22.526318",
    "22.526318 113.966214", "经度 113.9662145 纬度 22.5263181", "0.5", "192.168.100.100",
    "案件编号20260512001", "订单号 201912345678901", "工单 O311-20261206-a1b2c3", "WO-2026-12-06-0042",
    "12345热线转办", "价格 3.14 元", "¥1,234,567.89", "２０２６年１２月", "一二三", "三防", "第1-3条",
    "1380013800", "1234567", "编号 913800138000123", "温度36.5℃", "IV级", "0.1mm", "8.5级",
]


@pytest.mark.parametrize("text", KEPT)
def test_numbers_a_clerk_needs_are_kept(text):
    assert mask_personal(text) == text


def test_masking_twice_changes_nothing_more():
    text = "市民王女士（13912345678，身份证44030519900101123X，zhang@example.com）反映0755-26881234"
    assert mask_personal(mask_personal(text)) == mask_personal(text)


@pytest.mark.parametrize("made, written", [
    ("T20261207-41523493", "T20261207-4152349j"),      # a hash that reads as a local number
    ("floo-a41523493bcdef12", "floo-a4152349jbcdef12"),  # inside letters too
    ("x13912345678y", "x1391234567oy"),                # a mobile
    ("T20261207-4152349a", "T20261207-4152349a"),      # most ids stay as they were
    ("O311-20261207-123456789012", "O311-20261207-123456789012"),
    ("k44030519900101123X", "k4403051990010112jX"),       # a resident ID number's check X stays
])
def test_an_identifier_the_system_makes_is_written_so_masking_leaves_it_whole(made, written):
    assert never_masked(made) == written
    assert mask_personal(written) == written
    assert never_masked(written) == written


def test_every_string_number_and_key_of_a_json_value_is_masked():
    value = {"13912345678": [{"note": "电话139 1234 5678", "phone": 13912345678, "level": 2.35, "ok": True}]}
    assert mask_everywhere(value) == {"139****5678": [{"note": "电话139****5678", "phone": "139****5678",
                                                       "level": 2.35, "ok": True}]}


# ------------------------------------------------------------------ property: no number survives

SCRIPTS = ["0123456789", "０１２３４５６７８９", "٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९", "〇一二三四五六七八九",
           "零幺二三四五六七八九", "零壹贰叁肆伍陆柒捌玖", "零壹貳參肆伍陸柒捌玖"]
# Between two digits: nothing, or what people (and their editors) put there.
GAPS = ["", " ", "  ", "-", " - ", "、", "\u200b", "\u2060", "\ufeff", "\u00ad", "\n", "\r\n", "\u3000",
        "\u00a0", "\u2009", "－", "—", "·", "/", "\t"]
# Not dots: one between digits is a decimal point (2.35, 113.966214); dotted numbers are listed above.
_NUMERALS = {c: str(i) for script in SCRIPTS[4:] for i, c in enumerate(script)}
# Text around a number: anything but digits, so that the digits left in the output are the number's.
FILLER = st.text(st.characters(blacklist_categories=("Nd", "Cs"), blacklist_characters=[*_NUMERALS, "@", "＠"]),
                 max_size=12)


def plain_digits(text: str) -> str:
    return "".join(_NUMERALS.get(c) or str(unicodedata.decimal(c)) for c in text
                   if c in _NUMERALS or unicodedata.decimal(c, None) is not None)


def _reads_as_date(groups: list[str]) -> bool:
    """Whether groups of digits written apart contain a date the masker keeps (2026-12-06, 20261206)."""
    def real(y: str, m: str, d: str) -> bool:
        try:
            return 1900 <= int(y) <= 2099 and date(2000, int(m), 1) and 1 <= int(d) <= 31
        except ValueError:
            return False
    return (any(len(g) == 8 and real(g[:4], g[4:6], g[6:]) for g in groups)
            or any(len(y) == 4 and 1 <= len(m) <= 2 and 1 <= len(d) <= 2 and real(y, m, d)
                   for y, m, d in zip(groups, groups[1:], groups[2:])))


@st.composite
def written(draw, digits: str, tail: str = "") -> tuple[str, list[str]]:
    """`digits` as someone might write them: any script (one for all, or one per digit), any separators;
    `tail` (an ID number's X) written right after. Also the groups the separators make."""
    scripts = [draw(st.sampled_from(SCRIPTS))] * len(digits)
    if draw(st.booleans()):
        scripts = [draw(st.sampled_from(SCRIPTS)) for _ in digits]
    out, groups = [], [""]
    for k, (d, script) in enumerate(zip(digits, scripts)):
        if k:
            gap = draw(st.sampled_from(GAPS))
            out.append(gap)
            if gap:
                groups.append("")
        out.append(script[int(d)])
        groups[-1] += d
    return "".join(out) + tail, groups


def _digits(draw, n: int, first: str = "0123456789") -> str:
    return draw(st.sampled_from(first)) + "".join(draw(st.sampled_from("0123456789")) for _ in range(n - 1))


@st.composite
def personal_numbers(draw) -> tuple[str, str, str]:
    """(how it is written, its digits, the digits its masked form keeps)."""
    kind = draw(st.sampled_from(["mobile", "landline", "local", "id18", "id15"]))
    if kind == "mobile":
        digits = "1" + draw(st.sampled_from("3456789")) + _digits(draw, 9)
        prefix = draw(st.sampled_from(["", "+86", "86", "0086", "＋８６"])) if draw(st.booleans()) else ""
        text, _ = draw(written(digits))
        return prefix + (draw(st.sampled_from(GAPS)) if prefix else "") + text, digits, digits[:3] + digits[-4:]
    if kind == "landline":
        area = draw(st.sampled_from(["010", "020", "021", "0755", "0769", "0571"]))
        local = _digits(draw, draw(st.sampled_from([7, 8])), "23456789")
        text, _ = draw(written(area + local))
        return text, area + local, area + local[-4:]
    if kind == "local":
        digits = _digits(draw, 8, "23456789")
        text, groups = draw(written(digits))
        assume(not _reads_as_date(groups))  # documented: a number that reads as a date is kept as one
        return text, digits, digits[-4:]
    born = draw(st.dates(date(1900, 1, 1), date(2099, 12, 31)))
    region = _digits(draw, 6, "12345678")
    if kind == "id15":
        assume(born.year < 2000)
        digits = f"{region}{born:%y%m%d}{_digits(draw, 3)}"
        text, _ = draw(written(digits))
        return text, digits, digits[:6] + digits[-2:]
    body = f"{region}{born:%Y%m%d}{_digits(draw, 3)}"
    check = "10X98765432"[sum(int(d) * (2 ** (17 - k) % 11) for k, d in enumerate(body)) % 11]
    if check == "X":
        text, _ = draw(written(body, draw(st.sampled_from("Xx"))))
        return text, body, body[:6] + body[-1:]
    text, _ = draw(written(body + check))
    return text, body + check, body[:6] + body[-1:] + check


@settings(max_examples=1500, deadline=None)
@given(FILLER, personal_numbers(), FILLER)
def test_no_written_personal_number_survives_the_masker(before, number, after):
    text, digits, kept = number
    masked = mask_personal(before + text + after)
    assert digits not in plain_digits(masked)
    assert plain_digits(masked) == kept, masked  # nothing but what the masked form keeps, in ASCII


@settings(max_examples=300, deadline=None)
@given(FILLER, st.from_regex(r"[A-Za-z0-9_%+-][A-Za-z0-9._%+-]{1,20}", fullmatch=True),
       st.sampled_from(["example.com", "qq.com", "139.com", "mail.sz.gov.cn"]), FILLER)
def test_no_email_local_part_survives_the_masker(before, local, domain, after):
    masked = mask_personal(f"{before} {local}@{domain} {after}")
    assert f"{local}@" not in masked and f" {local[0]}***@{domain} " in masked


# ------------------------------------------------------------------ the pages mask the same way

def _node() -> str:
    """Node.js: the one Playwright (a test dependency) brings, else one on PATH."""
    import playwright
    bundled = Path(playwright.__file__).parent / "driver" / "node"
    found = str(bundled) if bundled.exists() else shutil.which("node")
    if found is None:
        pytest.fail("no Node.js: install the test extras (Playwright brings one) or put node on PATH")
    return found


RUN_COMMON_JS = """
const fs = require("fs"), vm = require("vm");
const page = { window: {}, document: { documentElement: {} }, navigator: { language: "zh-CN" },
               localStorage: { getItem: () => null, setItem: () => {} } };
vm.createContext(page);
vm.runInContext(fs.readFileSync(process.argv[1], "utf8"), page);
const texts = JSON.parse(fs.readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(texts.map((t) => page.window.SOC.maskPersonal(t))));
"""


def masked_by_the_pages(texts: list[str]) -> list[str]:
    common = REPO_ROOT / "streams" / "http" / "static" / "common.js"
    done = subprocess.run([_node(), "-e", RUN_COMMON_JS, str(common)], input=json.dumps(texts),
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def test_the_pages_mask_every_listed_form_like_the_backend():
    texts = ([f"市民{w}来电" for w in MOBILE_FORMS] + KEPT
             + ["身份证号44030519900101123X", "4403 0519 9001 0112 13 912345678", "老证 110105491231002",
                "邮箱 zhang.san@example.com。", "（0755）2688 1234", "联系 2688 1234 王先生", "𝟏𝟑𝟗𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖",
                "电话139 2026 12 06"])
    assert masked_by_the_pages(texts) == [mask_personal(t) for t in texts]


@settings(max_examples=8, deadline=None)
@given(st.lists(st.tuples(FILLER, personal_numbers(), FILLER).map(lambda t: t[0] + t[1][0] + t[2]),
                min_size=60, max_size=60))
def test_the_pages_mask_generated_numbers_like_the_backend(texts):
    assert masked_by_the_pages(texts) == [mask_personal(t) for t in texts]


def test_a_case_number_carrying_a_phone_number_is_masked_in_the_incident(config, sample):
    from datetime import datetime, timezone

    from handlers.base import Context
    from handlers.intake import to_incident
    report = {**sample("city", "hotline_noise"), "case_no": "12345-13912345678"}
    incident = to_incident("city", json.dumps(report).encode(), Context(config, datetime.now(timezone.utc), {}))
    assert incident.source_ref == "12345-139****5678"
