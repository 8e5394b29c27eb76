package vm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// KernelVersion is the pinned guest kernel: Debian testing's (forky) cloud kernel, whose
// virtio-net does AF_XDP zero-copy (Linux 6.13 and later; bookworm's 6.1 and 6.12 answer
// EOPNOTSUPP to a zero-copy bind). Change it deliberately: FetchKernel fails when the
// mirror no longer has it.
const KernelVersion = "7.2.12+deb14-cloud-amd64"

// KernelSuite is the Debian suite KernelVersion comes from.
const KernelSuite = "forky"

// Modules are the kernel modules the guests load, in order (virtio-pci is built in).
var Modules = []string{"kernel/net/core/failover.ko", "kernel/drivers/net/net_failover.ko", "kernel/drivers/net/virtio_net.ko"}

// Kernel is an unpacked guest kernel.
type Kernel struct {
	Version string
	Image   string   // vmlinuz
	Modules []string // decompressed .ko files, in Modules order
}

// DefaultCache is where the lab keeps downloaded kernels and built initramfs images
// between runs (never in the repository).
const DefaultCache = "/var/tmp/medialb-vm"

// FetchKernel returns the pinned kernel, downloading and unpacking it into cache first if
// it is not there. It downloads with an apt source list of its own (the machine's apt
// sources are not touched) from deb.debian.org, needs apt-get, dpkg-deb and xz, and fails
// saying so when the pinned version is gone from the mirror.
func FetchKernel(cache string) (*Kernel, error) {
	dir := filepath.Join(cache, "kernel-"+KernelVersion)
	k := &Kernel{Version: KernelVersion, Image: filepath.Join(dir, "vmlinuz")}
	for _, m := range Modules {
		k.Modules = append(k.Modules, filepath.Join(dir, "modules", filepath.Base(m)))
	}
	if ok, _ := haveAll(append([]string{k.Image}, k.Modules...)); ok {
		return k, nil
	}
	apt := filepath.Join(cache, "apt-"+KernelSuite)
	for _, d := range []string{"lists/partial", "cache/archives/partial", "debs"} {
		if err := os.MkdirAll(filepath.Join(apt, d), 0o755); err != nil {
			return nil, fmt.Errorf("fetch kernel: %w", err)
		}
	}
	src := filepath.Join(apt, "sources.list")
	line := "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian " + KernelSuite + " main\n"
	if err := os.WriteFile(src, []byte(line), 0o644); err != nil {
		return nil, fmt.Errorf("fetch kernel: %w", err)
	}
	opts := []string{
		"-q", "-o", "Dir::Etc::sourcelist=" + src, "-o", "Dir::Etc::sourceparts=-",
		"-o", "Dir::State::Lists=" + filepath.Join(apt, "lists"), "-o", "Dir::Cache=" + filepath.Join(apt, "cache"),
		"-o", "Dir::State::status=/dev/null", "-o", "APT::Sandbox::User=root",
	}
	if err := runIn("", "apt-get", append(opts, "update")...); err != nil {
		return nil, fmt.Errorf("fetch kernel: update the %s package list: %w", KernelSuite, err)
	}
	pkgs := []string{"linux-binary-" + KernelVersion, "linux-modules-" + KernelVersion}
	debs := filepath.Join(apt, "debs")
	if err := runIn(debs, "apt-get", append(opts, append([]string{"download"}, pkgs...)...)...); err != nil {
		return nil, fmt.Errorf("fetch kernel: download %s from Debian %s: %w (the pinned kernel is gone from the mirror? change lab/vm.KernelVersion to a linux-binary-*-cloud-amd64 that %s has)",
			strings.Join(pkgs, ", "), KernelSuite, err, KernelSuite)
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	files, _ := filepath.Glob(filepath.Join(debs, "linux-*"+KernelVersion+"_*.deb"))
	if len(files) < 2 {
		return nil, fmt.Errorf("fetch kernel: apt-get download left %d packages of %s in %s, want 2", len(files), KernelVersion, debs)
	}
	for _, f := range files {
		if err := runIn("", "dpkg-deb", "-x", f, tmp); err != nil {
			return nil, fmt.Errorf("fetch kernel: unpack %s: %w", f, err)
		}
	}
	mods := filepath.Join(tmp, "usr/lib/modules", KernelVersion)
	if err := os.MkdirAll(filepath.Join(tmp, "modules"), 0o755); err != nil {
		return nil, err
	}
	if err := os.Rename(filepath.Join(mods, "vmlinuz"), filepath.Join(tmp, "vmlinuz")); err != nil {
		return nil, fmt.Errorf("fetch kernel: no vmlinuz in the %s packages: %w", KernelVersion, err)
	}
	for _, m := range Modules {
		out, err := exec.Command("xz", "-dc", filepath.Join(mods, m+".xz")).Output()
		if err != nil {
			return nil, fmt.Errorf("fetch kernel: decompress module %s: %w", m, err)
		}
		if err := os.WriteFile(filepath.Join(tmp, "modules", filepath.Base(m)), out, 0o644); err != nil {
			return nil, err
		}
	}
	os.RemoveAll(filepath.Join(tmp, "usr"))
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("fetch kernel: %w", err)
	}
	return k, nil
}

func haveAll(paths []string) (bool, error) {
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return false, err
		}
	}
	return true, nil
}

// runIn runs a command in dir and puts its output in the error.
func runIn(dir, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) || true {
			return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, lastLines(out.String(), 5))
		}
	}
	return nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
