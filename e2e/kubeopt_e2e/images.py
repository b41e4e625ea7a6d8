"""The images the e2e suite runs, and containers started from them without a container runtime.

``image_ref("operator")`` runs ``images/build.sh`` (cached by content: a built image is found in
well under a second) and returns the image's local reference. ``Container`` starts a process from
an image the way a kubelet's runtime would, with what this machine has (``podman run`` does not
work here: cgroups v1/v2 hybrid): podman mounts the image's root filesystem, ``unshare --mount``
gives the process a mount namespace of its own in which an overlay on that filesystem becomes its
root, with /proc, a minimal /dev, the pod's volumes (emptyDir and Secret directories, the
termination message file) mounted where the pod mounts them; the root is then made read-only when
the pod asks for it, and ``chroot --userspec`` drops to the pod's user before the pod's command runs.

What runs is the image's own: its environment (ENV) under the pod's, the pod's command resolved on
the image's PATH (or the image's ENTRYPOINT and CMD when the pod gives none), its working directory.
An image that lacks a module, has the wrong entrypoint or whose user cannot write where the pod
writes fails here as on a node. The network is the host's (everything in e2e is on loopback).
"""

from __future__ import annotations

import functools
import json
import os
import posixpath
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BUILD_SCRIPT", "Container", "ImageConfig", "Mount", "derived_image", "image_config", "image_ref",
           "mounted_image", "remove_image", "run_in_image", "unmount_image"]

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "images" / "build.sh"
#: Device nodes a container runtime gives every container.
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

# Runs inside the new mount namespace (private propagation: nothing leaks to the host).
# $1 image rootfs, $2 work dir, $3 uid:gid, $4 1 for a read-only root; then mount specs up to "--",
# each KIND:SOURCE:TARGET (KIND dir-rw, dir-ro, file-rw; TARGET already resolved inside the image);
# then the working directory and the env -i arguments (NAME=VALUE..., command...).
_SETUP = r"""
set -eu
img=$1 work=$2 user=$3 readonly=$4
shift 4
root=$work/root
mkdir -p "$work/upper" "$work/overlay-work" "$root"
mount -t overlay overlay -o "lowerdir=$img,upperdir=$work/upper,workdir=$work/overlay-work" "$root"
mkdir -p "$root/proc" "$root/dev"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t tmpfs -o nosuid,mode=755 tmpfs "$root/dev"
for d in null zero full random urandom tty; do
  touch "$root/dev/$d"
  mount --bind "/dev/$d" "$root/dev/$d"
done
mkdir "$root/dev/shm" "$root/dev/pts"
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$root/dev/shm"
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
while [ "$1" != -- ]; do
  kind=${1%%:*} rest=${1#*:}
  src=${rest%%:*} dst=$root${rest#*:}
  shift
  case $kind in
    file-rw) mkdir -p "$(dirname "$dst")"; [ -e "$dst" ] || touch "$dst"; mount --bind "$src" "$dst" ;;
    dir-rw) mkdir -p "$dst"; mount --bind "$src" "$dst" ;;
    dir-ro) mkdir -p "$dst"; mount --bind "$src" "$dst"; mount -o remount,bind,ro "$dst" ;;
    *) echo "unknown mount kind $kind" >&2; exit 2 ;;
  esac
done
shift
workdir=$1
shift
if [ "$readonly" = 1 ]; then mount -o remount,bind,ro "$root"; fi
exec chroot --userspec="$user" "$root" /usr/bin/env -i -C "$workdir" "$@"
"""


@functools.cache
def image_ref(name: str) -> str:
    """The local reference of image ``name`` (``operator``, ``worker-onnxruntime``), built if needed.

    ``images/build.sh`` needs root, buildah, podman and mmdebstrap (``make e2e-tools``); a cold
    build takes a few minutes, a cached one well under a second."""
    proc = subprocess.run(["bash", str(BUILD_SCRIPT), name], stdout=subprocess.PIPE, stderr=None, text=True,
                          check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{BUILD_SCRIPT} {name} failed (exit code {proc.returncode}): run it to see why")
    return lines[-1]


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an image's configuration that decide how its process starts."""

    env: dict[str, str]
    entrypoint: list[str]
    cmd: list[str]
    working_dir: str
    user: str


@functools.cache
def image_config(ref: str) -> ImageConfig:
    inspect = json.loads(subprocess.run(["podman", "image", "inspect", ref], capture_output=True, text=True,
                                        check=True).stdout)[0]
    config: dict[str, Any] = inspect.get("Config") or {}
    env = dict(item.split("=", 1) for item in config.get("Env") or [])
    return ImageConfig(env=env, entrypoint=list(config.get("Entrypoint") or []), cmd=list(config.get("Cmd") or []),
                       working_dir=config.get("WorkingDir") or "/", user=config.get("User") or "0")


def mounted_image(ref: str) -> Path:
    """``podman image mount``: the image's root filesystem (counted; pair with ``unmount_image``)."""
    out = subprocess.run(["podman", "image", "mount", ref], capture_output=True, text=True, check=True).stdout
    return Path(out.strip())


def unmount_image(ref: str) -> None:
    subprocess.run(["podman", "image", "unmount", ref], capture_output=True, text=True, check=False)


def resolve_in(root: Path, path: str) -> str:
    """``path`` inside the image rooted at ``root`` with its symbolic links followed there (Debian's
    /var/run is a link to /run: followed on the host it would land in the host's /run)."""
    parts = [p for p in posixpath.normpath(path).split("/") if p]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink():
            hops += 1
            if hops > 40:
                raise RuntimeError(f"too many symbolic links resolving {path} in {root}")
            target = os.readlink(candidate)
            parts = [p for p in target.split("/") if p] + parts
            if target.startswith("/"):
                resolved = []
            continue
        if part == "..":
            resolved = resolved[:-1]
        elif part != ".":
            resolved.append(part)
    return "/" + "/".join(resolved)


def run_in_image(container: Container, work_dir: Path, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run ``container`` to its end; its output in ``stdout`` (stderr merged)."""
    root = mounted_image(container.image)
    try:
        return subprocess.run(container.argv(root, work_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout, check=False)
    finally:
        unmount_image(container.image)


@dataclass(frozen=True)
class Mount:
    """A host file or directory mounted at ``target`` in the container."""

    source: Path
    target: str
    read_only: bool = False

    def spec(self, root: Path) -> str:
        kind = "file-rw" if self.source.is_file() else ("dir-ro" if self.read_only else "dir-rw")
        return f"{kind}:{self.source}:{resolve_in(root, self.target)}"


@dataclass
class Container:
    """How one container of a pod starts from ``image`` (a local reference)."""

    image: str
    command: Sequence[str] = ()
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    mounts: Sequence[Mount] = ()
    user: str | None = None  # "uid:gid"; the image's USER when None
    read_only_root: bool = False

    def argv(self, root: Path, work_dir: Path) -> list[str]:
        """The host command that runs this container on ``root`` (the mounted image), its writable
        layer and mount points under ``work_dir``."""
        config = image_config(self.image)
        command = list(self.command) or config.entrypoint
        args = list(self.args) if (self.command or self.args) else config.cmd
        if not command and not args:
            raise ValueError(f"{self.image} has no ENTRYPOINT or CMD and the pod gives no command")
        env = {**config.env, **self.env}
        user = self.user or config.user
        if ":" not in user:
            user = f"{user}:{user}"
        for tool in ("unshare", "chroot", "mount"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} (util-linux/coreutils) is needed to run containers in e2e")
        work_dir.mkdir(parents=True, exist_ok=True)
        return ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", _SETUP, "container",
                str(root), str(work_dir), user, "1" if self.read_only_root else "0",
                *(mount.spec(root) for mount in self.mounts), "--",
                config.working_dir, *(f"{k}={v}" for k, v in env.items()), *command, *args]


def derived_image(ref: str, tag: str, *, remove: Sequence[str] = (), env: Mapping[str, str] | None = None) -> str:
    """An image made from ``ref`` with the paths ``remove`` deleted and ``env`` set in its config,
    tagged ``localhost/kubeopt-e2e/<tag>`` (for tests that a broken image fails). buildah changes
    the filesystem through a mount, so no RUN step (and no container runtime) is needed."""
    name = f"localhost/kubeopt-e2e/{tag}"
    working = subprocess.run(["buildah", "from", "--quiet", ref], capture_output=True, text=True,
                             check=True).stdout.strip()
    try:
        root = Path(subprocess.run(["buildah", "mount", working], capture_output=True, text=True,
                                   check=True).stdout.strip())
        for path in remove:
            target = root / path.lstrip("/")
            if not target.exists():
                raise FileNotFoundError(f"{path} is not in {ref}")
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink()
        for key, value in (env or {}).items():
            subprocess.run(["buildah", "config", "--env", f"{key}={value}", working], capture_output=True,
                           check=True)
        subprocess.run(["buildah", "commit", "--quiet", "--rm", working, name], capture_output=True, check=True)
    except BaseException:
        subprocess.run(["buildah", "rm", working], capture_output=True, check=False)
        raise
    image_config.cache_clear()
    return name


def remove_image(ref: str) -> None:
    subprocess.run(["podman", "rmi", "--force", ref], capture_output=True, check=False)
