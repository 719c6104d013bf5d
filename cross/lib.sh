# shellcheck shell=bash
# $target, $cargo, $qemu_cpu, $sysroot are for the scripts that source this.
# shellcheck disable=SC2034
# Shared by cross/build.sh, cross/test.sh and cross/ci.sh (sourced, not run).
#
# The route, all from Debian bookworm packages (rustup cannot add targets
# here): Debian's rustc-web/cargo-web 1.96 with its arm64 standard library,
# the aarch64 GNU linker, and qemu-user-static to run what was built. The
# daemon links GStreamer, whose arm64 packages are unpacked with `dpkg -x`
# into a private sysroot rather than installed. Every version comes from
# cross/packages.lock (re-pin with cross/lock.sh).
#
# Idempotent: once done, cross_host and cross_sysroot check versions and a
# stamp, download nothing and return in about a second.

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
lock="$repo/cross/packages.lock"
target=aarch64-unknown-linux-gnu
# Outside the work tree so that a fresh clone (CI) reuses the downloads.
cross_cache="${WAYSIDE_CROSS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wayside/cross}"
# Kept apart from target/debug: cargo 1.96's host artefacts would otherwise
# sit beside (and double) the rustup 1.95 ones of scripts/test.sh.
export CARGO_TARGET_DIR="${WAYSIDE_CROSS_TARGET_DIR:-$repo/target/cross}"

say() { echo "[cross] $*" >&2; }

# `kind` lines of the lock as "name version".
locked() { awk -v k="$1" '$1 == k {print $2, $3}' "$lock"; }

# The toolchain, linker and qemu at their pinned versions.
cross_host() {
  local name version missing=()
  while read -r name version; do
    [[ "$(dpkg-query -W -f='${Version}' "$name" 2>/dev/null)" == "$version" ]] ||
      missing+=("$name=$version")
  done < <(locked host)
  if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
    apt-get update -qq
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      --allow-downgrades "${missing[@]}" >/dev/null; then
      say "a pinned host package is not available any more: run cross/lock.sh and commit cross/packages.lock"
      return 1
    fi
  fi
  # Debian's toolchain, not the rustup one first on PATH (it has no aarch64
  # standard library and cannot fetch one here).
  export RUSTC=/usr/bin/rustc
  cargo=(/usr/bin/cargo)
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
  export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
  export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
  # The Pi 5's core. qemu's default ("max") emulates 512-bit SVE2, which
  # tract then uses: one detector inference took 478 s instead of 25 s.
  qemu_cpu=cortex-a76
  # Enough for the pure-Rust crates: the arm64 glibc (libc6:arm64) that
  # libstd-rust-web-dev:arm64 pulls in, its loader and libc.so.6 from one
  # build. Not /usr/aarch64-linux-gnu: -L only shadows the files that exist
  # under it, so the cross loader there (glibc 2.36-8cross1) read the host's
  # /etc/ld.so.cache and loaded libc6:arm64's libc.so.6 (2.36-9+deb12uN); that
  # mixed pair spins forever in the first pthread_create, which is how every
  # test binary hung (docs/DEPLOY.md, Cross-build).
  qemu_prefix=/
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -cpu $qemu_cpu -L $qemu_prefix"
}

# The arm64 GStreamer/GLib sysroot for the daemon; sets $sysroot and points
# pkg-config, the linker and qemu at it.
cross_sysroot() {
  local hash debs name version file
  hash="$(locked sysroot | sha256sum | cut -c1-12)"
  sysroot="$cross_cache/sysroot-$hash"
  debs="$cross_cache/debs"
  # Bump when the unpacking below changes: the sysroot is then unpacked anew.
  local layout=3
  if [[ "$(cat "$sysroot/.complete" 2>/dev/null)" != "$layout" ]]; then
    mkdir -p "$debs"
    local want=()
    while read -r name version; do
      # apt names files name_version_arch.deb, the epoch's colon as %3a.
      file="${name%%:*}_${version/:/%3a}_"
      compgen -G "$debs/$file*.deb" >/dev/null || want+=("$name=$version")
    done < <(locked sysroot)
    if ((${#want[@]})); then
      say "downloading ${#want[@]} arm64 packages into $debs"
      dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
      apt-get update -qq
      if ! (cd "$debs" && apt-get download -qq -o APT::Sandbox::User=root "${want[@]}"); then
        say "a pinned sysroot package is not available any more: run cross/lock.sh and commit cross/packages.lock"
        return 1
      fi
    fi
    say "unpacking the sysroot into $sysroot"
    rm -rf "$sysroot.tmp"
    mkdir -p "$sysroot.tmp"
    while read -r name version; do
      file="${name%%:*}_${version/:/%3a}_"
      dpkg-deb -x "$(compgen -G "$debs/$file*.deb" | head -n1)" "$sysroot.tmp"
    done < <(locked sysroot)
    # Absolute links (libfoo.so -> /lib/...) would point into the host.
    local link dest
    while IFS= read -r -d '' link; do
      dest="$(readlink "$link")"
      [[ "$dest" == /* ]] || continue
      ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$sysroot.tmp$dest")" "$link"
    done < <(find "$sysroot.tmp" -type l -print0)
    # libc.so is a linker script naming /lib/aarch64-linux-gnu/libc.so.6 and
    # /usr/lib/aarch64-linux-gnu/libc_nonshared.a, which are not on the host:
    # point it into the sysroot, so that the daemon links the same glibc that
    # GStreamer's libraries here were built against.
    local script
    while IFS= read -r -d '' script; do
      if head -c 64 "$script" | grep -q 'GNU ld script'; then
        sed -i -E "/^ *(GROUP|INPUT)/ s@([ (])/@\\1$sysroot/@g" "$script"
      fi
    done < <(find "$sysroot.tmp/usr/lib/aarch64-linux-gnu" -maxdepth 1 -name '*.so' -type f -print0)
    echo "$layout" >"$sysroot.tmp/.complete"
    rm -rf "$sysroot"
    mv "$sysroot.tmp" "$sysroot"
  fi
  local multiarch=aarch64-linux-gnu
  export PKG_CONFIG_ALLOW_CROSS=1
  export PKG_CONFIG_SYSROOT_DIR_aarch64_unknown_linux_gnu="$sysroot"
  export PKG_CONFIG_LIBDIR_aarch64_unknown_linux_gnu="$sysroot/usr/lib/$multiarch/pkgconfig:$sysroot/usr/share/pkgconfig"
  # GStreamer's libraries need GLib's, ORC's…: let the linker find those too.
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-Wl,-rpath-link,$sysroot/usr/lib/$multiarch -C link-arg=-Wl,-rpath-link,$sysroot/lib/$multiarch"
  qemu_prefix="$sysroot"
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -cpu $qemu_cpu -L $qemu_prefix"
}
