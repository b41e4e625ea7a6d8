"""Storage errors, typed so the worker maps them to the StorageError reason and a hint."""

from __future__ import annotations


class StorageError(Exception):
    """A store could not be read or written; the message says what to check."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class ObjectNotFound(StorageError):
    """The object or file does not exist."""


class ManifestMismatch(StorageError):
    """An artifact's files do not match its manifest: it is incomplete or was altered."""
