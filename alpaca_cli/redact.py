"""Remove secrets from any text before it reaches a log line, an error message or a report.

Three leaks are covered, because each has happened in tools like ours:

- the literal value (a key echoed in an error body);
- the value base64-encoded, alone or inside a larger base64 blob (``send_raw`` carries the Alpaca
  auth message as base64, so ``-v`` logging of the command would leak the secret otherwise);
- JSON fields that hold credentials whatever their value (``"secret":"..."``, ``"key":"..."``,
  ``x-api-key``, ``token``, ``password``), even when the value is not one we know.

Example::

    redactor = Redactor(config.secret_values())
    log.debug(redactor("sending %s" % body))
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable
from typing import Final

MASK = "[REDACTED]"
_MIN_SECRET = 4
"""Shorter values are not redacted on their own: masking every "ab" would garble the text."""

_SECRET_FIELD = re.compile(
    r"""(?P<head>["'](?:secret|key|api[_-]?key|x-api-key|apikey|token|api[_-]?token|password|"""
    r"""dapr-api-token|authorization)["']\s*:\s*)(?P<q>["'])(?P<value>(?:\\.|(?!(?P=q)).)*)(?P=q)""",
    re.IGNORECASE,
)
_B64_TOKEN = re.compile(r"[A-Za-z0-9+/_-]{12,}={0,2}")


class Redactor:
    """Callable that redacts a fixed set of secret values (and the forms above) from text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= _MIN_SECRET}, key=len)[::-1]
        self._encoded: list[str] = []
        for secret in self._secrets:
            raw = secret.encode()
            for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
                text = encoded.decode()
                self._encoded.append(text)
                self._encoded.append(text.rstrip("="))

    def add(self, secret: str) -> None:
        """Also redact ``secret`` from now on."""
        rebuilt = Redactor([*self._secrets, secret])
        self._secrets, self._encoded = rebuilt._secrets, rebuilt._encoded

    def __call__(self, text: str) -> str:
        return self.redact(text)

    def redact(self, text: str) -> str:
        """``text`` with every known secret, its base64 forms and credential fields masked."""
        text = _SECRET_FIELD.sub(lambda m: f"{m['head']}{m['q']}{MASK}{m['q']}", text)
        if not self._secrets:
            return text
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        for encoded in self._encoded:
            if len(encoded) >= _MIN_SECRET:
                text = text.replace(encoded, MASK)
        return _B64_TOKEN.sub(self._decoded_leak, text)

    def _decoded_leak(self, match: re.Match[str]) -> str:
        token = match.group(0)
        for decoder in (base64.b64decode, base64.urlsafe_b64decode):
            padded = token + "=" * (-len(token) % 4)
            try:
                decoded = decoder(padded).decode("utf-8", errors="ignore")
            except (binascii.Error, ValueError):
                continue
            if any(secret in decoded for secret in self._secrets):
                return MASK
        return token


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """One-off form of :class:`Redactor`."""
    return Redactor(secrets).redact(text)


SECRET_ENV: Final = ("VIRTUFIN_API_KEY", "ALPACA_API_KEY", "ALPACA_API_SECRET", "DAPR_API_TOKEN")
"""Secrets an error may echo before any runtime learnt them: the environment's values."""


def error_text(exc: BaseException, redactor: Redactor | None = None) -> str:
    """``str(exc)`` on one line with every secret masked: the known ones (``redactor``), the
    environment's (:data:`SECRET_ENV`), raw and base64, and credential-named JSON fields.

    Why not only where errors are raised: a gateway error body is the platform's text, and some
    platforms echo the request's key in it. Every place an error becomes text (the one
    ``Error:`` handler, ``run``'s final line and report, ``--json``) goes through this.
    """
    known = Redactor([v for v in (os.environ.get(n) for n in SECRET_ENV) if v])
    text = " ".join(str(exc).splitlines())
    if redactor is not None:
        text = redactor(text)
    return known(text)


__all__ = ["MASK", "SECRET_ENV", "Redactor", "error_text", "redact"]
