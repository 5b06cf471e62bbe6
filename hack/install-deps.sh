#!/usr/bin/env bash
# Installs the system packages the test suite and the hack/ scripts exercise for real.
# Idempotent and quick when everything is present: it only calls apt-get for what is missing.
set -euo pipefail

# command-to-check -> Debian package providing it
declare -A needed=(
  [mkfs.erofs]=erofs-utils
  [qemu-img]=qemu-utils
  [qemu-system-x86_64]=qemu-system-x86
  [losetup]=mount
  [mkfs.ext4]=e2fsprogs
  [setfattr]=attr
  [cpio]=cpio
  [containerd]=containerd
  [runc]=runc
  [python3]=python3
  [go]=golang-go
  [xz]=xz-utils
  [debugfs]=e2fsprogs
)

missing=()
for cmd in "${!needed[@]}"; do
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ] && [ ! -x "/sbin/$cmd" ]; then
    missing+=("${needed[$cmd]}")
  fi
done

# Packages needed by name, not only for a command: the VM initramfs needs a
# STATIC busybox, and Debian's dynamic `busybox` package also provides the command.
for pkg in busybox-static; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages ${missing[*]} and not root; install them with apt-get" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Kernel features the tests rely on: EROFS and overlayfs, and loop devices.
modprobe erofs 2>/dev/null || true
modprobe overlay 2>/dev/null || true
modprobe loop 2>/dev/null || true
