"""DingTalk's card callback, read as DingTalk documents it: its published test vector, a forged signature,
a stale timestamp, a message for another app, and the card's button press. No I/O."""
from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from handlers import chat_cards as cc
from schemas.records import TicketAction

# DingTalk's published test vector for its callback encryption (the DingTalkEncryptor demo and SDK tests).
VECTOR = {
    "token": "123456",
    "aes_key": "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij",
    "owner_key": "suite4xxxxxxxxxxxxxxx",
    "timestamp": "1445827045067",
    "nonce": "nEXhMP4r",
    "signature": "5a65ceeef9aab2d149439f82dc191dd6c5cbe2c0",
    "encrypt": "1a3NBxmCFwkCJvfoQ7WhJHB+iX3qHPsc9JbaDznE1i03peOk1LaOQoRz3+nlyGNhwmwJ3vDMG+OzrHMeiZI7gTRWVdUBmfxjZ8Ej23"
               "JVYa9VrYeJ5as7XM/ZpulX8NEQis44w53h1qAgnC3PRzM7Zc/D6Ibr0rgUathB6zRHP8PYrfgnNOS9PhSBdHlegK+AGGanfwj"
               "XuQ9+0pZcy0w9lQ==",
}
CRYPTO = cc.CallbackCrypto(VECTOR["token"], VECTOR["aes_key"], VECTOR["owner_key"])
NOW_MS = int(VECTOR["timestamp"])


def _query(**override) -> dict:
    return {"signature": VECTOR["signature"], "timestamp": VECTOR["timestamp"], "nonce": VECTOR["nonce"], **override}


def _body(encrypt: str = VECTOR["encrypt"]) -> bytes:
    return json.dumps({"encrypt": encrypt}).encode()


def test_the_published_vector_is_signed_and_decrypted_as_dingtalk_does():
    assert CRYPTO.signature(VECTOR["timestamp"], VECTOR["nonce"], VECTOR["encrypt"]) == VECTOR["signature"]
    event = CRYPTO.open_dingtalk(_query(), _body(), NOW_MS)
    assert event == {"EventType": "check_create_suite_url", "Random": "LPIdSnlF",
                     "TestSuiteKey": "suite4xxxxxxxxxxxxxxx"}


def test_our_encryption_is_what_dingtalk_decrypts_and_the_answer_is_signed():
    random = b"aaaabbbbccccdddd"
    answer = CRYPTO.answer("success", "1445827045067", "nEXhMP4r", random)
    assert answer["msg_signature"] == CRYPTO.signature("1445827045067", "nEXhMP4r", answer["encrypt"])
    assert CRYPTO.decrypt(answer["encrypt"]) == "success"
    # Encrypting the vector's own plaintext with its own random prefix gives back the vector's ciphertext.
    plain = '{"EventType":"check_create_suite_url","Random":"LPIdSnlF","TestSuiteKey":"suite4xxxxxxxxxxxxxxx"}'
    key = base64.b64decode(VECTOR["aes_key"] + "=")
    first_block = base64.b64decode(VECTOR["encrypt"])[:16]
    random16 = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor().update(first_block)  # its random prefix
    assert CRYPTO.encrypt(plain, random16) == VECTOR["encrypt"]


def test_a_forged_signature_is_refused():
    with pytest.raises(cc.Refused) as refused:
        CRYPTO.open_dingtalk(_query(signature="0" * 40), _body(), NOW_MS)
    assert (refused.value.status, refused.value.errmsg) == (403, "signature does not match")


def test_a_ciphertext_changed_in_flight_is_refused_by_its_signature():
    tampered = VECTOR["encrypt"][:-8] + "AAAAAA=="
    with pytest.raises(cc.Refused) as refused:
        CRYPTO.open_dingtalk(_query(), _body(tampered), NOW_MS)
    assert refused.value.status == 403


def test_a_stale_timestamp_is_refused_even_when_signed():
    with pytest.raises(cc.Refused) as refused:
        CRYPTO.open_dingtalk(_query(), _body(), NOW_MS + cc.MAX_SKEW_MS + 1)
    assert refused.value.errmsg == "timestamp is too far from now"


def test_a_message_for_another_app_is_refused():
    other = cc.CallbackCrypto(VECTOR["token"], VECTOR["aes_key"], "dingOtherAppKey")
    with pytest.raises(cc.Refused) as refused:
        other.open_dingtalk(_query(), _body(), NOW_MS)
    assert refused.value.errmsg == "the message is for another app"


@pytest.mark.parametrize("query,body", [({}, b"{}"), (_query(), b"not json"), (_query(), b'{"encrypt": 5}'),
                                        (_query(), b"[]")])
def test_a_malformed_callback_is_a_400(query, body):
    with pytest.raises(cc.Refused) as refused:
        CRYPTO.open_dingtalk(query, body, NOW_MS)
    assert refused.value.status == 400


def _press(action_ids, params) -> dict:
    return {"outTrackId": "soc-abc", "userId": "manager4220", "corpId": "dingcorp",
            "content": json.dumps({"cardPrivateData": {"actionIds": action_ids, "params": params}})}


def test_a_button_press_names_the_card_the_person_the_button_and_the_ticket():
    press = cc.press_of(_press(["accept"], {"ticket_id": "T-1"}))
    assert press == cc.Press("soc-abc", "manager4220", cc.CardAction.accept, "T-1")
    assert cc.TICKET_ACTION[press.action] is TicketAction.accept
    # The same button on the same card is one command: its client id is stable and fits api.ClientId.
    assert cc.client_id(press) == cc.client_id(cc.press_of(_press(["accept"], {"ticket_id": "T-1"})))
    assert cc.client_id(press) != cc.client_id(cc.press_of(_press(["acknowledge"], {"ticket_id": "T-1"})))
    assert len(cc.client_id(press)) == 42 and cc.client_id(press).isalnum()


@pytest.mark.parametrize("event", [_press(["delete"], {"ticket_id": "T-1"}), _press(["accept"], {}),
                                   _press(["accept", "acknowledge"], {"ticket_id": "T-1"}),
                                   {"outTrackId": "x", "userId": "y", "content": "{}"}, {}])
def test_what_is_not_one_of_our_buttons_is_a_400(event):
    with pytest.raises(cc.Refused) as refused:
        cc.press_of(event)
    assert refused.value.status == 400


def test_the_card_update_sends_only_who_took_it():
    request = cc.update_card_request("https://api.dingtalk.com", "tok", "soc-abc",
                                     cc.taken_params("T-1", cc.CardAction.accept, "张三", "城管执法队", "05-12 09:40"))
    assert (request.method, request.url) == ("PUT", "https://api.dingtalk.com/v1.0/im/interactiveCards")
    assert request.headers["x-acs-dingtalk-access-token"] == "tok"
    body = request.json()
    assert body["cardOptions"] == {"updateCardDataByKey": True}
    assert body["cardData"]["cardParamMap"]["taken_by"] == "张三（城管执法队）05-12 09:40 签收"


# WeCom's published samples for WXBizMsgCrypt (the URL check and a message), the same scheme with its corpid.
WECOM = cc.CallbackCrypto("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7")
WECOM_ECHO = {"msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "timestamp": "1409659589",
              "nonce": "263014780",
              "echostr": "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="}
WECOM_MESSAGE = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3"
    "TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gs"
    "ijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUa"
    "x5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIG"
    "HBZZIs2pDBS8R07+qN+E7Q==")


def _wecom_body(encrypt: str) -> bytes:
    return (f"<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt>"
            f"<AgentID><![CDATA[218]]></AgentID></xml>").encode()


def test_wecoms_published_url_check_and_message_are_verified_and_decrypted():
    assert WECOM.wecom_url_echo(WECOM_ECHO, 1409659589) == "1616140317555161061"
    query = {"msg_signature": "477715d11cdb4164915debcba66cb864d751f3e6", "timestamp": "1409659813",
             "nonce": "1372623149"}
    event = WECOM.open_wecom(query, _wecom_body(WECOM_MESSAGE), 1409659813)
    assert (event["FromUserName"], event["MsgType"], event["Content"], event["AgentID"]) == ("mycreate", "text", "hello",
                                                                                            "218")


def test_wecom_refuses_a_forged_signature_with_its_own_code():
    with pytest.raises(cc.Refused) as refused:
        WECOM.wecom_url_echo({**WECOM_ECHO, "msg_signature": "0" * 40}, 1409659589)
    assert (refused.value.status, refused.value.errcode) == (403, -40001)
    with pytest.raises(cc.Refused) as refused:
        WECOM.open_wecom({"msg_signature": "1", "timestamp": "1", "nonce": "1"}, b"<xml><Encrypt>", 1)
    assert refused.value.errcode == -40002  # not XML


def test_a_wecom_button_press_names_the_card_the_person_the_button_and_the_ticket():
    event = {"MsgType": "event", "Event": "template_card_event", "EventKey": "accept|T-1", "TaskId": "soc-abc",
             "FromUserName": "lisi", "ResponseCode": "rc-1", "CardType": "button_interaction"}
    assert cc.wecom_press_of(event) == cc.Press("soc-abc", "lisi", cc.CardAction.accept, "T-1", "rc-1")
    for bad in ({**event, "EventKey": "delete|T-1"}, {**event, "Event": "click"}, {**event, "EventKey": "accept"}):
        with pytest.raises(cc.Refused):
            cc.wecom_press_of(bad)


# Feishu's published decryption sample: Encrypt Key "test key".
FEISHU = cc.FeishuCrypto("test key", "verification-token")


def test_feishus_published_sample_decrypts_and_our_encryption_round_trips():
    assert FEISHU.decrypt("P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=") == "hello world"
    iv = base64.b64decode("P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=")[:16]
    assert FEISHU.encrypt("hello world", iv) == "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk="


def _feishu_request(event: dict, crypto: cc.FeishuCrypto = FEISHU, now: int = 1700000000) -> tuple[dict, bytes]:
    body = json.dumps({"encrypt": crypto.encrypt(json.dumps(event), b"0123456789abcdef")}).encode()
    headers = {"X-Lark-Request-Timestamp": str(now), "X-Lark-Request-Nonce": "n1",
               "X-Lark-Signature": crypto.signature(str(now), "n1", body)}
    return headers, body


def test_a_feishu_card_action_is_verified_decrypted_and_read():
    event = {"schema": "2.0", "header": {"event_type": "card.action.trigger", "token": "verification-token"},
             "event": {"operator": {"open_id": "ou_1"}, "token": "c-1", "context": {"open_message_id": "om_1"},
                       "action": {"tag": "button", "value": {"action": "accept", "ticket_id": "T-1"}}}}
    headers, body = _feishu_request(event)
    opened = FEISHU.open_feishu(headers, body, 1700000000)
    assert cc.feishu_press_of(opened) == cc.Press("om_1", "ou_1", cc.CardAction.accept, "T-1", "c-1")
    # The signature covers the body: a body changed in flight, or signed with another key, is refused.
    with pytest.raises(cc.Refused) as refused:
        FEISHU.open_feishu(headers, body.replace(b'"', b' "', 1), 1700000000)
    assert refused.value.status == 403
    with pytest.raises(cc.Refused):
        FEISHU.open_feishu(*_feishu_request(event, cc.FeishuCrypto("guess", "verification-token")), 1700000000)
    # Signed and encrypted with our key but carrying another app's verification token.
    other = {**event, "header": {**event["header"], "token": "another"}}
    with pytest.raises(cc.Refused) as refused:
        FEISHU.open_feishu(*_feishu_request(other), 1700000000)
    assert refused.value.errmsg == "verification token does not match"
