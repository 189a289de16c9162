"""The request rules of ``ltp-deploy serve`` (``serving.requests``), without Ray or a model: every hostile body is
refused with a 4xx and one sentence; bodies that only look hostile (brackets and digits inside strings) are not.
The same bodies against the running server: ``test_serve.test_hostile_body_gets_4xx_json_and_the_server_goes_on``.
"""

from __future__ import annotations

import json

import pytest

from ltp_deploy.serving.requests import BadRequest, parse_predict


@pytest.mark.parametrize("body, pairs, fragment", [
    (b"\xff", False, "not valid JSON"),
    (b'{"texts": [["a", "b"]]}', False, "must be a string"),
    (b'{"texts": ["a"]}', True, "pair of strings"),
    (b'{"texts": [["a", ""]]}', True, "is empty"),
    (b'{"texts": [["a", "\\u200b\\ufeff"]]}', True, "texts[0] is empty"),
    (b'{"texts": [["a", "\\udfff"]]}', True, "texts[0] is not valid Unicode"),
    (b'{"texts": ["a"], "x": ' + b"{" * 33 + b"}" * 33 + b"}", False, "deeper than 32 levels"),
    (b'{"texts": [' + b"1" * 65 + b"]}", False, "number of 65 digits"),
])
def test_request_rules(body, pairs, fragment):
    with pytest.raises(BadRequest) as e:
        parse_predict(body, pairs=pairs, max_texts=4)
    assert e.value.status == 400 and fragment in e.value.message
    assert parse_predict(b'{"texts": [["a", "b"]]}', pairs=True, max_texts=4)[0].pair == "b"


def test_request_limits_leave_good_requests_alone():
    # Brackets, braces and long digit runs inside strings (escaped quotes too) are text, not structure or numbers.
    texts = ["[" * 100 + "{" * 100, '"quoted\\" ' + "[" * 100, "9" * 5000]
    body = json.dumps({"texts": texts, "n": -10**63, "x": [[[["ok"]]]]}).encode()
    assert [item.text for item in parse_predict(body, pairs=False, max_texts=4)] == texts
