SUMMARY = "Wayside edge daemon: roadside video analytics"
DESCRIPTION = "Counts pedestrians and vehicles in uploaded videos and live \
               cameras, tracks them, draws an annotated video, finds faces and \
               reads licence plates, and forwards what it finds to the Wayside \
               data API."
SECTION = "multimedia"

require wayside-source.inc

DEPENDS += "glib-2.0 gstreamer1.0 gstreamer1.0-plugins-base"

SRC_URI += "file://wayside.toml"

# cargo-update-recipe-crates: `bitbake -c update_crates wayside` lists the same
# crates as yocto/scripts/gen-crates-inc.py (whose layout is the committed one).
inherit cargo-update-recipe-crates pkgconfig systemd

CARGO_SRC_DIR = "daemon"

do_install:append() {
    install -d ${D}${systemd_system_unitdir} ${D}${sysconfdir}/wayside ${D}${docdir}/wayside
    install -m 0644 ${S}/systemd/wayside.service ${D}${systemd_system_unitdir}/
    install -m 0644 ${UNPACKDIR}/wayside.toml ${D}${sysconfdir}/wayside/
    install -m 0644 ${S}/docs/DEPLOY.md ${D}${docdir}/wayside/
}

SYSTEMD_SERVICE:${PN} = "wayside.service"

CONFFILES:${PN} = "${sysconfdir}/wayside/wayside.toml"

# What daemon/src/decode and daemon/src/encode create by name, and what
# decodebin plugs in for MP4/H.264. x264enc needs PACKAGECONFIG x264 in
# gstreamer1.0-plugins-ugly (README.md).
RDEPENDS:${PN} = "\
    gstreamer1.0-libav \
    gstreamer1.0-plugins-bad-videoparsersbad \
    gstreamer1.0-plugins-base-app \
    gstreamer1.0-plugins-base-playback \
    gstreamer1.0-plugins-base-typefindfunctions \
    gstreamer1.0-plugins-base-videoconvertscale \
    gstreamer1.0-plugins-good-isomp4 \
    gstreamer1.0-plugins-good-videofilter \
    gstreamer1.0-plugins-ugly-x264 \
    wayside-models \
"
# Other containers and live sources: AVI and Matroska uploads, V4L2 cameras
# (and the Pi's V4L2 codecs), RTSP cameras.
RRECOMMENDS:${PN} = "\
    gstreamer1.0-plugins-good-avi \
    gstreamer1.0-plugins-good-matroska \
    gstreamer1.0-plugins-good-rtp \
    gstreamer1.0-plugins-good-rtpmanager \
    gstreamer1.0-plugins-good-rtsp \
    gstreamer1.0-plugins-good-udp \
    gstreamer1.0-plugins-good-video4linux2 \
"
