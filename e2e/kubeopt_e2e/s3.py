"""A real S3 server (MinIO, built from source by ``e2e/build.sh``) on a loopback port."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path
from types import TracebackType

from kubeopt_e2e.procs import LOOPBACK, Process, StartupError, free_port, wait_until

__all__ = ["S3Server"]

DEFAULT_ACCESS_KEY = "kubeopt-e2e"
DEFAULT_SECRET_KEY = "kubeopt-e2e-secret"  # MinIO wants at least 8 characters
DEFAULT_REGION = "us-east-1"


class S3Server:
    """MinIO serving ``work_dir/data`` on ``127.0.0.1:<free port>``.

    >>> s3 = S3Server(bin_dir, tmp_path, access_key="ak", secret_key="secret-key")
    >>> s3.start()
    >>> boto3.client("s3", endpoint_url=s3.endpoint_url, ...)
    >>> s3.stop()
    """

    def __init__(
        self,
        bin_dir: Path | str,
        work_dir: Path | str,
        *,
        access_key: str = DEFAULT_ACCESS_KEY,
        secret_key: str = DEFAULT_SECRET_KEY,
        region: str = DEFAULT_REGION,
        startup_timeout: float = 60.0,
    ) -> None:
        if len(access_key) < 3 or len(secret_key) < 8:
            raise ValueError("MinIO needs an access key of 3+ and a secret key of 8+ characters")
        self.bin_dir = Path(bin_dir)
        self.work_dir = Path(work_dir)
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.startup_timeout = startup_timeout
        self.port = 0
        self.log = self.work_dir / "minio.log"
        self._process: Process | None = None

    @property
    def endpoint_url(self) -> str:
        if self._process is None:
            raise RuntimeError("S3 server not started")
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> str:
        """Start the server, wait until it answers, return :attr:`endpoint_url`."""
        if self._process is not None:
            raise RuntimeError("S3 server already started")
        exe = self.bin_dir / "minio"
        if not exe.is_file():
            raise StartupError(f"minio not found in {self.bin_dir}; run e2e/build.sh")
        data = self.work_dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        console_port = free_port()
        env = {
            **os.environ,
            "MINIO_ROOT_USER": self.access_key,
            "MINIO_ROOT_PASSWORD": self.secret_key,
            "MINIO_REGION": self.region,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
            "MINIO_CI_CD": "on",  # allow a data directory on the root disk
            "HOME": str(self.work_dir),  # its config dir (~/.minio) stays inside work_dir
        }
        self._process = Process(
            "minio",
            [
                str(exe),
                "server",
                "--quiet",
                "--address",
                f"{LOOPBACK}:{self.port}",
                "--console-address",
                f"{LOOPBACK}:{console_port}",
                str(data),
            ],
            self.log,
            env=env,
            cwd=self.work_dir,
        )
        live = f"http://{LOOPBACK}:{self.port}/minio/health/ready"

        def ready() -> bool:
            with urllib.request.urlopen(live, timeout=2) as resp:
                return bool(resp.status == 200)

        try:
            wait_until(
                "minio /minio/health/ready", ready, process=self._process, timeout=self.startup_timeout
            )
        except BaseException:
            self.stop()
            raise
        return self.endpoint_url

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None

    def __enter__(self) -> S3Server:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
