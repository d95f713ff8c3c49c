"""Every exception the simulator raises on purpose, one class per idea, and the error codes.

* :class:`SimError` — a Dataverse, F&O or admin request is refused: an HTTP status, a
  Dataverse ``0x…`` code and a message, answered in the service's own JSON shape (Dataverse:
  ``{"error": {"code": "0x80040217", "message": "..."}}``; F&O OData: ``{"error": {"code": "",
  "message": "...", "innererror": {...}}}``; the ``/_sim/…`` admin surface uses the Dataverse
  shape). Service protection refusals (429 + ``Retry-After``) are SimErrors too.
* :class:`OAuthError` — the identity platform refuses a sign-in: HTTP status, OAuth ``error``
  (RFC 6749 §5.2) and an ``AADSTS…`` description, answered in the identity platform's shape.
* :class:`SimulatedDrop` — a connection the simulator cuts on purpose (fault injection).

Two parsers keep an error class of their own because they are pure codecs with no HTTP
status: :class:`cutover.sim.batch.BatchFormatError` (a malformed ``$batch`` body, answered as
400 :data:`BAD_PAYLOAD`) and :class:`cutover.sim.odata_filter.FilterError` (a ``$filter`` the
simulator cannot read, answered as 400 :data:`ODATA_URI_ERROR`). Both are ``ValueError``
subclasses that the service turns into a :class:`SimError`.

The 0x codes are Dataverse's documented ones where Microsoft documents one.
"""

from __future__ import annotations

import json
import re
import time
import uuid

# Dataverse error codes (Web API "Dataverse error codes" reference).
OBJECT_DOES_NOT_EXIST = "0x80040217"
DUPLICATE_RECORD = "0x80040237"
PRIVILEGE_DENIED = "0x80040220"
BAD_PAYLOAD = "0x80048d19"  # payload could not be read / wrong types
ODATA_URI_ERROR = "0x80060888"  # unknown segment / property / bad query option
INVALID_ARGUMENT = "0x80040203"
BATCH_TOO_LARGE = "0x8005f103"  # simulator's code for "more than 1000 requests in a batch"
REQUESTS_LIMIT = "0x80072322"  # service protection: number of requests
EXECUTION_TIME_LIMIT = "0x80072321"  # service protection: combined execution time
CONCURRENCY_LIMIT = "0x80072326"  # service protection: concurrent requests
UNEXPECTED = "0x80040216"
MAINTENANCE = "0x80072330"  # simulator: environment in administration mode
NOT_SUPPORTED = "0x8004800d"


class SimError(Exception):
    """An error answered to the client; `code` is the Dataverse 0x code (ignored by F&O shape)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def dataverse_body(self) -> bytes:
        return json.dumps({"error": {"code": self.code, "message": self.message}}).encode()

    def fno_body(self) -> bytes:
        return json.dumps(
            {
                "error": {
                    "code": "",
                    "message": self.message,
                    "innererror": {"message": self.message, "type": "", "stacktrace": ""},
                }
            }
        ).encode()

    def body_for(self, service: str) -> bytes:
        """The answer body in ``service``'s shape ("dataverse" or "fno")."""
        return self.dataverse_body() if service == "dataverse" else self.fno_body()


def not_found_record(type_name: str, key: str) -> SimError:
    return SimError(404, OBJECT_DOES_NOT_EXIST, f"{type_name} With Id = {key} Does Not Exist")


def unknown_segment(segment: str) -> SimError:
    return SimError(404, ODATA_URI_ERROR, f"Resource not found for the segment '{segment}'.")


def bad_payload(message: str) -> SimError:
    return SimError(400, BAD_PAYLOAD, message)


def throttled(code: str, message: str, retry_after: int) -> SimError:
    """A service-protection refusal: 429 with ``Retry-After`` in seconds."""
    return SimError(429, code, message, {"Retry-After": str(retry_after)})


def unknown_property(prop: str, qualified_type: str) -> SimError:
    return SimError(400, ODATA_URI_ERROR, f"Could not find a property named '{prop}' on type '{qualified_type}'.")


AUTHORITY_HOST = "https://login.microsoftonline.com"


class OAuthError(Exception):
    """An OAuth error answer of the identity platform (RFC 6749 §5.2 + AADSTS code)."""

    def __init__(self, status: int, error: str, description: str):
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    @property
    def aadsts(self) -> int | None:
        """The AADSTS number in the description (5 to 7 digits), or None."""
        m = re.match(r"AADSTS(\d+)", self.description)
        return int(m.group(1)) if m else None

    def body(self) -> dict:
        """The short answer of the simulator's own ``/_sim/token`` endpoint."""
        code = self.aadsts
        return {
            "error": self.error,
            "error_description": self.description,
            "error_codes": [code] if code is not None else [],
        }

    def platform_body(self) -> dict:
        """The answer of ``login.microsoftonline.com``: the description carries trace and
        correlation ids and a timestamp, as the real service's does."""
        code = self.aadsts
        now = time.gmtime()
        return {
            "error": self.error,
            "error_description": f"{self.description}\r\nTrace ID: {uuid.uuid4()}\r\nCorrelation ID: {uuid.uuid4()}\r\n"
            f"Timestamp: {time.strftime('%Y-%m-%d %H:%M:%SZ', now)}",
            "error_codes": [code] if code is not None else [],
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", now),
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
            "error_uri": f"{AUTHORITY_HOST}/error?code={code}" if code is not None else f"{AUTHORITY_HOST}/error",
        }


class SimulatedDrop(ConnectionResetError):
    """Raised to cut a connection mid-response (fault injection)."""
