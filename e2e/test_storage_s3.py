"""The S3 store and manifest-last publishing against a real S3 server (MinIO on loopback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from kubeopt.storage.errors import ManifestMismatch, ObjectNotFound, StorageError
from kubeopt.storage.manifest import verify
from kubeopt.storage.publish import publish_folder
from kubeopt.storage.store import S3Settings, S3Store
from kubeopt.storage.uri import parse_uri


@pytest.fixture()
def s3_env(s3_server: Any, monkeypatch: pytest.MonkeyPatch) -> S3Store:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    client = boto3.client("s3", endpoint_url=s3_server.endpoint_url, region_name="us-east-1",
                          aws_access_key_id=s3_server.access_key, aws_secret_access_key=s3_server.secret_key)
    if "artifacts" not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket="artifacts")
    return S3Store(S3Settings(endpoint_url=s3_server.endpoint_url))


def test_published_artifact_verifies_from_the_bucket(s3_env: S3Store, tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"onnx-bytes" * 100)
    (tmp_path / "report.json").write_text("{}")
    dest = parse_uri("s3://artifacts/runs/one")

    published = publish_folder(s3_env, tmp_path, dest, {"target": "one"})

    assert [e.path for e in verify(s3_env, dest)] == ["model.onnx", "report.json"]
    assert published.size > 1000


def test_an_object_changed_after_publishing_fails_verification(s3_env: S3Store, tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"original")
    dest = parse_uri("s3://artifacts/runs/two")
    publish_folder(s3_env, tmp_path, dest, {})

    s3_env.put_bytes(b"changed!", dest.join("model.onnx"))

    with pytest.raises(ManifestMismatch):
        verify(s3_env, dest)


def test_missing_object_is_not_found(s3_env: S3Store) -> None:
    with pytest.raises(ObjectNotFound):
        s3_env.get_bytes(parse_uri("s3://artifacts/nothing/here"))


def test_missing_bucket_says_to_check_the_bucket_and_endpoint(s3_env: S3Store) -> None:
    with pytest.raises(StorageError, match=r"bucket 'no-such-bucket' not found .* check the bucket name"):
        s3_env.put_bytes(b"x", parse_uri("s3://no-such-bucket/key"))


def test_wrong_credentials_point_at_the_secret(s3_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "wrong-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    store = S3Store(S3Settings(endpoint_url=s3_server.endpoint_url))

    with pytest.raises(StorageError, match=r"access denied .* check the credentials in storage.secretRef"):
        store.put_bytes(b"x", parse_uri("s3://artifacts/denied"))
