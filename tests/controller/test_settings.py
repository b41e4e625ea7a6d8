from __future__ import annotations

import json

import pytest

from kubeopt.api.spec import BackendName, Images
from kubeopt.controller.settings import OperatorSettings, SettingsError, WorkerPod


def test_images_per_backend_come_from_the_environment() -> None:
    env = {"KUBEOPT_WORKER_IMAGE": "worker:1", "KUBEOPT_WORKER_IMAGE_TF_TRT": "worker-tf:1"}

    settings = OperatorSettings.from_env(env)

    assert settings.image_for(BackendName.TF_TRT, Images()) == "worker-tf:1"
    assert settings.image_for(BackendName.ONNXRUNTIME, Images()) == "worker:1"


def test_the_specs_own_image_wins_over_its_default_and_the_operators() -> None:
    settings = OperatorSettings(default_image="op:1", images={BackendName.TENSORRT: "op-trt:1"})

    assert settings.image_for(BackendName.TENSORRT, Images(tensorrt="mine:1", default="mine-all:1")) == "mine:1"
    assert settings.image_for(BackendName.TENSORRT, Images(default="mine-all:1")) == "mine-all:1"
    assert settings.image_for(BackendName.TENSORRT, Images()) == "op-trt:1"


def test_settings_are_frozen() -> None:
    settings = OperatorSettings()

    try:
        settings.metrics_port = 1  # type: ignore[misc]
    except AttributeError:
        return
    raise AssertionError("settings could be changed")


def test_the_worker_service_account_comes_from_the_environment_with_a_default() -> None:
    assert OperatorSettings.from_env({}).worker_service_account == "kubeopt-worker"
    assert OperatorSettings.from_env({"KUBEOPT_WORKER_SERVICE_ACCOUNT": "ml-worker"}).worker_service_account \
        == "ml-worker"


def test_worker_pod_settings_come_from_the_charts_environment() -> None:
    env = {"KUBEOPT_WORKER_SERVICE_ACCOUNT_CREATE": "false",
           "KUBEOPT_WORKER_SERVICE_ACCOUNT_ANNOTATIONS": json.dumps({"iam.gke.io/gcp-service-account": "w@p"}),
           "KUBEOPT_JOB_POD_ANNOTATIONS": json.dumps({"team": "ml"}),
           "KUBEOPT_JOB_PRIORITY_CLASS_NAME": "batch-low",
           "KUBEOPT_JOB_IMAGE_PULL_SECRETS": json.dumps(["regcred"]),
           "KUBEOPT_JOB_ENV": json.dumps([{"name": "HF_HUB_OFFLINE", "value": "1"}])}

    pod = OperatorSettings.from_env(env).worker_pod

    assert pod == WorkerPod(create_service_account=False,
                            service_account_annotations={"iam.gke.io/gcp-service-account": "w@p"},
                            annotations={"team": "ml"}, priority_class_name="batch-low",
                            image_pull_secrets=("regcred",), env=(("HF_HUB_OFFLINE", "1"),))


def test_without_chart_settings_the_operator_creates_a_plain_worker_account() -> None:
    assert OperatorSettings.from_env({}).worker_pod == WorkerPod()
    assert WorkerPod().create_service_account


@pytest.mark.parametrize(("name", "value", "names"), [
    ("KUBEOPT_JOB_POD_ANNOTATIONS", "{not json", "jobs.podAnnotations"),
    ("KUBEOPT_JOB_POD_ANNOTATIONS", json.dumps({"a": 1}), "jobs.podAnnotations"),
    ("KUBEOPT_WORKER_SERVICE_ACCOUNT_ANNOTATIONS", json.dumps(["a"]), "workerServiceAccount.annotations"),
    ("KUBEOPT_JOB_ENV", json.dumps([{"name": "X", "valueFrom": {}}]), "jobs.env"),
    ("KUBEOPT_JOB_ENV", json.dumps([{"name": "AWS_REGION", "value": "eu-west-1"}]), "storage.region"),
    ("KUBEOPT_JOB_IMAGE_PULL_SECRETS", json.dumps("regcred"), "imagePullSecrets"),
    ("KUBEOPT_WORKER_SERVICE_ACCOUNT_CREATE", "maybe", "true or false"),
    ("KUBEOPT_LIVENESS_TIMEOUT", "soon", "livenessTimeoutSeconds"),
    ("KUBEOPT_LIVENESS_TIMEOUT", "0", "livenessTimeoutSeconds"),
])
def test_a_malformed_chart_setting_is_refused_by_its_name(name: str, value: str, names: str) -> None:
    with pytest.raises(SettingsError, match=name) as raised:
        OperatorSettings.from_env({name: value})

    assert names in str(raised.value)


def test_the_liveness_timeout_comes_from_the_environment_with_a_default() -> None:
    assert OperatorSettings.from_env({}).liveness_timeout == 180.0
    assert OperatorSettings.from_env({"KUBEOPT_LIVENESS_TIMEOUT": "45"}).liveness_timeout == 45.0
