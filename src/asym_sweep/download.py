"""``python -m asym_sweep.download`` (``make data``): make a dataset available on this machine.

In order: already present (configured root, $ASYM_SWEEP_DATA, Debian's folder)?
Else Debian's package through apt when running as root on Debian/Ubuntu; else
torchvision's download when torchvision imports; else say how to get it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from asym_sweep.data import DataError, DatasetInfo, candidate_dirs, dataset_info, find_files, not_found_message


def _found(info: DatasetInfo, root: str) -> Path | None:
    try:
        return find_files(info, root)["train_images"].parent
    except DataError:
        return None


def _apt_install(package: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("apt-get") or not Path("/etc/debian_version").exists():
        return False
    print(f"installing Debian package {package} with apt-get", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "install", "-y", package], ["apt-get", "update"], ["apt-get", "install", "-y", package]):
        done = subprocess.run(cmd, env=env).returncode == 0
        if done and cmd[1] == "install":
            return True
    return False


def _torchvision_download(info: DatasetInfo, root: str) -> bool:
    try:
        import torchvision.datasets as tvd  # optional: the CPU torch wheel has no matching torchvision
    except Exception:
        return False
    cls = {"fashion_mnist": tvd.FashionMNIST, "mnist": tvd.MNIST}[info.name]
    print(f"downloading {info.name} into {root} with torchvision", file=sys.stderr)
    for train in (True, False):
        cls(root, train=train, download=True)
    return True


def fetch(name: str, root: str) -> Path:
    info = dataset_info(name)
    found = _found(info, root)
    if found:
        return found
    if info.debian_package and _apt_install(info.debian_package):
        found = _found(info, root)
    if not found and _torchvision_download(info, root):
        found = _found(info, root)
    if not found:
        raise DataError(not_found_message(info, candidate_dirs(info, root)))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist", choices=["fashion_mnist", "mnist"])
    parser.add_argument("--root", default="data", help="data root to look in and download into (default: data)")
    args = parser.parse_args(argv)
    try:
        where = fetch(args.dataset, args.root)
    except DataError as err:
        print(f"asym-sweep: error: {err}", file=sys.stderr)
        return 1
    print(f"{args.dataset}: found in {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
