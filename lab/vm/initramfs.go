package vm

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// cpioWriter writes a "newc" cpio archive, the format the kernel unpacks into its
// initramfs.
type cpioWriter struct {
	w   *bufio.Writer
	ino int
	err error
}

func (c *cpioWriter) header(name string, mode uint32, size int64, rmaj, rmin int) {
	if c.err != nil {
		return
	}
	c.ino++
	h := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, size, 0, 0, rmaj, rmin, len(name)+1, 0)
	_, c.err = io.WriteString(c.w, h+name+"\x00")
	c.pad(len(h) + len(name) + 1)
}

func (c *cpioWriter) pad(n int) {
	if c.err == nil && n%4 != 0 {
		_, c.err = c.w.Write(make([]byte, 4-n%4))
	}
}

func (c *cpioWriter) dir(name string) { c.header(name, 0o040755, 0, 0, 0) }

func (c *cpioWriter) file(name, src string, mode uint32) {
	if c.err != nil {
		return
	}
	f, err := os.Open(src)
	if err != nil {
		c.err = fmt.Errorf("initramfs: %w", err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		c.err = err
		return
	}
	c.header(name, 0o100000|mode, st.Size(), 0, 0)
	if c.err != nil {
		return
	}
	if _, c.err = io.Copy(c.w, f); c.err == nil {
		c.pad(int(st.Size() % 4))
	}
}

// BuildInitramfs writes the guests' initramfs to out: /init is medialb-vmagent from bin,
// /bin holds the static programs of bin named in progs, /lib/modules the kernel's
// modules. Every program must be static (CGO_ENABLED=0): the initramfs has no libc.
func BuildInitramfs(out string, k *Kernel, bin string, progs []string) error {
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	c := &cpioWriter{w: bufio.NewWriterSize(f, 1<<20)}
	for _, d := range []string{"bin", "dev", "etc", "lib", "lib/modules", "proc", "run", "sys", "tmp", "var", "var/lib"} {
		c.dir(d)
	}
	c.header("dev/console", 0o020600, 0, 5, 1)
	c.file("init", filepath.Join(bin, "medialb-vmagent"), 0o755)
	for _, p := range progs {
		c.file("bin/"+p, filepath.Join(bin, p), 0o755)
	}
	for _, m := range k.Modules {
		c.file("lib/modules/"+filepath.Base(m), m, 0o644)
	}
	c.header("TRAILER!!!", 0, 0, 0, 0)
	if c.err == nil {
		c.err = c.w.Flush()
	}
	if cerr := f.Close(); c.err == nil {
		c.err = cerr
	}
	if c.err != nil {
		os.Remove(out)
		return fmt.Errorf("build initramfs %s: %w", out, c.err)
	}
	return nil
}

// moduleNames are the file names the agent loads, for medialb.modules=.
func moduleNames(k *Kernel) string {
	var n []string
	for _, m := range k.Modules {
		n = append(n, filepath.Base(m))
	}
	return strings.Join(n, ",")
}
