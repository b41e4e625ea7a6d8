"""Storage errors, typed so the worker maps them to a reason and a hint, and retries by type.

``StorageError`` is permanent: the store answered and a retry of the same request gets the
same answer (no such bucket, a bad URI, a file where a folder should be).
``TransientStorageError`` is what a retry may fix: the endpoint down or slow, throttling,
credentials refused (a Secret can be fixed while the Job backs off). The worker turns the
first into the StorageMisconfigured reason (the Job fails at once) and the second into
StorageError (the Job's backoffLimit applies).
"""

from __future__ import annotations

from typing import ClassVar


class StorageError(Exception):
    """A store could not be read or written; the message says what to check."""

    retryable: ClassVar[bool] = False


class TransientStorageError(StorageError):
    """The store could not be reached, did not answer in time, or refused for now."""

    retryable: ClassVar[bool] = True


class ObjectNotFound(StorageError):
    """The object or file does not exist."""


class ManifestMismatch(StorageError):
    """An artifact's files do not match its manifest: it is incomplete or was altered."""
