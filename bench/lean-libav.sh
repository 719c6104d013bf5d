#!/usr/bin/env bash
# Builds the system's own FFmpeg version from Debian's source under
# var/libav-FLAVOUR, configured the way an appliance image carries it, not
# the way a desktop distribution does. Same version, same sonames: Debian's
# gst-libav plugin loads it unchanged. It then writes var/libav-FLAVOUR/wayside,
# a wrapper that runs a given wayside binary against that build instead of
# Debian's libav, for bench/compare.py --wayside.
#
# Flavours:
#   decoders  native decoders only, no outside library, no encoders, muxers,
#             devices, network or filters (the libraries gst-libav links are
#             all still built): the least a Wayside box needs.
#   yocto     openembedded-core's default PACKAGECONFIG for ffmpeg without
#             x11: every native component, linking alsa, bzip2, lzma, theora
#             and zlib. What the board's image carries unless the image
#             changes it.
#
# Why: Debian's libavcodec and libavfilter link some 170 libraries the daemon
# never calls (speech voices, SVG, HEVC and AV1 encoders); their pages are a
# fifth of the daemon's peak RSS ("Where the memory goes" in BENCHMARKS.md).
# This measures what an appliance's libav is worth, same machine, same pixels.
#
# Idempotent: a finished build whose stamp names the same source version and
# configuration is left alone. Adds a deb-src entry for apt-get source.
#
# Usage: bench/lean-libav.sh decoders|yocto [WAYSIDE_BINARY]
#        (default binary: var/wayside-release)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
flavour="${1:?usage: $0 decoders|yocto [WAYSIDE_BINARY]}"
out="$root/var/libav-$flavour"
prefix="$out/prefix"
wayside="$(realpath "${2:-$root/var/wayside-release}")"

ffmpeg_flags=(--enable-shared --disable-static --disable-programs --disable-doc --disable-autodetect)
case "$flavour" in
    decoders)
        build_deps=()
        ffmpeg_flags+=(--disable-network --disable-devices --disable-encoders
            --disable-muxers --disable-filters --disable-hwaccels) ;;
    yocto)
        build_deps=(libasound2-dev libbz2-dev liblzma-dev libtheora-dev zlib1g-dev)
        ffmpeg_flags+=(--enable-alsa --enable-bzlib --enable-lzma --enable-libtheora --enable-zlib) ;;
    *) echo "unknown flavour $flavour: decoders or yocto" >&2; exit 2 ;;
esac

ffmpeg_version="$(dpkg-query -W -f='${source:Version}' "libavcodec59:$(dpkg --print-architecture)")"
want="ffmpeg=$ffmpeg_version ${ffmpeg_flags[*]}"

if [[ "$(cat "$out/stamp" 2>/dev/null)" != "$want" ]]; then
    src_list=/etc/apt/sources.list.d/wayside-bench-src.sources
    if [[ ! -f "$src_list" ]]; then
        cat > "$src_list" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        apt-get update -qq
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        dpkg-dev nasm "${build_deps[@]}" >/dev/null

    rm -rf "$out"
    mkdir -p "$out/src"
    (cd "$out/src" && apt-get source -qq "ffmpeg=$ffmpeg_version")
    ffmpeg_src="$(find "$out/src" -maxdepth 1 -type d -name 'ffmpeg-*')"

    echo "[lean-libav] FFmpeg $ffmpeg_version, $flavour" >&2
    (cd "$ffmpeg_src" && ./configure --prefix="$prefix" "${ffmpeg_flags[@]}" >/dev/null \
        && make -j"$(nproc)" >/dev/null && make install >/dev/null)

    echo "$want" > "$out/stamp"
fi

cat > "$out/wayside" <<EOF
#!/bin/sh
# wayside against the $flavour libav of bench/lean-libav.sh
# Its own registry: the element list of the plugin depends on the libav.
export GST_REGISTRY="$out/registry.bin" LD_LIBRARY_PATH="$prefix/lib"
exec "$wayside" "\$@"
EOF
chmod +x "$out/wayside"
echo "[lean-libav] ready: $out/wayside runs $wayside" >&2
