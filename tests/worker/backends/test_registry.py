from __future__ import annotations

import pytest

from kubeopt.api.spec import BackendName
from kubeopt.worker.backends.registry import BackendRegistry, default_registry


def test_every_backend_is_registered_once_by_name() -> None:
    assert default_registry().names() == sorted(BackendName)


def test_registering_a_name_twice_is_refused() -> None:
    registry = default_registry()
    duplicate = BackendRegistry()
    backend = registry.get(BackendName.ONNXRUNTIME)
    duplicate.register(backend)

    with pytest.raises(ValueError, match="already registered"):
        duplicate.register(backend)
