"""Redaction: literal secrets, their base64 forms (alone or embedded), credential JSON fields."""

from __future__ import annotations

import base64
import json

from hypothesis import given
from hypothesis import strategies as st

from alpaca_cli.redact import MASK, Redactor, redact

SECRET = "sk-live-0123456789"


def test_literal_values_are_masked() -> None:
    assert redact(f"error: key {SECRET} refused", [SECRET]) == f"error: key {MASK} refused"


def test_base64_of_a_secret_is_masked() -> None:
    encoded = base64.b64encode(SECRET.encode()).decode()
    assert encoded not in redact(f"payload={encoded}", [SECRET])


def test_a_secret_inside_a_base64_auth_message_is_masked() -> None:
    auth = json.dumps({"action": "auth", "key": "AKID0001", "secret": SECRET})
    blob = base64.b64encode(auth.encode()).decode()
    command = json.dumps({"command": "send_raw", "id": "c1", "message": blob})
    out = redact(command, [SECRET])
    assert blob not in out and MASK in out
    assert '"command": "send_raw"' in out


def test_credential_fields_are_masked_even_for_unknown_values() -> None:
    text = '{"action":"auth","key":"AKXYZ","secret":"whatever","x-api-key": "k"}'
    out = redact(text)
    assert "AKXYZ" not in out and "whatever" not in out
    assert out.count(MASK) == 3
    assert '"action":"auth"' in out


def test_short_values_and_empty_secrets_do_not_garble_text() -> None:
    assert Redactor(["", "ab"]).redact("about a cab") == "about a cab"


def test_added_secrets_are_masked_from_then_on() -> None:
    redactor = Redactor()
    redactor.add(SECRET)
    assert SECRET not in redactor(f"x {SECRET}")


@given(
    secret=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=8),
    prefix=st.text(max_size=20),
    suffix=st.text(max_size=20),
)
def test_no_secret_survives_in_any_surrounding_text(secret: str, prefix: str, suffix: str) -> None:
    encoded = base64.b64encode(secret.encode()).decode()
    out = redact(f"{prefix}{secret}{suffix} {encoded}", [secret])
    assert secret not in out
    assert encoded not in out
