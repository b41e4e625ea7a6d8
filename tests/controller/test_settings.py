from __future__ import annotations

from kubeopt.api.spec import BackendName, Images
from kubeopt.controller.settings import OperatorSettings


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
