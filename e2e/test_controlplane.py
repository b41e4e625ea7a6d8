"""The real parts work: a control plane built from source, an S3 server, helm."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import boto3
import pytest
from botocore.config import Config as BotoConfig
from kubeopt_e2e import S3Server
from kubeopt_e2e.clients import Helm, Kubectl, uses_external_cluster
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

T = TypeVar("T")


def eventually(what: str, probe: Callable[[], T | None], timeout: float = 90.0, interval: float = 0.5) -> T:
    """Poll ``probe`` until it returns something other than None (or False)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def gone(read: Callable[[], object]) -> bool:
    try:
        read()
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


class _Serializer(Protocol):
    def sanitize_for_serialization(self, obj: object) -> Any: ...


def as_dict(api: client.ApiClient, obj: object) -> Any:
    """An API object as the JSON the server sent (camelCase keys, absent fields left out)."""
    return cast(_Serializer, api).sanitize_for_serialization(obj)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def api(control_plane: Path) -> Iterator[client.ApiClient]:
    new_client = cast(Callable[..., client.ApiClient], config.new_client_from_config)
    api_client = new_client(config_file=str(control_plane))
    with api_client:
        yield api_client


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    """A fresh namespace whose pods must meet the ``restricted`` Pod Security Standard."""
    core = client.CoreV1Api(api)
    name = unique("e2e")
    labels = {"pod-security.kubernetes.io/enforce": "restricted"}
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
    eventually(f"service account {name}/default", lambda: _default_sa(core, name), timeout=60)
    yield name
    core.delete_namespace(name)


def _default_sa(core: client.CoreV1Api, namespace: str) -> bool:
    try:
        core.read_namespaced_service_account("default", namespace)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def restricted_container(name: str = "main") -> client.V1Container:
    return client.V1Container(
        name=name,
        image="registry.invalid/kubeopt/none:0",
        command=["true"],
        security_context=client.V1SecurityContext(
            allow_privilege_escalation=False,
            run_as_non_root=True,
            run_as_user=65532,
            capabilities=client.V1Capabilities(drop=["ALL"]),
            seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
        ),
    )


def test_the_api_server_reports_version_v1_35_4(api: client.ApiClient) -> None:
    if uses_external_cluster():
        pytest.skip("running against an external cluster")
    info = client.VersionApi(api).get_code()
    assert info.git_version == "v1.35.4"
    assert (info.major, info.minor) == ("1", "35")


def test_kubectl_talks_to_the_cluster_as_admin(kubectl: Kubectl) -> None:
    assert kubectl("get", "namespace", "default", "-o", "name").stdout.strip() == "namespace/default"
    assert kubectl("auth", "can-i", "*", "*").stdout.strip() == "yes"


def test_a_namespace_can_be_created_and_deleted(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    name = unique("ns")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_config_map(
        name, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="content"), data={"a": "b"})
    )
    core.delete_namespace(name)
    # The namespace controller deletes the content, then removes the "kubernetes" finalizer.
    eventually(f"namespace {name} to be finalized", lambda: gone(lambda: core.read_namespace(name)))


def test_a_job_gets_its_pod_from_the_job_controller(api: client.ApiClient, namespace: str) -> None:
    batch = client.BatchV1Api(api)
    core = client.CoreV1Api(api)
    job = as_dict(
        api,
        batch.create_namespaced_job(
            namespace,
            client.V1Job(
                metadata=client.V1ObjectMeta(name="worker"),
                spec=client.V1JobSpec(
                    backoff_limit=0,
                    ttl_seconds_after_finished=60,
                    template=client.V1PodTemplateSpec(
                        spec=client.V1PodSpec(restart_policy="Never", containers=[restricted_container()])
                    ),
                ),
            ),
        ),
    )

    def job_pods() -> list[Any] | None:
        pods = core.list_namespaced_pod(namespace, label_selector="batch.kubernetes.io/job-name=worker")
        return as_dict(api, pods)["items"] or None

    (pod,) = eventually("the job controller to create a pod", job_pods)
    uid = job["metadata"]["uid"]
    assert pod["metadata"]["labels"]["job-name"] == "worker"
    assert pod["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] == uid
    (owner,) = pod["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == ("Job", "worker", uid, True)
    # No kubelet and no scheduler: the pod is stored and stays Pending on no node.
    assert pod["status"]["phase"] == "Pending"
    assert "nodeName" not in pod["spec"]

    def active() -> int | None:
        count: int | None = as_dict(api, batch.read_namespaced_job("worker", namespace))["status"].get(
            "active"
        )
        return count

    assert eventually("the job to count its pod", active) == 1


def test_pod_security_admission_rejects_a_privileged_pod_in_a_restricted_namespace(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    privileged = client.V1Pod(
        metadata=client.V1ObjectMeta(name="privileged"),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="main",
                    image="registry.invalid/kubeopt/none:0",
                    security_context=client.V1SecurityContext(privileged=True),
                )
            ]
        ),
    )
    with pytest.raises(ApiException) as rejected:
        core.create_namespaced_pod(namespace, privileged)
    assert rejected.value.status == 403
    assert "violates PodSecurity" in str(rejected.value.body)
    compliant = client.V1Pod(
        metadata=client.V1ObjectMeta(name="compliant"),
        spec=client.V1PodSpec(containers=[restricted_container()]),
    )
    assert as_dict(api, core.create_namespaced_pod(namespace, compliant))["metadata"]["name"] == "compliant"


def test_the_garbage_collector_deletes_a_configmap_whose_owner_is_deleted(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    owner = as_dict(
        api,
        core.create_namespaced_config_map(
            namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
        ),
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name="dependent",
                owner_references=[
                    client.V1OwnerReference(
                        api_version="v1", kind="ConfigMap", name="owner", uid=owner["metadata"]["uid"]
                    )
                ],
            )
        ),
    )
    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")
    eventually(
        "the garbage collector to delete the dependent",
        lambda: gone(lambda: core.read_namespaced_config_map("dependent", namespace)),
    )


def test_a_service_account_token_authenticates_as_that_service_account(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
    issued = core.create_namespaced_service_account_token("default", namespace, request)
    token = as_dict(api, issued)["status"]["token"]
    conf = client.Configuration()
    conf.host = api.configuration.host
    conf.ssl_ca_cert = api.configuration.ssl_ca_cert
    conf.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(conf) as as_sa:
        review = client.AuthenticationV1Api(as_sa).create_self_subject_review(client.V1SelfSubjectReview())
        user = as_dict(as_sa, review)["status"]["userInfo"]
        assert user["username"] == f"system:serviceaccount:{namespace}:default"
        # RBAC: a service account without bindings may not list pods.
        with pytest.raises(ApiException) as forbidden:
            client.CoreV1Api(as_sa).list_namespaced_pod(namespace)
        assert forbidden.value.status == 403


def test_an_s3_bucket_holds_an_object_put_into_it(s3_server: S3Server) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
        region_name=s3_server.region,
        config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )
    bucket = unique("models")
    s3.create_bucket(Bucket=bucket)
    payload = bytes(range(256)) * 4096  # 1 MiB, binary
    s3.put_object(Bucket=bucket, Key="resnet/model.onnx", Body=payload)
    assert s3.get_object(Bucket=bucket, Key="resnet/model.onnx")["Body"].read() == payload
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="resnet/")
    assert [(o["Key"], o["Size"]) for o in listed["Contents"]] == [("resnet/model.onnx", len(payload))]
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=bucket, Key="missing")


def test_helm_version_prints_v3_22_0(helm_offline: Helm) -> None:
    assert helm_offline("version", "--short").stdout.strip().startswith("v3.22.0")
    assert 'Version:"v3.22.0"' in helm_offline("version").stdout


def test_helm_installs_a_chart_into_the_cluster(
    helm: Helm, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    helm("create", str(tmp_path / "demo"))
    helm("install", "demo", str(tmp_path / "demo"), "--namespace", namespace)
    assert "STATUS: deployed" in helm("status", "demo", "--namespace", namespace).stdout
    deployment = kubectl.json("get", "deployment", "demo", "--namespace", namespace)
    assert deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    helm("uninstall", "demo", "--namespace", namespace)
    assert kubectl("get", "deployment", "--namespace", namespace, "-o", "name").stdout.strip() == ""
