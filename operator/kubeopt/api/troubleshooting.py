"""What each reason means and what to do about it: the README's troubleshooting table.

Every ``Reason`` has one entry here, next to nothing else: its exit code and whether a retry helps
come from ``kubeopt.api.reasons`` (``EXIT_CODES``, ``RETRY``), so the table cannot disagree with the
worker, the controller or the Job's podFailurePolicy. A reason added to the enum without an entry
here fails at import (``_check_complete``) and so fails every test, naming the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubeopt.api.markdown import cell
from kubeopt.api.reasons import EXIT_CODES, RETRY, Reason


@dataclass(frozen=True)
class Guide:
    """Who reports a reason, what it means and what a person does about it."""

    source: str  # "worker" (its exit code and termination message) or "operator" (what it observed)
    meaning: str
    action: str


GUIDES: dict[Reason, Guide] = {
    Reason.SUCCEEDED: Guide(
        "worker", "the target was built, stayed within the accuracy budget and was published",
        "nothing: `status.targets[].artifact` names the run, `status.best` the winner"),
    Reason.INVALID_SPEC: Guide(
        "worker, operator", "the spec breaks a rule the API server could not check (the operator also "
        "sets it on the Stalled condition when it cannot parse the stored spec)",
        "read the message: it names the field and what is allowed; fix the spec (a new generation runs again)"),
    Reason.MODEL_NOT_FOUND: Guide(
        "worker", "nothing at `spec.model.uri`", "check the URI, the bucket and the prefix; `aws s3 ls` with "
        "the Secret's credentials and `spec.storage.endpoint` shows what the worker sees"),
    Reason.MODEL_CORRUPT: Guide(
        "worker", "the file is not a readable model of `spec.model.format`",
        "check `spec.model.format` against the file (a `.pt2` is torch-export, a folder with `saved_model.pb` "
        "tensorflow-savedmodel); re-export the model"),
    Reason.INPUT_SHAPE_MISMATCH: Guide(
        "worker", "`spec.model.inputs` disagrees with the model: a name it does not have, a shape it rejects",
        "copy the input names and shapes (-1 for a dynamic dimension) from the model"),
    Reason.UNSUPPORTED_OP: Guide(
        "worker", "an operator the converter (`torch2onnx`, `tf2onnx`) or the backend cannot handle, or that "
        "nothing here defines (a `.pt2`'s unregistered custom op, an op ONNX's default domain lacks)",
        "the message names the operator; try another backend (torch-compile compiles torch-export "
        "models without a conversion)"),
    Reason.CALIBRATION_DATA_INVALID: Guide(
        "worker", "`spec.calibration.uri` is missing, unreadable or does not fit the inputs (only the int8 "
        "targets fail; the others run and publish)",
        "give an `.npz` keyed by input name with the inputs' shapes, or a folder of images with "
        "`spec.preprocessing`"),
    Reason.BACKEND_UNAVAILABLE: Guide(
        "worker", "the backend's framework is not in the worker image that ran the target",
        "use the image the message names (`spec.images.<backend>` or the chart's `workerImages`); TensorRT "
        "and TF-TRT need the GPU images"),
    Reason.ACCURACY_BUDGET_EXCEEDED: Guide(
        "worker", "the target drifted past `spec.validation.budget` against the FP32 baseline (it was "
        "built, measured and not made current)",
        "loosen `maxTop1Drop` / `maxRelativeError` if the drift is acceptable, or use a higher precision "
        "or another calibration method for int8"),
    Reason.STORAGE_ERROR: Guide(
        "worker", "object storage failed in a way a retry may fix: endpoint down or slow, throttling, "
        "credentials refused",
        "check `spec.storage.endpoint`, the Secret in `spec.storage.secretRef` (or the worker account's "
        "cloud identity) and the network; the Job retries up to `spec.backoffLimit`"),
    Reason.STORAGE_MISCONFIGURED: Guide(
        "worker", "the store refused for good: no such bucket, an invalid bucket name, a file where a "
        "folder should be", "fix `spec.output.uri` (or the data URIs) and `spec.storage.endpoint`"),
    Reason.BUILD_FAILED: Guide(
        "worker", "the backend failed to build or run the model (its own words in the message): out of GPU "
        "memory beside another process, a driver fault", "read the message; the Job retries up to "
        "`spec.backoffLimit`; lower `spec.benchmark.batchSizes` or give the Job a whole GPU"),
    Reason.UNSCHEDULABLE: Guide(
        "operator", "no node can run the target's pod (the scheduler's message: no GPU, too little CPU or "
        "memory, a taint); the Job waits and Stalled is True while nothing runs",
        "add nodes or the NVIDIA device plugin, set `spec.resources.gpu: 0` for a CPU target, lower "
        "`spec.resources.cpu`/`memory`, add `spec.resources.tolerations`/`nodeSelector`"),
    Reason.OOM_KILLED: Guide(
        "operator", "the kernel killed the worker container for its memory limit",
        "raise `spec.resources.memory` (or unset it), or lower `spec.benchmark.batchSizes` / "
        "`spec.calibration.batchSize`"),
    Reason.DEADLINE_EXCEEDED: Guide(
        "operator", "the Job ran past `spec.activeDeadlineSeconds`",
        "raise `spec.activeDeadlineSeconds`, or shrink `spec.benchmark` (iterations, batch sizes) and "
        "`spec.calibration.samples`"),
    Reason.JOB_REJECTED: Guide(
        "operator", "the API server refused the target's Job (an admission policy, a quota, RBAC); the "
        "message is the server's and a Warning Event says the same; the Job is not tried again",
        "fix what the message names (for example an image outside `admission.allowedImagePrefixes`), then "
        "change the spec or recreate the resource"),
    Reason.INTERNAL_ERROR: Guide(
        "worker, operator", "a failure with no reason of its own: an uncaught exception, an unknown exit "
        "code, a pod that left no termination message", "`kubectl logs job/<status.targets[].jobName>` "
        "shows the traceback; the Job retries up to `spec.backoffLimit`; report it with the log"),
    Reason.INTERRUPTED: Guide(
        "worker", "SIGTERM or SIGINT stopped the run (an eviction, a node drain, a deletion); nothing of it "
        "became current", "nothing: the Job retries up to `spec.backoffLimit`; if it recurs, check the "
        "node's evictions (`kubectl get events`)"),
    Reason.VALIDATION_DATA_INVALID: Guide(
        "worker", "`spec.validation.uri` is unreadable, holds NaN/inf, or its labels are not class indices "
        "of the model's output (file, key and first bad sample named)",
        "fix the file, or unset `spec.validation.uri` (then the calibration data, else random inputs, are "
        "compared)"),
}


def _check_complete() -> None:
    missing = [reason.value for reason in Reason if reason not in GUIDES]
    if missing:  # a programming error: a reason a person cannot look up
        raise RuntimeError(f"reasons without a guide in kubeopt.api.troubleshooting.GUIDES: {', '.join(missing)}")


def reason_table() -> str:
    """The troubleshooting table (Markdown), one row per reason in the enum's order."""
    rows = ["| reason | from | exit code | retried | what it means | what to do |", "|---|---|---|---|---|---|"]
    for reason in Reason:
        guide = GUIDES[reason]
        code = EXIT_CODES.get(reason)
        retry = RETRY.get(reason)
        retried = "-" if retry is None else ("no (fails at once)" if retry.value == "Permanent" else "yes")
        rows.append(f"| `{reason.value}` | {guide.source} | {'-' if code is None else code} | {retried} | "
                    f"{cell(guide.meaning)} | {cell(guide.action)} |")
    return "\n".join(rows) + "\n"


_check_complete()
