// Command vmdkmount turns an erofs-vmdk rootfs mount list (vmdk mount
// contract v1) into a QEMU -drive/-device pair and the guest's mount
// commands. It is the example of go-shim-compat.md, kept here so a test
// compiles and runs it (test/vm/go-example.test.ts).
//
// Standard library only. In a shim the Mount type is containerd's
// (github.com/containerd/containerd/v2/core/mount.Mount, or api/types.Mount);
// the fields are the same.
//
//	(cd hack/vm/go-example && go run . -allow-dir /var/lib/erofs-vmdk) < mounts.json
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
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

// checkDescriptor accepts a descriptor only inside allowDir, with no symlink
// on the way (the extents are re-checked the same way before attaching; see
// hack/vm/vmdk-descriptor.ts for the full list of checks).
func checkDescriptor(path, allowDir string) error {
	if !filepath.IsAbs(path) || strings.ContainsAny(path, " \t\n\",") {
		return fmt.Errorf("descriptor %q: not an absolute path without spaces, quotes or commas", path)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("descriptor %q: %w", path, err)
	}
	if real != filepath.Clean(path) {
		return fmt.Errorf("descriptor %q goes through a symlink", path)
	}
	if rel, err := filepath.Rel(allowDir, real); err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("descriptor %q is outside %s", path, allowDir)
	}
	return nil
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
		fail("no vmdk mount: not an erofs-vmdk rootfs")
	}
	if err := checkDescriptor(mounts[image].Source, *allowDir); err != nil {
		fail("%v", err)
	}

	// Host side: ONE read-only disk, whatever the layer count.
	fmt.Printf("-drive file=%s,format=vmdk,if=none,id=rootfs,readonly=on,force-share=on\n", mounts[image].Source)
	fmt.Println("-device virtio-blk-pci,drive=rootfs,serial=erofs-vmdk-image")

	// Guest side: flat EROFS (no device=), then the overlay from the template.
	lower := fmt.Sprintf("/run/rootfs/m%d", image)
	// Find the disk by its serial (no udev needed), then mount it with NO device= options.
	fmt.Println(`guest: for d in /sys/block/vd*; do read -r s <"$d/serial"; [ "$s" = erofs-vmdk-image ] && dev=/dev/${d##*/}; done`)
	fmt.Printf("guest: mount -t erofs -o ro \"$dev\" %s\n", lower)
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
