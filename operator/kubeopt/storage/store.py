"""Stores behind one small protocol: put a file, get a file, read bytes, list, delete."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kubeopt.storage.errors import ObjectNotFound, StorageError, TransientStorageError
from kubeopt.storage.uri import StorageURI


class Store(Protocol):
    def put_file(self, source: Path, dest: StorageURI) -> None: ...
    def put_bytes(self, data: bytes, dest: StorageURI) -> None: ...
    def get_file(self, source: StorageURI, dest: Path) -> None: ...
    def get_bytes(self, source: StorageURI) -> bytes: ...
    def exists(self, uri: StorageURI) -> bool: ...
    def list(self, prefix: StorageURI) -> Iterator[StorageURI]: ...
    def delete(self, uri: StorageURI) -> None: ...


# A full disk, an I/O error or a stale network mount may be gone on the next attempt.
TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EIO, errno.EAGAIN, errno.ETIMEDOUT, errno.ESTALE, errno.EDQUOT})


def _local_error(verb: str, path: Path, error: OSError) -> StorageError:
    kind = TransientStorageError if error.errno in TRANSIENT_ERRNOS else StorageError
    return kind(f"cannot {verb} {path}: {error.strerror or error}; check output.uri and permissions")


class LocalStore:
    """Files on a local or mounted file system; writes go to a temp name, then rename."""

    def put_file(self, source: Path, dest: StorageURI) -> None:
        target = dest.local_path
        self._mkdir(target.parent)
        tmp = target.with_name(f".{target.name}.partial")
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        except OSError as error:
            raise _local_error("write", target, error) from error

    def put_bytes(self, data: bytes, dest: StorageURI) -> None:
        target = dest.local_path
        self._mkdir(target.parent)
        tmp = target.with_name(f".{target.name}.partial")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, target)
        except OSError as error:
            raise _local_error("write", target, error) from error

    def get_file(self, source: StorageURI, dest: Path) -> None:
        path = source.local_path
        if path.is_dir():
            shutil.copytree(path, dest, dirs_exist_ok=True)
            return
        if not path.exists():
            raise ObjectNotFound(f"{source}: no such file")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)

    def get_bytes(self, source: StorageURI) -> bytes:
        try:
            return source.local_path.read_bytes()
        except (FileNotFoundError, NotADirectoryError) as error:
            raise ObjectNotFound(f"{source}: no such file") from error
        except OSError as error:
            raise _local_error("read", source.local_path, error) from error

    def exists(self, uri: StorageURI) -> bool:
        return uri.local_path.exists()

    def list(self, prefix: StorageURI) -> Iterator[StorageURI]:
        root = prefix.local_path
        if not root.exists():
            return
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.name.endswith(".partial"):
                yield StorageURI("file", "", str(path))

    def delete(self, uri: StorageURI) -> None:
        try:
            uri.local_path.unlink(missing_ok=True)
        except NotADirectoryError:
            return  # a parent is a file: nothing to delete; the write that follows reports it
        except OSError as error:
            raise _local_error("delete", uri.local_path, error) from error

    @staticmethod
    def _mkdir(path: Path) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _local_error("create", path, error) from error


@dataclass(frozen=True)
class S3Settings:
    """Connection settings; credentials come from the environment (the Job's Secret)."""

    endpoint_url: str | None = None
    region: str | None = None

    @classmethod
    def from_env(cls) -> S3Settings:
        return cls(
            endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None,
            region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None,
        )

    @classmethod
    def for_spec(cls, endpoint: str | None, region: str | None) -> S3Settings:
        """spec.storage's endpoint and region, else the environment's: a local run honours the spec as a Job does."""
        env = cls.from_env()
        return cls(endpoint_url=endpoint or env.endpoint_url, region=region or env.region)


class S3Store:
    """An S3 bucket through boto3, with a custom endpoint for MinIO and friends."""

    def __init__(self, settings: S3Settings) -> None:
        import boto3  # boto3 is light, but only the S3 path needs it
        from botocore.config import Config

        # A fresh session reads the credentials from the environment now; boto3's default
        # session would keep whatever it resolved first.
        self._client: Any = boto3.session.Session().client(
            "s3", endpoint_url=settings.endpoint_url, region_name=settings.region or "us-east-1",
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, s3={"addressing_style": "path"}),
        )
        self._endpoint = settings.endpoint_url or "AWS"

    def put_file(self, source: Path, dest: StorageURI) -> None:
        self._call("upload", dest, lambda: self._client.upload_file(str(source), dest.bucket, dest.key))

    def put_bytes(self, data: bytes, dest: StorageURI) -> None:
        self._call("write", dest, lambda: self._client.put_object(Bucket=dest.bucket, Key=dest.key, Body=data))

    def get_file(self, source: StorageURI, dest: Path) -> None:
        """Download one object, or every object under ``source/`` when it names a folder (SavedModel)."""
        if not source.key.endswith("/") and self.exists(source):
            dest.parent.mkdir(parents=True, exist_ok=True)
            self._call("download", source, lambda: self._client.download_file(source.bucket, source.key, str(dest)))
            return
        folder = StorageURI("s3", source.bucket, source.key.rstrip("/") + "/")
        items = list(self.list(folder))
        if not items:
            raise ObjectNotFound(f"{source}: no such object")
        for item in items:
            relative = item.key[len(folder.key):]
            dest.joinpath(relative).parent.mkdir(parents=True, exist_ok=True)
            self._call("download", item, lambda i=item, r=relative: self._client.download_file(
                i.bucket, i.key, str(dest / r)))

    def get_bytes(self, source: StorageURI) -> bytes:
        response = self._call("read", source, lambda: self._client.get_object(Bucket=source.bucket, Key=source.key))
        return bytes(response["Body"].read())

    def exists(self, uri: StorageURI) -> bool:
        try:
            self._client.head_object(Bucket=uri.bucket, Key=uri.key)
            return True
        except Exception as error:
            translated = self._translate("check", uri, error)
            if isinstance(translated, ObjectNotFound):
                return False
            raise translated from error

    def list(self, prefix: StorageURI) -> Iterator[StorageURI]:
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=prefix.bucket, Prefix=prefix.key):
                for item in page.get("Contents", []):
                    yield StorageURI("s3", prefix.bucket, item["Key"])
        except Exception as error:
            raise self._translate("list", prefix, error) from error

    def delete(self, uri: StorageURI) -> None:
        self._call("delete", uri, lambda: self._client.delete_object(Bucket=uri.bucket, Key=uri.key))

    def _call(self, verb: str, uri: StorageURI, action: Any) -> Any:
        try:
            return action()
        except Exception as error:
            raise self._translate(verb, uri, error) from error

    def _translate(self, verb: str, uri: StorageURI, error: Exception) -> StorageError:
        return translate_s3_error(error, f"cannot {verb} {uri}", uri, self._endpoint)


NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
CREDENTIAL_CODES = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403",
                              "ExpiredToken", "InvalidToken"})
# Codes of answers that a later attempt may not get: the server busy, slow or confused.
TRANSIENT_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError",
                             "ServiceUnavailable", "RequestTimeTooSkewed", "503", "500"})


def translate_s3_error(error: Exception, doing: str, uri: StorageURI, endpoint: str) -> StorageError:
    """A botocore/boto3 exception as a typed StorageError (recognized with ``isinstance`` on
    botocore's own classes, subclasses included); anything else is a programming error and is
    raised again.

    Permanent: no such object or bucket, and every other 4xx answer. Transient: no connection,
    a timeout or a dropped connection, a 5xx or throttling answer, refused or missing
    credentials (the Job's Secret can be fixed while the Job backs off).
    """
    from boto3.exceptions import S3UploadFailedError
    from botocore import exceptions as boto

    if isinstance(error, S3UploadFailedError) and isinstance(error.__context__, Exception):
        error = error.__context__  # boto3 wraps the ClientError of a failed upload
    if isinstance(error, boto.ClientError):
        return _client_error(error, doing, uri, endpoint)
    if isinstance(error, boto.NoCredentialsError | boto.PartialCredentialsError):
        return TransientStorageError(f"{doing}: no S3 credentials ({type(error).__name__}: AWS_ACCESS_KEY_ID and "
                                     "AWS_SECRET_ACCESS_KEY are not set); name a Secret holding them in "
                                     "storage.secretRef, or export them for a local run")
    if isinstance(error, boto.ConnectionError | boto.HTTPClientError):  # refused, timed out, dropped
        return TransientStorageError(f"{doing}: {type(error).__name__} at {endpoint}; check storage.endpoint "
                                     "and storage.secretRef")
    if isinstance(error, boto.ParamValidationError):
        raise error  # kubeopt built a bad request: a programming error
    if isinstance(error, boto.BotoCoreError):
        return TransientStorageError(f"{doing}: {type(error).__name__}: {error}")
    raise error


def _client_error(error: Any, doing: str, uri: StorageURI, endpoint: str) -> StorageError:
    code = _error_code(error)
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code in NOT_FOUND_CODES:
        return ObjectNotFound(f"{uri}: no such object")
    if code == "NoSuchBucket":
        return StorageError(f"{doing}: bucket {uri.bucket!r} not found at {endpoint}; check the bucket name and "
                            "storage.endpoint")
    if code in CREDENTIAL_CODES:
        return TransientStorageError(f"{doing}: access denied ({code}); check the credentials in storage.secretRef")
    if code in TRANSIENT_CODES or status >= 500:
        return TransientStorageError(f"{doing}: the store answered {code or status}; retrying may help")
    return StorageError(f"{doing}: the store refused the request ({code or status}: {first_words(error)})")


def first_words(error: Exception) -> str:
    return str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def store_for(uri: StorageURI, s3: S3Settings | None = None) -> Store:
    """Return the store that serves ``uri``."""
    if uri.scheme == "s3":
        return S3Store(s3 or S3Settings.from_env())
    return LocalStore()
