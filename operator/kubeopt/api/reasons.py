"""Failure reasons a person can act on, each with the worker's exit code and whether a retry helps.

The worker exits with the code of the error's reason; the controller maps a Job's exit code
(or its termination message) back to the reason. Codes start at 10 so that they cannot be
mistaken for Python's own 1 (uncaught exception) or 2 (argparse usage error).

Whether a retry can help is part of the reason (``RETRY``), as kopf makes it part of the error
type: the worker's and the storage layer's error classes each declare one reason and so one
``Retry``, and the Job's podFailurePolicy fails the Job at once on the exit code of every
permanent reason (``controller.jobs.pod_failure_policy``). One table, three readers.
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
    # The store answered and refused for good (bucket not found, invalid bucket name): a retry
    # of the same spec cannot fix it. StorageError is what a retry may fix (endpoint down,
    # timeouts, throttling, credentials a Secret update can fix).
    STORAGE_MISCONFIGURED = "StorageMisconfigured"
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
    Reason.INTERRUPTED: 20,
    Reason.VALIDATION_DATA_INVALID: 21,
    Reason.STORAGE_MISCONFIGURED: 22,
    Reason.INTERNAL_ERROR: 70,
}

class Retry(StrEnum):
    PERMANENT = "Permanent"  # a retry of the same Job cannot fix it: the Job fails at once
    TRANSIENT = "Transient"  # a retry may succeed: the Job's backoffLimit applies


RETRY: dict[Reason, Retry] = {
    Reason.INVALID_SPEC: Retry.PERMANENT,
    Reason.MODEL_NOT_FOUND: Retry.PERMANENT,
    Reason.MODEL_CORRUPT: Retry.PERMANENT,
    Reason.INPUT_SHAPE_MISMATCH: Retry.PERMANENT,
    Reason.UNSUPPORTED_OP: Retry.PERMANENT,
    Reason.CALIBRATION_DATA_INVALID: Retry.PERMANENT,
    Reason.BACKEND_UNAVAILABLE: Retry.PERMANENT,
    Reason.ACCURACY_BUDGET_EXCEEDED: Retry.PERMANENT,
    Reason.VALIDATION_DATA_INVALID: Retry.PERMANENT,
    Reason.STORAGE_MISCONFIGURED: Retry.PERMANENT,
    Reason.STORAGE_ERROR: Retry.TRANSIENT,
    Reason.BUILD_FAILED: Retry.TRANSIENT,  # out of GPU memory beside another process, a flaky driver
    Reason.INTERNAL_ERROR: Retry.TRANSIENT,
    Reason.INTERRUPTED: Retry.TRANSIENT,  # SIGTERM: an eviction or a node drain; a deadline ends the Job anyway
}

# Failures that a retry of the same Job cannot fix: the controller does not count them as
# transient and the Job's pod failure policy fails the Job at once.
PERMANENT: frozenset[Reason] = frozenset(reason for reason, retry in RETRY.items() if retry is Retry.PERMANENT)


def reason_for_exit_code(code: int) -> Reason:
    """Return the reason a worker exit code stands for (InternalError when unknown)."""
    for reason, value in EXIT_CODES.items():
        if value == code:
            return reason
    return Reason.INTERNAL_ERROR
