// Command vmdkmount turns an erofs-vmdk rootfs mount list into QEMU
// -drive/-device pairs and the guest's mount commands. It reads both mount
// contracts:
//
//   - v2 (docs/contract-v2.md): exactly one mount of type
//     "fuse.erofs-vmdk-mount" with X-erofs-vmdk.contract=2; a view (ro),
//     directory mode (upperdir=/workdir= host dirs: the guest uses a tmpfs
//     upper) or block mode (X-erofs-vmdk.upper-image*: a second, writable
//     disk with /upper and /work inside);
//   - v1 (go-shim-compat.md §1): the "vmdk" mount, with an overlay after it.
//
// It is the example of go-shim-compat.md, kept here so a test compiles and
// runs it (test/vm/go-example.test.ts).
//
// Standard library only. In a shim the Mount type is containerd's
// (github.com/containerd/containerd/v2/core/mount.Mount, or api/types.Mount);
// the fields are the same.
//
//	(cd hack/vm/go-example && go run . -allow-dir /var/lib/erofs-vmdk) < mounts.json
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Mount mirrors containerd's mount.Mount.
type Mount struct {
	Type    string   `json:"type"`
	Source  string   `json:"source"`
	Target  string   `json:"target"`
	Options []string `json:"options"`
}

// v1Options are exactly the options of a vmdk mount, contract v1.
var v1Options = []string{"X-vmdk.fs=erofs", "X-vmdk.layout=flat", "ro"}

// isVMDKv1 recognises the vmdk mount. Any other X-vmdk.* option means a
// contract this code does not know: refuse it rather than guess.
func isVMDKv1(m Mount) (bool, error) {
	if m.Type != "vmdk" {
		return false, nil
	}
	opts := append([]string(nil), m.Options...)
	sort.Strings(opts)
	if strings.Join(opts, ",") != strings.Join(v1Options, ",") {
		return false, fmt.Errorf("vmdk mount with options %v: not contract v1", m.Options)
	}
	return true, nil
}

// v2Type is the contract v2 mount type: containerd hands "fuse.*" mounts to
// mount.fuse on the host, which runs the erofs-vmdk-mount helper.
const v2Type = "fuse.erofs-vmdk-mount"

// v2 is what a contract v2 entry asks for.
type v2 struct {
	view       bool   // ro: the EROFS image is the root
	dirMode    bool   // upperdir/workdir: host dirs, a guest tmpfs upper here
	upperImage string // block mode: ext4 image, /upper and /work inside
	upperSize  int64  // block mode: bytes to create it with when missing or empty
}

// parseV2 checks the one fuse.erofs-vmdk-mount entry strictly: the contract
// must be 2, and any option not in the contract is refused.
func parseV2(m Mount) (v2, error) {
	var r v2
	opts := map[string]string{}
	for _, o := range m.Options {
		k, v, hasValue := strings.Cut(o, "=")
		if _, dup := opts[k]; dup {
			return r, fmt.Errorf("option %s repeated", k)
		}
		switch k {
		case "ro":
			if hasValue {
				return r, fmt.Errorf("option %q takes no value", o)
			}
		case "X-erofs-vmdk.contract", "X-vmdk.fs", "X-vmdk.layout", "upperdir", "workdir",
			"X-erofs-vmdk.upper-image", "X-erofs-vmdk.upper-image-size", "X-erofs-vmdk.upper-image-fs":
			if !hasValue {
				return r, fmt.Errorf("option %q needs a value", o)
			}
		default:
			return r, fmt.Errorf("unknown option %q: not contract v2", o)
		}
		opts[k] = v
	}
	if c, ok := opts["X-erofs-vmdk.contract"]; !ok || c != "2" {
		return r, fmt.Errorf("X-erofs-vmdk.contract=%q: not contract v2", c)
	}
	if opts["X-vmdk.fs"] != "erofs" || opts["X-vmdk.layout"] != "flat" {
		return r, errors.New("needs X-vmdk.fs=erofs and X-vmdk.layout=flat")
	}
	has := func(k string) bool { _, ok := opts[k]; return ok }
	_, r.view = opts["ro"]
	r.dirMode = has("upperdir") || has("workdir")
	block := has("X-erofs-vmdk.upper-image") || has("X-erofs-vmdk.upper-image-size") || has("X-erofs-vmdk.upper-image-fs")
	switch {
	case r.dirMode && block:
		return r, errors.New("mixes upperdir/workdir and X-erofs-vmdk.upper-image")
	case r.view && (r.dirMode || block):
		return r, errors.New("ro with a writable layer")
	case !r.view && !r.dirMode && !block:
		return r, errors.New("neither ro nor a writable layer")
	case r.dirMode:
		for _, k := range []string{"upperdir", "workdir"} {
			if !filepath.IsAbs(opts[k]) {
				return r, fmt.Errorf("%s=%q: not an absolute host path", k, opts[k])
			}
		}
	case block:
		if !has("X-erofs-vmdk.upper-image") || !has("X-erofs-vmdk.upper-image-size") || opts["X-erofs-vmdk.upper-image-fs"] != "ext4" {
			return r, errors.New("block mode needs X-erofs-vmdk.upper-image, -size and -fs=ext4")
		}
		size, err := strconv.ParseInt(opts["X-erofs-vmdk.upper-image-size"], 10, 64)
		if err != nil || size < 1<<20 {
			return r, fmt.Errorf("X-erofs-vmdk.upper-image-size=%q: not a size of at least 1 MiB", opts["X-erofs-vmdk.upper-image-size"])
		}
		r.upperImage, r.upperSize = opts["X-erofs-vmdk.upper-image"], size
	}
	return r, nil
}

// checkPath accepts a file only inside allowDir, with no symlink on the way
// (the extents are re-checked the same way before attaching; see
// hack/vm/vmdk-descriptor.ts for the full list of checks). A missing file is
// accepted when mayBeMissing, if its folder passes the same checks.
func checkPath(what, path, allowDir string, mayBeMissing bool) error {
	if !filepath.IsAbs(path) || strings.ContainsAny(path, " \t\n\",") {
		return fmt.Errorf("%s %q: not an absolute path without spaces, quotes or commas", what, path)
	}
	check := path
	if _, err := os.Lstat(path); mayBeMissing && errors.Is(err, os.ErrNotExist) {
		check = filepath.Dir(path)
	}
	real, err := filepath.EvalSymlinks(check)
	if err != nil {
		return fmt.Errorf("%s %q: %w", what, path, err)
	}
	if real != filepath.Clean(check) {
		return fmt.Errorf("%s %q goes through a symlink", what, path)
	}
	if rel, err := filepath.Rel(allowDir, real); err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("%s %q is outside %s", what, path, allowDir)
	}
	return nil
}

// ensureUpperImage creates and formats the block-mode image when it is
// missing or empty, as the host helper (and containerd's mkfs/ transformer)
// would. Never while a host mount of it may be live.
func ensureUpperImage(path string, size int64) error {
	st, err := os.Lstat(path)
	switch {
	case err == nil && !st.Mode().IsRegular():
		return fmt.Errorf("upper image %s is not a regular file", path)
	case err == nil && st.Size() > 0:
		return nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return err
	}
	flags := os.O_WRONLY
	if err != nil {
		flags |= os.O_CREATE | os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", path).CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.ext4 %s: %v: %s", path, err, out)
	}
	return nil
}

// Guest commands, shared by both contracts: find a disk by its virtio serial
// (no udev needed); the command fails when no disk has it.
const (
	findImage = `guest: dev=; for d in /sys/block/vd*; do read -r s <"$d/serial"; [ "$s" = erofs-vmdk-image ] && dev=/dev/${d##*/}; done; [ -n "$dev" ]`
	findUpper = `guest: udev=; for d in /sys/block/vd*; do read -r s <"$d/serial"; [ "$s" = erofs-vmdk-upper ] && udev=/dev/${d##*/}; done; [ -n "$udev" ]`
)

// printImageDisk prints the host side (ONE read-only disk, whatever the layer
// count) and the guest's flat EROFS mount (no device= options).
func printImageDisk(descriptor, lower string) {
	fmt.Printf("-drive file=%s,format=vmdk,if=none,id=rootfs,readonly=on,force-share=on\n", descriptor)
	fmt.Println("-device virtio-blk-pci,drive=rootfs,serial=erofs-vmdk-image")
	fmt.Println(findImage)
	fmt.Printf("guest: mount -t erofs -o ro \"$dev\" %s\n", lower)
}

func main() {
	allowDir := flag.String("allow-dir", "", "state dir descriptors must live in (required)")
	flag.Parse()
	var mounts []Mount
	if err := json.NewDecoder(os.Stdin).Decode(&mounts); err != nil {
		fail("decoding mount list: %v", err)
	}
	if *allowDir == "" {
		fail("-allow-dir is required")
	}
	for i, m := range mounts {
		if m.Type == v2Type {
			if len(mounts) != 1 {
				fail("a contract v2 rootfs is exactly one %s mount, got %d mounts", v2Type, len(mounts))
			}
			runV2(m, *allowDir)
			return
		}
		for _, o := range m.Options {
			if strings.HasPrefix(o, "X-erofs-vmdk.") {
				fail("mounts[%d]: type %q with %s: contract v2 mounts have type %s", i, m.Type, o, v2Type)
			}
		}
	}
	runV1(mounts, *allowDir)
}

// runV2: one entry, nothing to substitute.
func runV2(m Mount, allowDir string) {
	r, err := parseV2(m)
	if err != nil {
		fail("mounts[0] (%s): %v", v2Type, err)
	}
	if err := checkPath("descriptor", m.Source, allowDir, false); err != nil {
		fail("%v", err)
	}
	if r.upperImage != "" {
		if err := checkPath("upper image", r.upperImage, allowDir, true); err != nil {
			fail("%v", err)
		}
		if err := ensureUpperImage(r.upperImage, r.upperSize); err != nil {
			fail("%v", err)
		}
	}
	printImageDisk(m.Source, "/run/rootfs/m0")
	switch {
	case r.view:
		// A view: the read-only EROFS mount is the root; nothing more.
		return
	case r.dirMode:
		// Host upperdir/workdir are for host mounts only: the guest's upper is a tmpfs.
		fmt.Println("guest: mount -t tmpfs tmpfs /run/rootfs/rw")
	default:
		// Block mode: the image is a second, writable raw disk; never mount it on the host at the same time.
		fmt.Printf("-drive file=%s,format=raw,if=none,id=upper\n", r.upperImage)
		fmt.Println("-device virtio-blk-pci,drive=upper,serial=erofs-vmdk-upper")
		fmt.Println(findUpper)
		fmt.Println(`guest: mount -t ext4 "$udev" /run/rootfs/rw`)
	}
	fmt.Println("guest: mkdir -p /run/rootfs/rw/upper /run/rootfs/rw/work")
	fmt.Println("guest: mount -t overlay overlay -o lowerdir=/run/rootfs/m0,upperdir=/run/rootfs/rw/upper,workdir=/run/rootfs/rw/work /run/rootfs/root")
}

// runV1: the vmdk mount, then the overlay template that names it.
func runV1(mounts []Mount, allowDir string) {
	image := -1
	for i, m := range mounts {
		ok, err := isVMDKv1(m)
		if err != nil {
			fail("mounts[%d]: %v", i, err)
		}
		if ok {
			if image >= 0 {
				fail("more than one vmdk mount")
			}
			image = i
		}
	}
	if image < 0 {
		fail("no vmdk or %s mount: not an erofs-vmdk rootfs", v2Type)
	}
	if err := checkPath("descriptor", mounts[image].Source, allowDir, false); err != nil {
		fail("%v", err)
	}

	lower := fmt.Sprintf("/run/rootfs/m%d", image)
	printImageDisk(mounts[image].Source, lower)
	// The overlay from the template.
	for i, m := range mounts {
		base := m.Type[strings.LastIndex(m.Type, "/")+1:] // strip format/, mkdir/ transformers
		if i == image || base != "overlay" {
			continue
		}
		var opts []string
		for _, o := range m.Options {
			switch {
			case o == fmt.Sprintf("lowerdir={{ mount %d }}", image):
				opts = append(opts, "lowerdir="+lower)
			case strings.HasPrefix(o, "upperdir=") || strings.HasPrefix(o, "workdir="):
				// Host paths mean nothing in the guest: the writable layer is a
				// guest tmpfs (or the mkfs/ext4 disk in block mode, not shown).
				key := o[:strings.Index(o, "=")]
				dir := map[string]string{"upperdir": "upper", "workdir": "work"}[key]
				opts = append(opts, fmt.Sprintf("%s=/run/rootfs/rw/%s", key, dir))
			case strings.Contains(o, "{{"):
				fail("mounts[%d]: template %q not handled by this example", i, o)
			default:
				opts = append(opts, o)
			}
		}
		fmt.Println("guest: mount -t tmpfs tmpfs /run/rootfs/rw")
		fmt.Println("guest: mkdir -p /run/rootfs/rw/upper /run/rootfs/rw/work")
		fmt.Printf("guest: mount -t overlay overlay -o %s /run/rootfs/root\n", strings.Join(opts, ","))
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "vmdkmount: "+format+"\n", args...)
	os.Exit(1)
}
