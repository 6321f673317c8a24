SUMMARY = "Consul-style service catalog, DNS, cluster member and WebRTC video gateway"
DESCRIPTION = "outpost is one daemon for ARM edge boxes: a service catalog with \
               Consul's DNS interface and HTTP API, SWIM gossip and a Raft-replicated \
               catalog among servers, a WebRTC (WHEP) live-video gateway on GStreamer, \
               and an HTTPS status page."
SECTION = "net"
# The repository has no license file of its own: Cargo.toml declares Apache-2.0, so the
# checksum is that of the common license text.
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

inherit cargo cargo-update-recipe-crates pkgconfig systemd useradd externalsrc

# The source is the repository this layer lives in: this recipe sits at
# image/meta-outpost/recipes-outpost/outpost/ of it, so a build from a checkout builds
# that checkout. Point EXTERNALSRC elsewhere to build another tree; the crates below
# must then match its Cargo.lock.
EXTERNALSRC ?= "${@os.path.abspath('${FILE_DIRNAME}/../../../..')}"
# externalsrc would otherwise leave oe-workdir/oe-logs symlinks in the checkout.
# (A variable of externalsrc.bbclass that oelint's variable list lacks.)
# nooelint: oelint.vars.mispell.unknown
EXTERNALSRC_SYMLINKS = ""

# Every crate of Cargo.lock, fetched by bitbake (cargo builds --frozen, offline).
# Written by scripts/yocto-crates.py; scripts/check-yocto.sh keeps it equal to Cargo.lock.
require ${BPN}-crates.inc

# Features come from PACKAGECONFIG only (PACKAGECONFIG_CONFARGS reaches `cargo build`).
CARGO_BUILD_FLAGS += "--no-default-features"
# Cargo.toml strips release builds; here oe-core strips and keeps the symbols in -dbg.
export CARGO_PROFILE_RELEASE_STRIP = "false"

PACKAGECONFIG ??= "media"
# media: GStreamer pipelines and the WebRTC gateway (cargo feature `media`).
PACKAGECONFIG[media] = "--features media,,glib-2.0 gstreamer1.0 gstreamer1.0-plugins-base,${OUTPOST_MEDIA_RDEPENDS}"
# x264: the software H.264 encoder (x264enc); x264 carries LICENSE_FLAGS "commercial".
PACKAGECONFIG[x264] = ",,,gstreamer1.0-plugins-ugly-x264"
# dns53: enable systemd/outpost-dns.socket, DNS on port 53 passed in by systemd.
PACKAGECONFIG[dns53] = ",,,"

# The GStreamer elements outpost's pipelines name, by plugin package: test sources,
# V4L2 cameras (JPEG or raw, decodebin), VP8 and Opus encoders, RTP in (udpsrc,
# rtpjitterbuffer, depayloaders) and H.264 parsing. The vpx and opus plugins are off in
# oe-core by default: the build configuration turns them on (image/kas/base.yml, or
# the lines in docs/machines.md).
OUTPOST_MEDIA_RDEPENDS = "\
    gstreamer1.0 \
    gstreamer1.0-plugins-base-app \
    gstreamer1.0-plugins-base-audioconvert \
    gstreamer1.0-plugins-base-audioresample \
    gstreamer1.0-plugins-base-audiotestsrc \
    gstreamer1.0-plugins-base-opus \
    gstreamer1.0-plugins-base-playback \
    gstreamer1.0-plugins-base-typefindfunctions \
    gstreamer1.0-plugins-base-videoconvertscale \
    gstreamer1.0-plugins-base-videotestsrc \
    gstreamer1.0-plugins-good-jpeg \
    gstreamer1.0-plugins-good-rtp \
    gstreamer1.0-plugins-good-rtpmanager \
    gstreamer1.0-plugins-good-udp \
    gstreamer1.0-plugins-good-video4linux2 \
    gstreamer1.0-plugins-good-vpx \
    gstreamer1.0-plugins-bad-videoparsersbad \
"

# The user of systemd/sysusers.d/outpost.conf, made at rootfs time as well.
USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --home-dir ${localstatedir}/lib/outpost --no-create-home \
                       --shell /sbin/nologin --user-group outpost"

SYSTEMD_SERVICE:${PN} = "outpost.service ${@bb.utils.contains('PACKAGECONFIG', 'dns53', 'outpost-dns.socket', '', d)}"

# cargo's do_install installs every executable the build made: outpost, and with `media`
# outpost-media, the media process the agent starts beside itself (same directory).
do_install:append() {
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/systemd/outpost.service ${D}${systemd_system_unitdir}/
    # Optional files of systemd/: installed when the checkout has them.
    if [ -f ${S}/systemd/outpost-dns.socket ]; then
        install -m 0644 ${S}/systemd/outpost-dns.socket ${D}${systemd_system_unitdir}/
    fi
    if [ -f ${S}/systemd/sysusers.d/outpost.conf ]; then
        install -D -m 0644 ${S}/systemd/sysusers.d/outpost.conf ${D}${nonarch_libdir}/sysusers.d/outpost.conf
    fi
    if [ -f ${S}/systemd/tmpfiles.d/outpost.conf ]; then
        install -D -m 0644 ${S}/systemd/tmpfiles.d/outpost.conf ${D}${nonarch_libdir}/tmpfiles.d/outpost.conf
    fi
    # Service definitions and settings (`-config-dir /etc/outpost.d`); state lives in
    # /var/lib/outpost, made by systemd (StateDirectory=outpost).
    install -d -m 0755 ${D}${sysconfdir}/outpost.d
}

FILES:${PN} += "${systemd_system_unitdir}/outpost-dns.socket \
                ${nonarch_libdir}/sysusers.d/outpost.conf \
                ${nonarch_libdir}/tmpfiles.d/outpost.conf \
                ${sysconfdir}/outpost.d \
"
