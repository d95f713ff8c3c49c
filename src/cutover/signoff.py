"""Sign-off: two different people attest the evidence pack of a verification.

``sign(report_dir, name, role)`` appends one record to ``<report>/signatures.jsonl``::

    {"name": …, "role": …, "signed_utc": …, "manifest_sha256": …}

**An attestation, not a cryptographic signature.** The record binds a named person's
statement to the SHA-256 of the pack's ``manifest.json`` (which lists every file of the pack
with its own SHA-256): anyone can recompute the hashes and see whether the pack they read is
the pack that was signed. It does not prove *who* wrote the line — that is the job of the
file permissions and of whoever keeps the pack (an archive, a ticket, a document system).

Rules:

- **The pack must be intact.** Before signing, and in :func:`check`, every file is hashed
  again and compared with ``manifest.json``: a changed, added or removed file (anything but
  ``manifest.json`` and ``signatures.jsonl``) refuses the signature (:class:`PackTampered`, a
  :class:`~cutover.errors.ChecksFailed`, exit 1) naming the file. A signature recorded for
  another ``manifest.json`` (the manifest itself was rewritten) is named too.
- **Four eyes.** The same name (letter case and spacing do not matter) cannot sign twice
  (:class:`AlreadySigned`, exit 1). :func:`check` reads **accepted** only with two valid
  signatures by different names on an intact pack; otherwise it says what is missing.
- A pack whose verdict is not ``passed`` can still be signed (a controller may accept a
  documented exception), and :func:`check` says so beside the signatures.

Core code: stdlib only.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ChecksFailed, InputError
from .evidence import MANIFEST_FILE, SIGNATURES_FILE, file_records
from .journal import file_sha256

__all__ = [
    "AlreadySigned",
    "PackCheck",
    "PackTampered",
    "Signature",
    "check",
    "sign",
    "verify_pack",
]

REQUIRED_SIGNATURES = 2


class PackTampered(ChecksFailed):
    """A file of the pack is not the one the manifest lists (changed, added or removed)."""


class AlreadySigned(ChecksFailed):
    """This person already signed the pack: a second signature must come from someone else."""


@dataclass(frozen=True)
class Signature:
    name: str
    role: str
    signed_utc: str
    manifest_sha256: str

    def as_data(self) -> dict[str, str]:
        return {
            "name": self.name,
            "role": self.role,
            "signed_utc": self.signed_utc,
            "manifest_sha256": self.manifest_sha256,
        }


@dataclass(frozen=True)
class PackCheck:
    """What :func:`check` found."""

    report_dir: Path
    accepted: bool
    manifest_sha256: str | None
    problems: tuple[str, ...] = ()  # files changed, added, removed; signatures for another manifest
    signatures: tuple[Signature, ...] = ()
    verdict: str | None = None  # the verification's verdict (run.json)
    missing: tuple[str, ...] = field(default=())

    def lines(self) -> list[str]:
        head = "ACCEPTED" if self.accepted else "NOT ACCEPTED"
        out = [f"{head}: {self.report_dir}"]
        if self.verdict:
            out.append(f"verification verdict: {self.verdict}")
        out += [f"  problem: {p}" for p in self.problems]
        out += [f"  signed by {s.name} ({s.role}) at {s.signed_utc}" for s in self.signatures]
        out += [f"  missing: {m}" for m in self.missing]
        return out


def _key(name: str) -> str:
    return " ".join(name.split()).casefold()


def _manifest(report_dir: Path) -> dict[str, Any]:
    path = report_dir / MANIFEST_FILE
    if not report_dir.is_dir():
        raise InputError(f"{report_dir} is not a report folder", fix="give the folder `cutover verify` wrote")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data["files"]
        if not isinstance(files, list):
            raise TypeError
        return data
    except FileNotFoundError:
        raise PackTampered(f"{MANIFEST_FILE} is missing: the pack cannot be checked", where=str(report_dir)) from None
    except (ValueError, KeyError, TypeError):
        raise PackTampered(f"{MANIFEST_FILE} is not a manifest of this tool", where=str(report_dir)) from None


def verify_pack(report_dir: str | Path) -> tuple[str, list[str]]:
    """(SHA-256 of manifest.json, the problems: each names a file changed, added or removed)."""
    folder = Path(report_dir)
    listed = {f["path"]: f for f in _manifest(folder)["files"]}
    present = {f["path"]: f for f in file_records(folder)}
    problems = []
    for path in sorted(listed.keys() | present.keys()):
        if path not in present:
            problems.append(f"{path} was removed")
        elif path not in listed:
            problems.append(f"{path} was added")
        elif present[path]["sha256"] != listed[path].get("sha256") or present[path]["bytes"] != listed[path].get(
            "bytes"
        ):
            problems.append(f"{path} was changed")
    return file_sha256(folder / MANIFEST_FILE), problems


def _signatures(folder: Path) -> list[Signature]:
    path = folder / SIGNATURES_FILE
    if not path.exists():
        return []
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            out.append(Signature(str(d["name"]), str(d["role"]), str(d["signed_utc"]), str(d["manifest_sha256"])))
        except (ValueError, KeyError, TypeError):
            raise PackTampered(
                f"{SIGNATURES_FILE} line {number} is not a signature record", where=str(folder)
            ) from None
    return out


def _verdict(folder: Path) -> str | None:
    try:
        return json.loads((folder / "run.json").read_text(encoding="utf-8")).get("verdict")
    except (OSError, ValueError, AttributeError):
        return None


def sign(report_dir: str | Path, name: str, role: str, *, now: dt.datetime | None = None) -> Signature:
    """Append a signature record for ``name`` in ``role``; refused on a tampered pack or a
    second signature by the same name (see the module docstring)."""
    folder = Path(report_dir)
    name, role = " ".join(str(name).split()), " ".join(str(role).split())
    if not name:
        raise InputError("a signature needs the signer's name", fix="give --name")
    if not role:
        raise InputError("a signature needs the signer's role", fix="give --role, e.g. 'Finance controller'")
    digest, problems = verify_pack(folder)
    if problems:
        raise PackTampered(
            "the evidence pack is not the one that was written, so it cannot be signed: " + "; ".join(problems),
            where=str(folder),
            fix="run `cutover verify` again for a new pack",
        )
    signatures = _signatures(folder)
    stale = [s for s in signatures if s.manifest_sha256 != digest]
    if stale:
        raise PackTampered(
            f"{MANIFEST_FILE} was rewritten after {', '.join(s.name for s in stale)} signed it",
            where=str(folder),
            fix="run `cutover verify` again for a new pack",
        )
    if any(_key(s.name) == _key(name) for s in signatures):
        raise AlreadySigned(
            f"{name} already signed this pack; the second signature must come from someone else (four eyes)",
            where=str(folder),
        )
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    signature = Signature(name, role, moment.isoformat(timespec="seconds").replace("+00:00", "Z"), digest)
    with open(folder / SIGNATURES_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(signature.as_data(), ensure_ascii=False, sort_keys=True) + "\n")
    return signature


def check(report_dir: str | Path) -> PackCheck:
    """Whether the pack is intact and signed by two different people (``accepted``)."""
    folder = Path(report_dir)
    try:
        digest, problems = verify_pack(folder)
    except PackTampered as exc:
        return PackCheck(folder, False, None, (exc.message,), (), _verdict(folder))
    signatures = _signatures(folder)
    problems = list(problems)
    valid = []
    for s in signatures:
        if s.manifest_sha256 != digest:
            problems.append(f"{s.name}'s signature is for another {MANIFEST_FILE} ({s.manifest_sha256[:12]}…)")
        else:
            valid.append(s)
    names = {_key(s.name) for s in valid}
    missing = []
    if len(names) < REQUIRED_SIGNATURES:
        missing.append(f"{REQUIRED_SIGNATURES - len(names)} more signature(s) by different people")
    accepted = not problems and not missing
    return PackCheck(folder, accepted, digest, tuple(problems), tuple(signatures), _verdict(folder), tuple(missing))
