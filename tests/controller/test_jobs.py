from __future__ import annotations

import json
import re

from kubeopt.api.reasons import EXIT_CODES, PERMANENT, Reason
from kubeopt.controller.jobs import build_job, permanent_exit_codes
from kubeopt.controller.settings import DEFAULT_WORKER_SERVICE_ACCOUNT, OperatorSettings, WorkerPod

from .conftest import owner, parsed


def _build(settings: OperatorSettings, target: int = 0, **overrides: object) -> dict:
    o = owner(**overrides)
    spec = parsed(o)
    return build_job(o, spec, spec.targets[target], settings)


def _container(job: dict) -> dict:
    return job["spec"]["template"]["spec"]["containers"][0]


def test_worker_runs_kubeopt_with_the_resource_json_and_no_shell(settings: OperatorSettings) -> None:
    command = _container(_build(settings))["command"]

    assert command[:2] == ["kubeopt", "run"]
    assert command[command.index("--target") + 1] == "ort-fp32"
    assert command[command.index("--termination-log") + 1] == "/dev/termination-log"
    assert command[command.index("--workspace") + 1] == "/workspace"
    document = json.loads(command[command.index("--spec-json") + 1])
    assert document["metadata"] == {"name": "digits", "namespace": "ml", "generation": 1}
    assert document["spec"]["targets"][0]["name"] == "ort-fp32"


def test_pod_runs_as_non_root_on_a_read_only_root_filesystem(settings: OperatorSettings) -> None:
    job = _build(settings)

    context = _container(job)["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == 65532
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert job["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_scratch_space_is_an_empty_dir_at_workspace_and_tmp(settings: OperatorSettings) -> None:
    job = _build(settings)

    mounts = {m["mountPath"]: m["name"] for m in _container(job)["volumeMounts"]}
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert set(mounts) == {"/workspace", "/tmp"}
    assert all("emptyDir" in volumes[name] for name in mounts.values())


def test_gpu_limit_is_set_only_when_gpus_are_asked_for(settings: OperatorSettings) -> None:
    with_gpu = _container(_build(settings, resources={"gpu": 2, "memory": "8Gi"}))["resources"]
    cpu_only = [{"name": "ort-fp32", "backend": "onnxruntime"}]  # tensorrt needs a GPU: refused with gpu 0
    without = _container(_build(settings, resources={"gpu": 0}, targets=cpu_only))["resources"]

    assert with_gpu["limits"] == {"nvidia.com/gpu": "2", "memory": "8Gi"}
    assert with_gpu["requests"] == {"memory": "8Gi"}
    assert "nvidia.com/gpu" not in without.get("limits", {})


def test_node_selector_and_tolerations_are_passed_to_the_pod(settings: OperatorSettings) -> None:
    pod = _build(settings, resources={"nodeSelector": {"gpu": "h100"},
                                      "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                                                       "effect": "NoSchedule"}]})["spec"]["template"]["spec"]

    assert pod["nodeSelector"] == {"gpu": "h100"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_pod_failure_policy_fails_the_job_at_once_on_permanent_exit_codes(settings: OperatorSettings) -> None:
    job = _build(settings)

    rule = job["spec"]["podFailurePolicy"]["rules"][0]
    assert rule["action"] == "FailJob"
    assert rule["onExitCodes"]["containerName"] == "worker"
    assert rule["onExitCodes"]["values"] == permanent_exit_codes()
    assert EXIT_CODES[Reason.ACCURACY_BUDGET_EXCEEDED] in rule["onExitCodes"]["values"]
    assert EXIT_CODES[Reason.STORAGE_ERROR] not in rule["onExitCodes"]["values"]
    assert len(permanent_exit_codes()) == len(PERMANENT)
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_storage_credentials_come_only_from_the_secret(settings: OperatorSettings) -> None:
    container = _container(_build(settings, storage={"secretRef": {"name": "s3"}, "endpoint": "http://minio:9000",
                                                     "region": "eu-1"}))

    env = {e["name"]: e["value"] for e in container["env"]}
    assert container["envFrom"] == [{"secretRef": {"name": "s3"}}]
    assert env["AWS_ENDPOINT_URL_S3"] == "http://minio:9000"
    assert env["AWS_REGION"] == "eu-1"
    assert not any("SECRET" in name or "KEY" in name for name in env)


def test_job_limits_come_from_the_spec(settings: OperatorSettings) -> None:
    spec = _build(settings, backoffLimit=3, activeDeadlineSeconds=600, ttlSecondsAfterFinished=60)["spec"]

    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (3, 600, 60)
    assert "ttlSecondsAfterFinished" not in _build(settings)["spec"]


def test_job_and_pod_carry_the_kubeopt_labels(settings: OperatorSettings) -> None:
    job = _build(settings, target=1)

    assert job["metadata"]["labels"]["kubeopt.io/target"] == "trt-fp16"
    assert job["spec"]["template"]["metadata"]["labels"] == job["metadata"]["labels"]
    assert job["metadata"]["name"].startswith("digits-trt-fp16-")


def test_termination_message_falls_back_to_logs_on_error(settings: OperatorSettings) -> None:
    assert _container(_build(settings))["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_every_job_runs_under_the_operators_worker_account_without_a_token() -> None:
    default = _build(OperatorSettings())["spec"]["template"]["spec"]
    chosen = _build(OperatorSettings(worker_service_account="team-worker"))["spec"]["template"]["spec"]

    assert default["serviceAccountName"] == DEFAULT_WORKER_SERVICE_ACCOUNT == "kubeopt-worker"
    assert chosen["serviceAccountName"] == "team-worker"
    assert default["automountServiceAccountToken"] is False and chosen["automountServiceAccountToken"] is False
    assert "serviceAccount" not in default  # the deprecated alias is never set either


def test_no_spec_field_reaches_the_pods_service_account(settings: OperatorSettings) -> None:
    o = owner()
    o.spec["serviceAccountName"] = "controller-manager"  # not a spec field: parsing refuses it

    try:
        parsed(o)
    except ValueError as error:
        assert "serviceAccountName" in str(error)
    else:
        raise AssertionError("a spec naming a ServiceAccount was accepted")
    assert _build(settings)["spec"]["template"]["spec"]["serviceAccountName"] == "kubeopt-worker"


def test_the_pod_mounts_only_empty_dirs_and_asks_for_no_host_namespace(settings: OperatorSettings) -> None:
    pod = _build(settings, storage={"secretRef": {"name": "s3"}})["spec"]["template"]["spec"]

    assert all(set(volume) == {"name", "emptyDir"} for volume in pod["volumes"])
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod)
    assert pod["containers"][0]["envFrom"] == [{"secretRef": {"name": "s3"}}]


LONGEST_NAME = ("m" * 63 + ".") * 3 + "m" * 61  # 253 characters, a valid DNS subdomain
LONGEST_NAMESPACE = "n" * 63
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def test_a_253_character_name_in_a_63_character_namespace_yields_valid_names_and_labels(
        settings: OperatorSettings) -> None:
    job = _build(settings, name=LONGEST_NAME, namespace=LONGEST_NAMESPACE, uid="0b7f2d9e-5a4c-4c61-9d3e-2f1a7c9e8b10")

    assert len(LONGEST_NAME) == 253
    name = job["metadata"]["name"]
    assert len(name) <= 63 and LABEL_VALUE.match(name) and ".-" not in name and "-." not in name
    for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        assert labels["kubeopt.io/optimization-uid"] == "0b7f2d9e-5a4c-4c61-9d3e-2f1a7c9e8b10"
        for value in labels.values():
            assert len(value) <= 63 and LABEL_VALUE.match(value), value


def test_the_workers_paths_do_not_grow_with_the_resources_name(settings: OperatorSettings) -> None:
    long_job = _build(settings, name=LONGEST_NAME, namespace=LONGEST_NAMESPACE)
    short_job = _build(settings)

    long_command, short_command = _container(long_job)["command"], _container(short_job)["command"]
    for flag in ("--workspace", "--termination-log", "--target"):
        assert long_command[long_command.index(flag) + 1] == short_command[short_command.index(flag) + 1]
    document = json.loads(long_command[long_command.index("--spec-json") + 1])
    assert document["metadata"] == {"name": LONGEST_NAME, "namespace": LONGEST_NAMESPACE, "generation": 1}
    assert document["spec"]["output"] == {"uri": "s3://artifacts/digits"}  # artifacts go to <output>/<target>/
    assert [m["mountPath"] for m in _container(long_job)["volumeMounts"]] == ["/workspace", "/tmp"]


def test_the_charts_pod_settings_reach_every_jobs_pod() -> None:
    settings = OperatorSettings(worker_pod=WorkerPod(annotations={"sidecar.istio.io/inject": "false"},
                                                     priority_class_name="batch-low", image_pull_secrets=("regcred",),
                                                     env=(("HF_HUB_OFFLINE", "1"),)))

    template = _build(settings, storage={"region": "eu-west-1"})["spec"]["template"]

    assert template["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    assert template["spec"]["priorityClassName"] == "batch-low"
    assert template["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    env = template["spec"]["containers"][0]["env"]
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in env and {"name": "AWS_REGION", "value": "eu-west-1"} in env


def test_without_chart_pod_settings_a_jobs_pod_has_no_annotations_priority_or_pull_secrets(
        settings: OperatorSettings) -> None:
    template = _build(settings)["spec"]["template"]

    assert "annotations" not in template["metadata"]
    assert not {"priorityClassName", "imagePullSecrets"} & set(template["spec"])
