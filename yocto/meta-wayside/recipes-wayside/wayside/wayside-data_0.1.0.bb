SUMMARY = "Wayside data API: face and licence-plate search"
DESCRIPTION = "The central search service Wayside edge daemons forward faces \
               and plates to: an embedded store (SQLite compiled in, \
               binary-quantized face search) or an Elasticsearch cluster, over HTTP."
SECTION = "net"

require wayside-source.inc

SRC_URI += "file://wayside-data.toml"

inherit systemd

CARGO_SRC_DIR = "data-api"

do_install:append() {
    install -d ${D}${systemd_system_unitdir} ${D}${sysconfdir}/wayside ${D}${docdir}/wayside-data
    install -m 0644 ${S}/systemd/wayside-data.service ${D}${systemd_system_unitdir}/
    install -m 0644 ${UNPACKDIR}/wayside-data.toml ${D}${sysconfdir}/wayside/
    install -m 0644 ${S}/docs/DEPLOY.md ${D}${docdir}/wayside-data/
}

SYSTEMD_SERVICE:${PN} = "wayside-data.service"

CONFFILES:${PN} = "${sysconfdir}/wayside/wayside-data.toml"
