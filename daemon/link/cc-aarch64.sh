#!/bin/sh
# daemon/link/cc.sh with the aarch64 cross compiler as the driver (cross/build.sh).
KEEPD_LINK_CC=aarch64-linux-gnu-gcc exec "$(dirname "$0")/cc.sh" "$@"
