"""Failure reasons a person can act on, each with the worker's exit code.

The worker exits with the code of the error's reason; the controller maps a Job's exit code
(or its termination message) back to the reason. Codes start at 10 so that they cannot be
mistaken for Python's own 1 (uncaught exception) or 2 (argparse usage error).
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    SUCCEEDED = "Succeeded"
    INVALID_SPEC = "InvalidSpec"
    MODEL_NOT_FOUND = "ModelNotFound"
    MODEL_CORRUPT = "ModelCorrupt"
    INPUT_SHAPE_MISMATCH = "InputShapeMismatch"
    UNSUPPORTED_OP = "UnsupportedOp"
    CALIBRATION_DATA_INVALID = "CalibrationDataInvalid"
    BACKEND_UNAVAILABLE = "BackendUnavailable"
    ACCURACY_BUDGET_EXCEEDED = "AccuracyBudgetExceeded"
    STORAGE_ERROR = "StorageError"
    BUILD_FAILED = "BuildFailed"
    UNSCHEDULABLE = "Unschedulable"
    OOM_KILLED = "OOMKilled"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    # The API server refused the target's Job (an admission policy, RBAC): the operator's own
    # reason, never a worker's exit code; the message is the server's.
    JOB_REJECTED = "JobRejected"
    INTERNAL_ERROR = "InternalError"
    # SIGTERM or SIGINT ended the run (eviction, deletion, Ctrl-C): nothing of it became current.
    INTERRUPTED = "Interrupted"
    # validation.uri is unreadable or does not fit the model (non-finite values, labels that are
    # not class indices of its output); calibration data has CalibrationDataInvalid.
    VALIDATION_DATA_INVALID = "ValidationDataInvalid"


EXIT_CODES: dict[Reason, int] = {
    Reason.SUCCEEDED: 0,
    Reason.INVALID_SPEC: 10,
    Reason.MODEL_NOT_FOUND: 11,
    Reason.MODEL_CORRUPT: 12,
    Reason.INPUT_SHAPE_MISMATCH: 13,
    Reason.UNSUPPORTED_OP: 14,
    Reason.CALIBRATION_DATA_INVALID: 15,
    Reason.BACKEND_UNAVAILABLE: 16,
    Reason.ACCURACY_BUDGET_EXCEEDED: 17,
    Reason.STORAGE_ERROR: 18,
    Reason.BUILD_FAILED: 19,
    Reason.INTERNAL_ERROR: 70,
    Reason.INTERRUPTED: 20,
    Reason.VALIDATION_DATA_INVALID: 21,
}

# Failures that a retry of the same Job cannot fix: the controller does not count them as
# transient and the Job's pod failure policy fails the Job at once.
PERMANENT: frozenset[Reason] = frozenset(
    {
        Reason.INVALID_SPEC,
        Reason.MODEL_NOT_FOUND,
        Reason.MODEL_CORRUPT,
        Reason.INPUT_SHAPE_MISMATCH,
        Reason.UNSUPPORTED_OP,
        Reason.CALIBRATION_DATA_INVALID,
        Reason.BACKEND_UNAVAILABLE,
        Reason.ACCURACY_BUDGET_EXCEEDED,
        Reason.VALIDATION_DATA_INVALID,
    }
)


def reason_for_exit_code(code: int) -> Reason:
    """Return the reason a worker exit code stands for (InternalError when unknown)."""
    for reason, value in EXIT_CODES.items():
        if value == code:
            return reason
    return Reason.INTERNAL_ERROR
