#!/usr/bin/env bash
# Debian packages some tests use: chromium (the HTML report check), adb (the simulated phone is
# reached through the real adb client), qemu-user-static and the aarch64 cross compiler (the
# edgecap_runner build for linux-aarch64, slow tests). Installs what is missing when it can
# (root or passwordless sudo); otherwise says which tests will be skipped, and succeeds.
set -euo pipefail
want=()
command -v chromium >/dev/null || want+=(chromium)
command -v adb >/dev/null || want+=(adb)
command -v qemu-aarch64-static >/dev/null || want+=(qemu-user-static)
command -v aarch64-linux-gnu-g++ >/dev/null || want+=(g++-aarch64-linux-gnu)
[ ${#want[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else
  echo "system-deps: not root; missing ${want[*]}: the tests that need them will be skipped (install them with apt)"
  exit 0
fi
command -v apt-get >/dev/null || { echo "system-deps: no apt-get; missing ${want[*]} (tests needing them skip)"; exit 0; }
echo "system-deps: installing ${want[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${want[@]}" >/dev/null
