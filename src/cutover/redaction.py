"""Keeping credentials out of everything people read: messages, logs, journals, reports.

One implementation for the whole tool, so a pattern added here protects every path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_SECRET_KEYS = (
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "client_assertion",
    "assertion",
    "device_code",
    "password",
    "passphrase",
    "secret",
)
_KEY_VALUE_RE = re.compile(
    r"""(?P<key>(?<![A-Za-z0-9])["']?(?:""" + "|".join(_SECRET_KEYS) + r""")["']?\s*[:=]\s*)"""
    r"""(?:(?P<q>["'])(?P<qv>(?:\\.|(?!(?P=q)).)*)(?P=q)|(?P<v>[^\s&,;}\])"']+))""",
    re.IGNORECASE,
)
_AUTH_HEADER_RE = re.compile(
    r"(?P<scheme>\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/-]{8,}=*(?![A-Za-z0-9._~+/=-])", re.IGNORECASE
)
_JWT_RE = re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_SIM_TOKEN_RE = re.compile(r"\bsim(?:rt)?\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
_MASK = "***"


def redact(text: Any, *, extra: Iterable[str] = ()) -> str:
    """``text`` with credentials replaced by ``***``: the credential of an ``Authorization:
    Bearer|Basic`` value, the values of ``access_token``, ``refresh_token``, ``id_token``,
    ``client_secret``, ``client_assertion``, ``device_code``, ``password`` … (JSON, form or
    Python-repr syntax), anything shaped like a JWT (``eyJ….….…``) or a simulator token, and
    every literal string in ``extra`` (e.g. the secret just used)."""
    out = str(text)
    for literal in sorted({e for e in extra if e and len(e) >= 4}, key=len, reverse=True):
        out = out.replace(literal, _MASK)

    def kv(m: re.Match) -> str:
        if m.group("q"):
            return m.group("key") + m.group("q") + (_MASK if m.group("qv") else "") + m.group("q")
        return m.group("key") + _MASK

    out = _KEY_VALUE_RE.sub(kv, out)
    out = _AUTH_HEADER_RE.sub(lambda m: m.group("scheme") + _MASK, out)
    out = _JWT_RE.sub(_MASK, out)
    out = _SIM_TOKEN_RE.sub(_MASK, out)
    return out
