"""Retry is a type: each storage or framework error becomes a worker error whose reason says
whether the Job tries again, and the Job's podFailurePolicy agrees with it."""

from __future__ import annotations

from typing import Any

import pytest
from boto3.exceptions import S3UploadFailedError
from botocore import exceptions as boto

from kubeopt.api.reasons import EXIT_CODES, RETRY, Reason, Retry
from kubeopt.controller.jobs import pod_failure_policy
from kubeopt.storage.errors import StorageError
from kubeopt.storage.store import translate_s3_error
from kubeopt.storage.uri import parse_uri
from kubeopt.worker.errors import (
    BuildFailed,
    PermanentError,
    StorageMisconfigured,
    WorkerError,
    is_out_of_memory,
    storage_failure,
)

URI = parse_uri("s3://artifacts/run/model.onnx")
ENDPOINT = "http://127.0.0.1:9000"


def client_error(code: str, status: int) -> boto.ClientError:
    return boto.ClientError({"Error": {"Code": code, "Message": code},
                             "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


def upload_failed(cause: Exception) -> S3UploadFailedError:
    """What boto3's upload_file raises: the ClientError is only its context, not its cause."""
    wrapped = S3UploadFailedError(f"Failed to upload model.onnx to artifacts/run/model.onnx: {cause}")
    wrapped.__context__ = cause
    return wrapped


def job_retries(reason: Reason) -> bool:
    """What the Job does with the worker's exit code: FailJob at once, or count it and retry."""
    fail_at_once = next(r for r in pod_failure_policy()["rules"] if r["action"] == "FailJob")
    return EXIT_CODES[reason] not in fail_at_once["onExitCodes"]["values"]


def through_the_worker(error: Exception) -> WorkerError:
    translated = translate_s3_error(error, "cannot write s3://artifacts/run/model.onnx", URI, ENDPOINT)
    return storage_failure("output.uri", translated)


STORAGE_TABLE: list[tuple[str, Any, Reason, bool]] = [
    ("bucket not found", client_error("NoSuchBucket", 404), Reason.STORAGE_MISCONFIGURED, False),
    ("invalid bucket name", client_error("InvalidBucketName", 400), Reason.STORAGE_MISCONFIGURED, False),
    ("access denied (a Secret can be fixed)", client_error("AccessDenied", 403), Reason.STORAGE_ERROR, True),
    ("unknown access key", client_error("InvalidAccessKeyId", 403), Reason.STORAGE_ERROR, True),
    ("throttled", client_error("SlowDown", 503), Reason.STORAGE_ERROR, True),
    ("server error", client_error("InternalError", 500), Reason.STORAGE_ERROR, True),
    ("a 502 with no code", client_error("", 502), Reason.STORAGE_ERROR, True),
    ("endpoint refused", boto.EndpointConnectionError(endpoint_url=ENDPOINT), Reason.STORAGE_ERROR, True),
    ("connect timeout", boto.ConnectTimeoutError(endpoint_url=ENDPOINT), Reason.STORAGE_ERROR, True),
    ("read timeout", boto.ReadTimeoutError(endpoint_url=ENDPOINT), Reason.STORAGE_ERROR, True),
    ("connection dropped", boto.ConnectionClosedError(endpoint_url=ENDPOINT), Reason.STORAGE_ERROR, True),
    ("proxy refused", boto.ProxyConnectionError(proxy_url="http://proxy:3128"), Reason.STORAGE_ERROR, True),
    ("no credentials", boto.NoCredentialsError(), Reason.STORAGE_ERROR, True),
    ("upload of a missing bucket", upload_failed(client_error("NoSuchBucket", 404)),
     Reason.STORAGE_MISCONFIGURED, False),
    ("upload throttled", upload_failed(client_error("SlowDown", 503)), Reason.STORAGE_ERROR, True),
]


@pytest.mark.parametrize(("error", "reason", "retried"), [row[1:] for row in STORAGE_TABLE],
                         ids=[row[0] for row in STORAGE_TABLE])
def test_a_storage_error_becomes_a_reason_that_the_job_retries_or_not(error: Exception, reason: Reason,
                                                                       retried: bool) -> None:
    failure = through_the_worker(error)

    assert failure.reason is reason
    assert failure.retryable is retried
    assert job_retries(failure.reason) is retried
    assert "output.uri" in failure.message


def test_bucket_not_found_names_the_bucket_and_what_to_check() -> None:
    failure = through_the_worker(client_error("NoSuchBucket", 404))

    assert "bucket 'artifacts' not found at http://127.0.0.1:9000; check the bucket name" in failure.message


def test_a_request_kubeopt_built_wrong_is_a_bug_and_propagates() -> None:
    with pytest.raises(boto.ParamValidationError):
        through_the_worker(boto.ParamValidationError(report="Bucket is required"))


def test_an_exception_from_outside_botocore_propagates() -> None:
    with pytest.raises(KeyError):
        through_the_worker(KeyError("Body"))


def test_torchs_out_of_memory_error_is_recognized_by_its_class_and_retried_as_a_build_failure() -> None:
    torch = pytest.importorskip("torch")

    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not is_out_of_memory(RuntimeError("OutOfMemoryError"))
    assert job_retries(BuildFailed.reason)


def test_dynamo_refusing_a_graph_is_unsupported_op_and_not_retried() -> None:
    torch = pytest.importorskip("torch")
    from kubeopt.worker.backends.torch_compile.backend import is_unsupported_by_dynamo

    class SubclassOfUnsupported(torch._dynamo.exc.Unsupported):
        pass

    assert is_unsupported_by_dynamo(torch, SubclassOfUnsupported("graph break"))
    assert not is_unsupported_by_dynamo(torch, RuntimeError("Unsupported"))
    assert not job_retries(Reason.UNSUPPORTED_OP)


def test_an_operator_the_onnx_exporter_cannot_translate_is_found_through_the_cause_chain() -> None:
    torch = pytest.importorskip("torch")
    from kubeopt.worker.convert import exporter_unsupported

    cause = torch.onnx.errors.UnsupportedOperatorError("aten::weird", 18, "")
    wrapper = RuntimeError("export failed")
    wrapper.__cause__ = cause

    assert exporter_unsupported(torch, wrapper)
    assert not exporter_unsupported(torch, RuntimeError("shape mismatch"))


def test_every_reason_a_worker_can_exit_with_is_in_the_retry_table() -> None:
    exits = {reason for reason in EXIT_CODES if reason is not Reason.SUCCEEDED}

    assert exits == set(RETRY)


def test_a_worker_error_class_whose_base_disagrees_with_the_table_is_refused_when_defined() -> None:
    with pytest.raises(TypeError, match=r"StorageError is Transient in api\.reasons\.RETRY but the class is Permanent"):
        class Wrong(PermanentError):
            reason = Reason.STORAGE_ERROR


def test_storage_errors_are_permanent_unless_typed_transient() -> None:
    assert not StorageError("unsupported scheme 'gs'").retryable
    assert isinstance(storage_failure("output.uri", StorageError("x")), StorageMisconfigured)
    assert RETRY[Reason.STORAGE_MISCONFIGURED] is Retry.PERMANENT
