#!/usr/bin/env python3
"""Install the model files models/manifest.toml names, checking each sha256.

The files come from a directory scripts/setup-models.sh filled (its cache);
only what the manifest pins goes in, and a file whose hash differs stops the
install: the manifest travels with the source revision, so a stale or foreign
cache cannot slip into an image.

  install-models.py --manifest models/manifest.toml --from models/cache --to DEST
  install-models.py --manifest models/manifest.toml --from models/cache --check
"""
import argparse
import hashlib
import shutil
import sys
import tomllib
from pathlib import Path


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def wanted(manifest):
    """(file name, sha256) of every model file and side file the daemon reads."""
    for model in manifest["model"]:
        yield model["file"], model["sha256"]
        out = model.get("output", {})
        if "dict" in out:
            yield out["dict"], out["dict_sha256"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--from", dest="src", type=Path, required=True)
    dest = ap.add_mutually_exclusive_group(required=True)
    dest.add_argument("--to", dest="dest", type=Path)
    dest.add_argument("--check", action="store_true", help="only verify the files against the manifest")
    opts = ap.parse_args()

    manifest = tomllib.loads(opts.manifest.read_text())
    problems, files = [], []
    for name, sha in wanted(manifest):
        path = opts.src / name
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif (got := sha256_file(path)) != sha:
            problems.append(f"{path}: sha256 {got}, manifest pins {sha}")
        else:
            files.append(path)
    if problems:
        print("install-models: the model directory does not match the manifest "
              "(run scripts/setup-models.sh, or point WAYSIDE_MODELS_DIR at its cache):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    if opts.check:
        print(f"install-models: {len(files)} files in {opts.src} match {opts.manifest}")
        return 0
    opts.dest.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copyfile(path, opts.dest / path.name)
        (opts.dest / path.name).chmod(0o644)
    shutil.copyfile(opts.manifest, opts.dest / "manifest.toml")
    (opts.dest / "manifest.toml").chmod(0o644)
    print(f"install-models: {len(files)} files and manifest.toml into {opts.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
