from __future__ import annotations

import subprocess
import sys


def test_the_controller_imports_no_worker_and_no_ml_framework() -> None:
    code = ("import sys, kubeopt.controller.main, kubeopt.controller.handlers;"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'torch', 'onnx', 'onnxruntime', 'tensorrt', 'tensorflow'} or m.startswith('kubeopt.worker'));"
            "print(','.join(bad))")

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert out.strip() == ""
