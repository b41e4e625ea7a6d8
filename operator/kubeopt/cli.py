"""The kubeopt command: run an optimization locally or in a Job, print the CRD, run the operator."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from kubeopt.api.load import SpecError, load_resource
from kubeopt.api.reasons import EXIT_CODES, Reason

log = logging.getLogger("kubeopt")
CRD_FILE = "modeloptimizations.kubeopt.io.yaml"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubeopt", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a ModelOptimization without a cluster (or inside a target Job)")
    run.add_argument("file", nargs="?", help="the ModelOptimization YAML")
    run.add_argument("--spec-json", help="the resource as JSON (how a Job receives it)")
    run.add_argument("--target", help="run only this target (one Job per target)")
    run.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    run.add_argument("--workspace", type=Path, help="scratch folder (default: a temporary one)")
    run.add_argument("--termination-log", type=Path, default=Path("/dev/termination-log"),
                     help="where the JSON summary for the controller goes")
    run.add_argument("--quiet", action="store_true", help="no progress lines")
    run.add_argument("--log-file", type=Path,
                     help="where library messages and warnings go, at debug level "
                          "(default: kubeopt-run.log in --workspace, else in the current folder)")
    crd = commands.add_parser("crd", help="print the CRD generated from the API models")
    crd.add_argument("--output-dir", type=Path, help="write crds/ files here instead of printing")
    commands.add_parser("backends", help="print the backend table (Markdown) the README carries")
    docs = commands.add_parser("docs", help="write docs/reference.md and the README's troubleshooting table")
    docs.add_argument("--root", type=Path, default=Path("."), help="the repository root (default: .)")
    operator = commands.add_parser("operator", help="run the controller (kopf)")
    operator.add_argument("--namespace", action="append", help="watch only these namespaces")
    operator.add_argument("--metrics-port", type=int, default=8080)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    for noisy in ("onnxscript", "onnx_ir", "torch.onnx"):  # their DEBUG lines slow the export down
        logging.getLogger(noisy).setLevel(logging.INFO)
    if args.command == "crd":
        return _crd(args.output_dir)
    if args.command == "backends":
        from kubeopt.api.backends import backend_table

        sys.stdout.write(backend_table())
        return 0
    if args.command == "docs":
        from kubeopt.api.docs import write_docs

        try:
            written = write_docs(args.root)
        except (OSError, ValueError) as error:
            sys.stderr.write(f"kubeopt docs: {error}\n")
            return 1
        for path in written:
            log.info("wrote %s", path)
        return 0
    if args.command == "operator":
        from kubeopt.controller.main import run_operator

        return run_operator(namespaces=args.namespace, metrics_port=args.metrics_port)
    return _run(args)


def _crd(output_dir: Path | None) -> int:
    from kubeopt.api.crd import render_crd

    text = render_crd()
    if output_dir is None:
        sys.stdout.write(text)
        return 0
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / CRD_FILE).write_text(text)
    return 0


def _run(args: argparse.Namespace) -> int:
    from kubeopt.worker.entry import run_and_report
    from kubeopt.worker.quiet import route_library_output

    if args.log_file is None:
        args.log_file = (args.workspace or Path.cwd()) / "kubeopt-run.log"
    args.log_file = route_library_output(args.log_file)
    if not args.quiet:
        log.info("log: library messages and warnings go to %s", args.log_file)

    if not args.file and not args.spec_json:
        sys.stderr.write("kubeopt run: give a FILE or --spec-json\n")
        return EXIT_CODES[Reason.INVALID_SPEC]
    try:
        if args.spec_json:
            resource = load_resource(args.spec_json, "--spec-json")
            base_dir = Path.cwd()
        else:
            path = Path(args.file)
            if not path.exists():
                raise SpecError(f"{path}: no such file")
            resource = load_resource(path.read_text(), str(path))
            base_dir = path.resolve().parent
    except SpecError as error:
        from kubeopt.worker.entry import fail_early

        return fail_early(Reason.INVALID_SPEC, f"invalid ModelOptimization: {error}", args.termination_log)
    started = time.perf_counter()
    code = run_and_report(resource, args, base_dir)
    log.info("finished in %.1fs with exit code %d", time.perf_counter() - started, code)
    return code


if __name__ == "__main__":
    sys.exit(main())
