"""Storage is checked before any work: a probe object is written and deleted under the output first."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import yaml

from kubeopt.api.reasons import EXIT_CODES, Reason
from tests.conftest import KUBEOPT, digits_resource

ORT = [{"name": "ort", "backend": "onnxruntime"}]


def run_without_credentials(tmp_path: Path, resource: dict[str, Any], **env: str) -> tuple[int, str, dict[str, Any]]:
    """`kubeopt run` with no AWS credentials anywhere (environment or ~/.aws), plus ``env``."""
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(resource))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    clean.update(HOME=str(tmp_path), **env)
    process = subprocess.run([*KUBEOPT, "run", str(tmp_path / "spec.yaml"), "--termination-log",
                              str(tmp_path / "termination-log"), "--device", "cpu"], capture_output=True, text=True,
                             timeout=300, cwd=tmp_path, env=clean)
    return process.returncode, process.stderr + process.stdout, json.loads((tmp_path / "termination-log").read_text())


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unwritable_output_fails_with_storage_error_before_the_model_is_loaded(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    resource = digits_resource(tmp_path / "absent.onnx", "onnx", tmp_path / "a-file" / "out", ORT)

    code, output, message = run_without_credentials(tmp_path, resource)

    # A path through a file stays unwritable however often the Job retries: permanent (retry by type).
    assert code == EXIT_CODES[Reason.STORAGE_MISCONFIGURED], output
    assert message["reason"] == "StorageMisconfigured"  # not ModelNotFound: the model was never looked at
    assert f"output.uri file://{tmp_path}/a-file/out is not writable" in message["message"]
    assert "load:" not in output


def test_missing_s3_credentials_are_named_before_any_work(tmp_path: Path) -> None:
    resource = digits_resource(tmp_path / "absent.onnx", "onnx", tmp_path / "out", ORT)
    resource["spec"]["output"]["uri"] = "s3://artifacts/digits"
    resource["spec"]["storage"] = {"endpoint": f"http://127.0.0.1:{closed_port()}"}

    code, output, message = run_without_credentials(tmp_path, resource)

    assert code == EXIT_CODES[Reason.STORAGE_ERROR], output
    assert "s3://artifacts/digits/.kubeopt-probe-" in message["message"]
    assert "no S3 credentials" in message["message"] and "storage.secretRef" in message["message"]


def test_a_local_run_uses_the_endpoint_the_spec_names(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    resource = digits_resource(tmp_path / "absent.onnx", "onnx", tmp_path / "out", ORT)
    resource["spec"]["output"]["uri"] = "s3://artifacts/digits"
    resource["spec"]["storage"] = {"endpoint": endpoint}

    code, output, message = run_without_credentials(
        tmp_path, resource, AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s",
        AWS_ENDPOINT_URL_S3="http://127.0.0.1:1")

    assert code == EXIT_CODES[Reason.STORAGE_ERROR], output
    assert f"EndpointConnectionError at {endpoint}" in message["message"], message["message"]
