"""The persistent msal token cache of one profile: ``<workspace>/.tokens/<profile>.json``.

One ``msal.SerializableTokenCache`` per profile, shared by every msal application (client id)
of that profile, so a device-code operator signs in once for both resources. The directory is
0700 and the file 0600 — both checked and tightened on load — and every save is merged with
what is on disk (another process or source of the same profile may have written since) and
written atomically by :func:`cutover.files.write_private_file` — the read-merge-write under
the file's cross-process lock (:func:`cutover.files.locked`), so two processes signing in at
once keep both their tokens.

If the optional ``msal_extensions`` package is importable its encrypted persistence is used
instead; otherwise the file is plain JSON protected by its mode only, and :meth:`describe`
says so. No dependency is added for this.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
from pathlib import Path

import msal

from .files import locked, write_private_file
from .signin import SignInError

__all__ = ["TOKENS_DIR", "TokenCacheFile", "token_cache_path"]

logger = logging.getLogger("cutover.auth")

TOKENS_DIR = ".tokens"


def token_cache_path(workspace: str | Path, profile_name: str) -> Path:
    """``<workspace>/.tokens/<profile>.json``."""
    return Path(workspace) / TOKENS_DIR / f"{profile_name}.json"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class TokenCacheFile:
    """The persistent msal token cache of one profile. ``cache`` is what the msal applications
    share; :meth:`save` persists it after each sign-in. ``notes`` lists what loading had to
    fix (e.g. loose permissions tightened)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.notes: list[str] = []
        self.encrypted = False
        self._lock = threading.Lock()
        self._secure_directory()
        self.cache: msal.SerializableTokenCache = self._open()

    # directory 0700, file 0600
    def _secure_directory(self) -> None:
        directory = self.path.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if os.name == "posix" and _mode(directory) & 0o077:
            old = _mode(directory)
            os.chmod(directory, 0o700)
            self._note(f"tightened the permissions of {directory} from {old:04o} to 0700")

    def _note(self, text: str) -> None:
        self.notes.append(text)
        logger.warning("token cache: %s", text)

    def _open(self) -> msal.SerializableTokenCache:
        try:
            import msal_extensions  # optional, never a dependency of cutover
        except ImportError:
            msal_extensions = None
        if msal_extensions is not None:
            try:
                persistence = msal_extensions.build_encrypted_persistence(str(self.path.with_suffix(".bin")))
                cache = msal_extensions.PersistedTokenCache(persistence)
            except Exception as exc:  # e.g. no libsecret / keyring on a headless Linux host
                self._note(
                    f"encrypted persistence is not available here ({type(exc).__name__}); using a plain file with mode 0600"
                )
            else:
                self.encrypted = True
                self.path = self.path.with_suffix(".bin")
                return cache
        cache = msal.SerializableTokenCache()
        text = self._read()
        if text:
            try:
                cache.deserialize(text)
            except ValueError:
                self._note(
                    f"{self.path} was not a readable token cache; starting with an empty one (you may have to sign in again)"
                )
        return cache

    def _read(self) -> str:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.path, flags)
        except FileNotFoundError:
            return ""
        except OSError as exc:
            raise self._unusable(exc.strerror or str(exc)) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):  # e.g. a directory: never chmod or read it
                raise self._unusable("not a regular file")
            if os.name == "posix" and stat.S_IMODE(st.st_mode) & 0o077:
                old = stat.S_IMODE(st.st_mode)
                os.fchmod(fd, 0o600)
                self._note(f"tightened the permissions of {self.path} from {old:04o} to 0600")
            with os.fdopen(fd, "r", encoding="utf-8") as fh:
                fd = -1
                return fh.read()
        finally:
            if fd >= 0:
                os.close(fd)

    def _unusable(self, reason: str) -> SignInError:
        return SignInError(
            f"the token cache {self.path} cannot be opened ({reason})",
            code="token-cache",
            fix=f"check that {self.path} is a regular file owned by you, or delete it and sign in again",
        )

    def save(self) -> None:
        """Persist the cache if it changed: merged with what is on disk (another process or
        source of the same profile may have written since), written to a 0600 temporary file
        and renamed over the cache file."""
        if self.encrypted:
            return  # msal_extensions' PersistedTokenCache persists itself
        with self._lock, locked(self.path):
            if not self.cache.has_state_changed:
                return
            ours = json.loads(self.cache.serialize() or "{}")
            try:
                merged = json.loads(self._read() or "{}")
            except ValueError:
                merged = {}
            if not isinstance(merged, dict):
                merged = {}
            for kind, entries in ours.items():
                if isinstance(merged.get(kind), dict) and isinstance(entries, dict):
                    merged[kind].update(entries)
                else:
                    merged[kind] = entries
            data = json.dumps(merged, indent=1)
            self._secure_directory()
            write_private_file(self.path, data.encode("utf-8"))

    def describe(self) -> str:
        if self.encrypted:
            return f"token cache {self.path} (encrypted by msal-extensions)"
        return (
            f"token cache {self.path} (plain JSON protected by file mode 0600 in a 0700 directory; not encrypted: "
            "the optional msal-extensions package is not installed or has no encrypted store on this host)"
        )
