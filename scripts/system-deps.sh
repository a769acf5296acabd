#!/usr/bin/env bash
# Debian packages some tests use: chromium (the HTML report check), adb (the simulated phone is
# reached through the real adb client), qemu-user-static and the aarch64 cross compiler (the
# edgecap_runner build for linux-aarch64, slow tests). Installs what is missing when it runs as
# root (CI, containers); otherwise, or offline, says which tests will be skipped, and succeeds.
set -uo pipefail
want=()
command -v chromium >/dev/null || want+=(chromium)
command -v adb >/dev/null || want+=(adb)
command -v qemu-aarch64-static >/dev/null || want+=(qemu-user-static)
command -v aarch64-linux-gnu-g++ >/dev/null || want+=(g++-aarch64-linux-gnu)
[ ${#want[@]} -eq 0 ] && exit 0
skip="the tests that need them are skipped (install them with apt)"
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "system-deps: missing ${want[*]}; not root with apt: $skip"
  exit 0
fi
echo "system-deps: installing ${want[*]}"
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}" >/dev/null; }; then
  echo "system-deps: apt could not install ${want[*]} (offline?): $skip"
fi
