"""Every place that lists backends agrees with ``kubeopt.api.backends.BACKENDS``.

The places that cannot be derived (typed pydantic fields, the chart's values, pyproject, the
images, the worker's packages and classes) are checked here, one test per place, each naming what is missing;
so are the README's backend table and its "Adding a backend" steps.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import yaml

from kubeopt.api.backends import BACKENDS, ModelFormat, backend_table, image_env_suffix, image_key, option_field
from kubeopt.api.spec import Images, Target
from kubeopt.controller.settings import OperatorSettings
from kubeopt.worker.backends.registry import default_registry
from kubeopt.worker.calibration_methods import ALGORITHMS, TOOLS
from kubeopt.worker.frameworks import IMAGES
from kubeopt.worker.source import FAMILY, Representation
from tests.chart.helm import require_helm

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubeopt"


def test_one_spelling_per_backend_maps_to_python_wire_and_environment_names() -> None:
    spellings = {name.value: (option_field(name), image_key(name), image_env_suffix(name)) for name in BACKENDS}

    assert spellings == {
        "tensorrt": ("tensorrt", "tensorrt", "TENSORRT"),
        "tf-trt": ("tf_trt", "tfTrt", "TF_TRT"),
        "onnxruntime": ("onnxruntime", "onnxruntime", "ONNXRUNTIME"),
        "torch-compile": ("torch_compile", "torchCompile", "TORCH_COMPILE"),
    }


def test_target_has_one_options_block_per_backend_typed_by_its_description() -> None:
    blocks = {name: info for name, info in Target.model_fields.items() if name not in ("name", "backend", "precision")}

    assert set(blocks) == {d.option_field for d in BACKENDS.values()}
    for description in BACKENDS.values():
        info = blocks[description.option_field]
        assert info.alias == description.image_key
        assert description.options in getattr(info.annotation, "__args__", ()), description.name


def test_images_has_one_field_per_backend_beside_default_and_pull_policy() -> None:
    assert set(Images.model_fields) == {"default", "pull_policy", *(d.option_field for d in BACKENDS.values())}


def test_chart_values_and_schema_have_a_worker_image_per_backend() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())["workerImages"]
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["workerImages"]["properties"]
    expected = {"default", *(d.image_key for d in BACKENDS.values())}

    assert set(values) == expected
    assert set(schema) == expected


def test_admission_policy_checks_the_image_field_of_every_backend() -> None:
    policy = (CHART / "templates" / "admission-policies.yaml").read_text()
    match = re.search(r"\$imageFields := list ((?:\"[A-Za-z]+\"\s*)+)", policy)

    assert match is not None
    assert set(re.findall(r"\"([A-Za-z]+)\"", match.group(1))) == {"default", *(d.image_key for d in BACKENDS.values())}


def test_every_backend_has_a_worker_image_folder() -> None:
    missing = [d.image for d in BACKENDS.values() if not (ROOT / "images" / d.image).is_dir()]

    assert missing == []


def test_pyproject_has_each_extra_and_keeps_each_framework_typed_loosely_and_out_of_the_operator() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    loose = {m for o in pyproject["tool"]["mypy"]["overrides"] if o.get("ignore_missing_imports") for m in o["module"]}
    forbidden = {m for c in pyproject["tool"]["importlinter"]["contracts"] for m in c.get("forbidden_modules", [])}

    for description in BACKENDS.values():
        assert description.extra in extras, description.name
        for module in description.frameworks:
            assert f"{module}.*" in loose, (description.name, module)
            assert module in forbidden, (description.name, module)


def test_the_worker_registers_exactly_the_described_backends() -> None:
    assert default_registry().names() == sorted(BACKENDS)


def test_each_backend_is_a_package_of_its_own_with_its_backend_and_runner() -> None:
    registry = default_registry()
    for name, description in BACKENDS.items():
        package = ROOT / "operator" / "kubeopt" / "worker" / "backends" / description.option_field

        assert (package / "backend.py").is_file(), name
        assert (package / "runner.py").is_file(), name
        assert type(registry.get(name)).__module__ == f"kubeopt.worker.backends.{description.option_field}.backend"


def test_the_independence_contract_names_every_backends_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    independent = [c for c in pyproject["tool"]["importlinter"]["contracts"] if c["type"] == "independence"]

    assert len(independent) == 1
    assert set(independent[0]["modules"]) == {f"kubeopt.worker.backends.{d.option_field}" for d in BACKENDS.values()}


def test_each_backend_consumes_a_representation_every_accepted_format_turns_into() -> None:
    registry = default_registry()
    for name, description in BACKENDS.items():
        consumes = registry.get(name).consumes
        for fmt in description.formats:
            # ONNX is reached from every family through torch2onnx / tf2onnx; the others only from their own.
            assert consumes is Representation.ONNX or FAMILY[fmt] is consumes, (name, fmt)


def test_formats_a_backend_refuses_come_with_what_to_do() -> None:
    for description in BACKENDS.values():
        if description.formats != frozenset(ModelFormat):
            assert "format" in description.format_hint, description.name


def test_each_backends_calibration_tools_offer_exactly_its_described_methods() -> None:
    assert set(TOOLS) == set(BACKENDS)
    for name, description in BACKENDS.items():
        offered = {method for tool in TOOLS[name] for method in ALGORITHMS[tool]}
        assert offered == set(description.calibration_methods), name


def test_a_missing_framework_names_the_image_of_the_backend_that_needs_it() -> None:
    for description in BACKENDS.values():
        main = description.frameworks[0]
        assert f"kubeopt-{description.image}" in IMAGES[main], main


def test_the_operator_reads_the_image_variables_the_chart_writes() -> None:
    helm = _helm()
    overrides = [f"--set=workerImages.{d.image_key}=registry.example/{d.image}:1" for d in BACKENDS.values()]
    import subprocess

    rendered = subprocess.run([helm, "template", "kubeopt", str(CHART), *overrides], capture_output=True, text=True,
                              check=True).stdout
    deployment = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Deployment")
    env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
           if "value" in e}

    settings = OperatorSettings.from_env(env)

    assert {name: settings.image_for(name, Images()) for name in BACKENDS} == {
        name: f"registry.example/{d.image}:1" for name, d in BACKENDS.items()}


def _helm() -> str:
    return str(require_helm())


def test_the_readme_backend_table_is_the_generated_one() -> None:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- backends:begin[^>]*-->\n(.*?)<!-- backends:end -->", readme, re.S)

    assert match is not None, "README.md lost its backend table markers"
    assert match.group(1) == backend_table(), "README's backend table is stale: paste `kubeopt backends`"


def adding_a_backend_section() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"## Adding a backend\n(.*?)(?:\n## |\Z)", readme, re.S)
    assert match is not None, "README.md lost its 'Adding a backend' section"
    return match.group(1)


def test_the_adding_a_backend_steps_name_files_that_exist_for_every_backend() -> None:
    paths = [p for p in re.findall(r"`([\w./<>-]+/[\w./<>-]*)`", adding_a_backend_section())]
    assert len(paths) >= 10

    missing = []
    for path in paths:
        for description in BACKENDS.values():
            concrete = (path.replace("<option_field>", description.option_field)
                        .replace("<image>", description.image))
            if not (ROOT / concrete).exists():
                missing.append(concrete)

    assert missing == []


def test_the_adding_a_backend_steps_name_the_places_this_file_checks() -> None:
    section = adding_a_backend_section()

    for place in ("BackendName", "BACKENDS", "Target", "Images", "default_registry()", "TOOLS", "pyproject.toml",
                  "values.yaml", "values.schema.json", "$imageFields", "make crd", "kubeopt backends",
                  "backend.py", "runner.py", "independence"):
        assert place in section, place
