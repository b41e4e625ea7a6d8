"""Typed worker errors: each has a reason (and so an exit code) and says what to do.

Whether a retry helps is a type, as in kopf: a ``PermanentError`` (bad spec, bad model, bad
data, missing backend, a bucket that does not exist) fails the Job at once; a
``TransientError`` (the store unreachable, a build that ran out of GPU memory) lets the Job's
backoff try again. Each class's base must agree with its reason's row in
``api.reasons.RETRY`` (checked when the class is defined), the table the Job's
podFailurePolicy is built from. Programming errors are not wrapped: they propagate as
InternalError with their traceback in the log.

Framework exceptions are recognized with ``isinstance`` on the framework's own classes
(``is_out_of_memory``), never by their names.
"""

from __future__ import annotations

import sys
from typing import Any

from kubeopt.api.reasons import EXIT_CODES, RETRY, Reason, Retry
from kubeopt.storage.errors import StorageError


def first_line(error: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type name when the message is empty), for a
    one-line reason; tracebacks of framework errors run to pages."""
    lines = str(error).strip().splitlines()
    return lines[0][:limit] if lines else type(error).__name__


class WorkerError(Exception):
    reason: Reason = Reason.INTERNAL_ERROR
    retry: Retry = Retry.TRANSIENT

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__name__ in ("PermanentError", "TransientError"):
            return
        if RETRY[cls.reason] is not cls.retry:
            raise TypeError(f"{cls.__name__}: reason {cls.reason.value} is {RETRY[cls.reason].value} in "
                            f"api.reasons.RETRY but the class is {cls.retry.value}; derive it from the other base")

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.reason]

    @property
    def retryable(self) -> bool:
        return self.retry is Retry.TRANSIENT


class PermanentError(WorkerError):
    """A retry of the same Job cannot fix it: the Job fails at once."""

    retry = Retry.PERMANENT


class TransientError(WorkerError):
    """A retry may succeed: the Job's backoffLimit applies."""

    retry = Retry.TRANSIENT


class InvalidSpec(PermanentError):
    reason = Reason.INVALID_SPEC


class ModelNotFound(PermanentError):
    reason = Reason.MODEL_NOT_FOUND


class ModelCorrupt(PermanentError):
    reason = Reason.MODEL_CORRUPT


class InputShapeMismatch(PermanentError):
    reason = Reason.INPUT_SHAPE_MISMATCH


class UnsupportedOp(PermanentError):
    reason = Reason.UNSUPPORTED_OP


class CalibrationDataInvalid(PermanentError):
    reason = Reason.CALIBRATION_DATA_INVALID


class ValidationDataInvalid(PermanentError):
    reason = Reason.VALIDATION_DATA_INVALID


class AccuracyBudgetExceeded(PermanentError):
    reason = Reason.ACCURACY_BUDGET_EXCEEDED


class BuildFailed(TransientError):
    reason = Reason.BUILD_FAILED


class StorageFailure(TransientError):
    """The store could not be reached or did not answer in time; a retry may find it back."""

    reason = Reason.STORAGE_ERROR


class StorageMisconfigured(PermanentError):
    """The store answered and refused for good (no such bucket, an invalid name)."""

    reason = Reason.STORAGE_MISCONFIGURED


def storage_failure(field: str, error: StorageError) -> WorkerError:
    """The worker error for a storage error met while handling ``field``: permanent or transient
    by the storage error's own type."""
    if error.retryable:
        return StorageFailure(f"{field}: {error}")
    return StorageMisconfigured(f"{field}: {error}")


def is_out_of_memory(error: BaseException) -> bool:
    """True for torch's ``torch.cuda.OutOfMemoryError`` (checked on torch's own class, and only
    when torch is loaded: an error cannot come from a framework that was never imported)."""
    torch = sys.modules.get("torch")
    out_of_memory = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
    return isinstance(out_of_memory, type) and isinstance(error, out_of_memory)


class BackendUnavailable(PermanentError):
    """The backend's framework is not installed in this image."""

    reason = Reason.BACKEND_UNAVAILABLE

    def __init__(self, backend: str, missing: str, image_hint: str) -> None:
        super().__init__(
            f"backend {backend} is not available in this image: {missing} is not installed; "
            f"run this target in {image_hint}"
        )
        self.backend = backend
