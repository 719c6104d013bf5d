#!/usr/bin/env python3
"""Write the Yocto crate list (SRC_URI crate:// entries and their sha256) from Cargo.lock.

bitbake's crate fetcher downloads every crate the build needs in do_fetch, so
cargo can run offline (--frozen) afterwards; each crate is pinned by the sha256
Cargo.lock already records. The entries are those oe-core's cargo-update-recipe-crates
class writes (`bitbake -c update_crates wayside`), laid out the way oelint-adv
wants; this script needs no Yocto build directory, and --check lets CI
(scripts/check-deploy.sh) fail when Cargo.lock moved on and the list did not.

  yocto/scripts/gen-crates-inc.py            # rewrite the .inc
  yocto/scripts/gen-crates-inc.py --check    # exit 1 if it is stale
"""
import argparse
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_LOCK = REPO / "Cargo.lock"
DEFAULT_OUT = REPO / "yocto/meta-wayside/recipes-wayside/wayside/wayside-crates.inc"
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"

HEADER = """\
# Generated from Cargo.lock by yocto/scripts/gen-crates-inc.py: do not edit.
# Regenerate after every Cargo.lock change; scripts/check-deploy.sh fails while
# this file is stale.
"""


class LockError(Exception):
    pass


def render(lock_text):
    lock = tomllib.loads(lock_text)
    uris, sums = [], []
    for pkg in lock.get("package", []):
        source = pkg.get("source")
        if source is None:
            continue  # a workspace member
        if source != CRATES_IO:
            # The recipes fetch crates.io only; a git or other registry source
            # needs its own SRC_URI entry (and a [patch] in cargo's config).
            raise LockError(f"{pkg['name']} {pkg['version']}: unsupported source {source}")
        if "checksum" not in pkg:
            raise LockError(f"{pkg['name']} {pkg['version']}: no checksum in Cargo.lock")
        key = f"{pkg['name']}-{pkg['version']}"
        uris.append(f"    crate://crates.io/{pkg['name']}/{pkg['version']};name={key} \\")
        sums.append(f'SRC_URI[{key}.sha256sum] = "{pkg["checksum"]}"')
    if not uris:
        raise LockError("no crates.io packages in Cargo.lock")
    return "\n".join([HEADER, "# from Cargo.lock", 'SRC_URI += "\\', *uris, '"', "", *sums, ""])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lock", type=Path, default=DEFAULT_LOCK)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    opts = ap.parse_args()
    try:
        text = render(opts.lock.read_text())
    except (OSError, tomllib.TOMLDecodeError, LockError) as e:
        print(f"gen-crates-inc: {opts.lock}: {e}", file=sys.stderr)
        return 2
    count = text.count("crate://")
    if opts.check:
        current = opts.out.read_text() if opts.out.is_file() else ""
        if current != text:
            print(f"gen-crates-inc: {opts.out} is stale against {opts.lock}; "
                  f"run yocto/scripts/gen-crates-inc.py and commit the result", file=sys.stderr)
            return 1
        print(f"gen-crates-inc: {opts.out.name} matches Cargo.lock ({count} crates)")
        return 0
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = opts.out.with_name(opts.out.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(opts.out)
    print(f"gen-crates-inc: wrote {opts.out} ({count} crates)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
