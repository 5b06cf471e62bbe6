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
  [mount.fuse3]=fuse3
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

# The contract-v2 host mount helper, where mount.fuse3 (run by containerd for a
# `fuse.erofs-vmdk-mount` mount) finds it on PATH by the subtype name (docs/mount-helper.md).
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "$(id -u)" -eq 0 ]; then
  mkdir -p /usr/local/sbin
  ln -sfn "$repo/bin/erofs-vmdk-mount" /usr/local/sbin/erofs-vmdk-mount
fi

# containerd 2.3.4 for test/e2e-ctr-run (static build, see ../shared/containerd/README.md) and
# Debian 13's erofs-utils for its EROFS differ (mkfs.erofs --tar; Debian 12's 1.5 lacks it).
# hack/containerd2.ts checks SHA256SUMS and extracts $EROFS_VMDK_CONTAINERD2_TARBALL (default
# ../shared/containerd/containerd-2.3.4-linux-amd64-static.tar.xz) into $EROFS_VMDK_CONTAINERD2
# (default /opt/containerd-2.3.4), then fetches erofs-utils once (apt-get download through a
# temporary apt configuration) into ~/.cache/erofs-vmdk/erofs-utils-trixie. With neither the
# binaries nor the tarball it says so, and the containerd 2.x tests skip.
containerd2_js="$repo/dist/hack/containerd2.js"
if [ ! -f "$containerd2_js" ] && [ -x "$repo/node_modules/.bin/tsc" ]; then
  (cd "$repo" && node_modules/.bin/tsc -p tsconfig.json >/dev/null) || true # emits even with type errors
fi
if [ ! -f "$containerd2_js" ]; then
  echo "install-deps: $containerd2_js missing: run npm ci (or npm run build) first" >&2
  exit 1
fi
node "$containerd2_js" install
