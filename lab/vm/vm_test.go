package vm

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/medialb/medialb/lab"
)

// newLab boots a VM lab for t, or skips t: the VM lab runs only from make test-vm
// (MEDIALB_VM_LAB=1, MEDIALB_BIN holding static binaries), as root.
func newLab(t *testing.T, o Options) *Lab {
	t.Helper()
	if os.Getenv("MEDIALB_VM_LAB") == "" {
		t.Skip("VM lab: run with make test-vm (MEDIALB_VM_LAB=1; QEMU TCG guests take minutes)")
	}
	if os.Geteuid() != 0 {
		t.Skip("VM lab: needs root (network namespaces, taps)")
	}
	o.Bin = os.Getenv("MEDIALB_BIN")
	if o.Bin == "" {
		t.Fatal("VM lab: MEDIALB_BIN must name a directory of static (CGO_ENABLED=0) binaries")
	}
	if o.Prefix == "" {
		o.Prefix = lab.Prefix("vm")
	}
	o.Log = t.Logf
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	l, err := New(ctx, o)
	if err != nil && o.LBCPUs > 2 && strings.Contains(err.Error(), "QEMU exited during boot") {
		// Multi-threaded TCG with 4 vCPUs now and then runs a stale translation of
		// code the booting kernel patches (an int3 Oops in a static call site):
		// a second boot is a new draw.
		t.Logf("VM lab: boot again after %v", err)
		l, err = New(ctx, o)
	}
	if err != nil {
		t.Fatalf("VM lab: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, g := range l.Guests() {
				t.Logf("%s console:\n%s", g.Name, g.ConsoleTail(40))
			}
		}
		if err := l.Close(); err != nil {
			t.Errorf("VM lab: %v", err)
		}
	})
	t.Logf("VM lab up in %s", time.Since(start).Round(time.Second))
	return l
}
