SUMMARY = "outpost appliance: a small systemd image that boots into the outpost agent"
DESCRIPTION = "core-image-minimal with systemd as init, the outpost agent enabled, \
               and the GStreamer plugins of the board's hardware video encoder."
LICENSE = "MIT"

inherit core-image features_check

REQUIRED_DISTRO_FEATURES = "systemd"

# The GStreamer plugin of the board's hardware encoder, the element its board profile
# names (see docs/machines.md). Boards without one run the profile's software fallback.
# Raspberry Pi 4's v4l2h264enc is in gstreamer1.0-plugins-good-video4linux2, which the
# outpost package already pulls in.
OUTPOST_ENCODER_PACKAGES ??= ""
# i.MX 8M Plus with NXP's BSP (IMX_DEFAULT_BSP = "nxp"): vpuenc_h264.
OUTPOST_ENCODER_PACKAGES:mx8mp-nxp-bsp ??= "imx-gst1.0-plugin"
# Jetson: nvv4l2h264enc, and nvvidconv to bring frames into NVMM memory.
OUTPOST_ENCODER_PACKAGES:tegra ??= "gstreamer1.0-plugins-nvvideo4linux2 gstreamer1.0-plugins-nvvidconv"

# kernel-modules: cameras (uvcvideo) and encoders (bcm2835-codec on the Pi 4) are
# modules; packagegroup-core-boot brings none of the machine's recommended extras.
IMAGE_INSTALL = "\
    packagegroup-core-boot \
    kernel-modules \
    outpost \
    ${OUTPOST_ENCODER_PACKAGES} \
    ${CORE_IMAGE_EXTRA_INSTALL} \
"

IMAGE_LINGUAS = ""
