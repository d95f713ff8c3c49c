"""Errors the simulated services answer with, in each service's own JSON shape.

Dataverse: ``{"error": {"code": "0x80040217", "message": "..."}}``.
F&O OData: ``{"error": {"code": "", "message": "...", "innererror": {...}}}``.
The 0x codes are Dataverse's documented ones where Microsoft documents one.
"""

from __future__ import annotations

import json

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
            {"error": {"code": "", "message": self.message, "innererror": {"message": self.message, "type": "", "stacktrace": ""}}}
        ).encode()


def not_found_record(type_name: str, key: str) -> SimError:
    return SimError(404, OBJECT_DOES_NOT_EXIST, f"{type_name} With Id = {key} Does Not Exist")


def unknown_segment(segment: str) -> SimError:
    return SimError(404, ODATA_URI_ERROR, f"Resource not found for the segment '{segment}'.")


def bad_payload(message: str) -> SimError:
    return SimError(400, BAD_PAYLOAD, message)


def unknown_property(prop: str, qualified_type: str) -> SimError:
    return SimError(
        400, ODATA_URI_ERROR, f"Could not find a property named '{prop}' on type '{qualified_type}'."
    )
