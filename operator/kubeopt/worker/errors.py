"""Typed worker errors: each has a reason (and so an exit code) and says what to do.

Permanent errors (bad spec, bad model, bad data, missing backend) fail the target at once;
retryable ones (storage hiccups) let the Job's backoff try again. Programming errors are not
wrapped: they propagate as InternalError with their traceback in the log.
"""

from __future__ import annotations

from kubeopt.api.reasons import EXIT_CODES, PERMANENT, Reason


def first_line(error: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type name when the message is empty), for a
    one-line reason; tracebacks of framework errors run to pages."""
    lines = str(error).strip().splitlines()
    return lines[0][:limit] if lines else type(error).__name__


class WorkerError(Exception):
    reason: Reason = Reason.INTERNAL_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.reason]

    @property
    def retryable(self) -> bool:
        return self.reason not in PERMANENT


class InvalidSpec(WorkerError):
    reason = Reason.INVALID_SPEC


class ModelNotFound(WorkerError):
    reason = Reason.MODEL_NOT_FOUND


class ModelCorrupt(WorkerError):
    reason = Reason.MODEL_CORRUPT


class InputShapeMismatch(WorkerError):
    reason = Reason.INPUT_SHAPE_MISMATCH


class UnsupportedOp(WorkerError):
    reason = Reason.UNSUPPORTED_OP


class CalibrationDataInvalid(WorkerError):
    reason = Reason.CALIBRATION_DATA_INVALID


class ValidationDataInvalid(WorkerError):
    reason = Reason.VALIDATION_DATA_INVALID


class AccuracyBudgetExceeded(WorkerError):
    reason = Reason.ACCURACY_BUDGET_EXCEEDED


class BuildFailed(WorkerError):
    reason = Reason.BUILD_FAILED


class StorageFailure(WorkerError):
    reason = Reason.STORAGE_ERROR


class BackendUnavailable(WorkerError):
    """The backend's framework is not installed in this image."""

    reason = Reason.BACKEND_UNAVAILABLE

    def __init__(self, backend: str, missing: str, image_hint: str) -> None:
        super().__init__(
            f"backend {backend} is not available in this image: {missing} is not installed; "
            f"run this target in {image_hint}"
        )
        self.backend = backend
