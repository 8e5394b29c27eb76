package control

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medialb/medialb/tables"
)

// TestCorruptAdminFile: a damaged admin-state file is kept aside, logged as an
// error, and every real server starts drained, never silently back online; the
// drain is saved, so a second restart keeps it.
func TestCorruptAdminFile(t *testing.T) {
	tests := []struct{ name, content string }{
		{"truncated", `{"servers": [{"service": "Web", "server": "HM1", "state": "ha`},
		{"not json", "\x00\x00\x00"},
		{"unknown state", `{"servers": [{"service": "Web", "server": "HM1", "state": "hlat"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "admin-state.json")
			if err := os.WriteFile(file, []byte(tt.content), 0o640); err != nil {
				t.Fatal(err)
			}
			c, h, logs := newTest(t, dir, allMACs())
			for _, k := range []Key{{Service: "Web", Server: "HM1"}, {Service: "Web", Server: "HM2"}, {Service: "Media", Server: "HT1"}, {Service: "Media", Server: "HT2"}} {
				if got := c.Admin(k.Service, k.Server); got != tables.StateDrain {
					t.Errorf("%s: admin state %s, want drain", k, got)
				}
				if got := state(h, k.Service, k.Server); got == tables.StateOnline {
					t.Errorf("%s: in service after a corrupt admin-state file", k)
				}
			}
			aside, _ := filepath.Glob(file + ".corrupt-*")
			if len(aside) != 1 {
				t.Fatalf("corrupt file kept as %v, want one %s.corrupt-TIMESTAMP", aside, file)
			}
			if b, _ := os.ReadFile(aside[0]); string(b) != tt.content {
				t.Errorf("kept file holds %q", b)
			}
			if !strings.Contains(logs.String(), `"level":"error"`) || !strings.Contains(logs.String(), aside[0]) {
				t.Errorf("no error naming %s in the log:\n%s", aside[0], logs)
			}
			c2, _, _ := newTest(t, dir, allMACs())
			if got := c2.Admin("Media", "HT2"); got != tables.StateDrain {
				t.Errorf("after a second restart HT2 is %s, want drain", got)
			}
		})
	}
}

// TestSetAdminNotSaved: when the state cannot be saved, SetAdmin fails, and the
// snapshot in force and the admin state stay as they were.
func TestSetAdminNotSaved(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "state")
	c, h, _ := newTest(t, dir, allMACs())
	// The state directory becomes a plain file: every save fails, even as root.
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := c.SetAdmin("Web", "HM1", tables.StateHalt)
	if err == nil || !strings.Contains(err.Error(), "admin-state.json") {
		t.Fatalf("SetAdmin: %v, want an error naming the file", err)
	}
	if errors.Is(err, ErrUnknown) {
		t.Errorf("a save failure reads as an unknown name (404): %v", err)
	}
	if got := c.Admin("Web", "HM1"); got != tables.StateOnline {
		t.Errorf("admin state %s after a failed save, want online", got)
	}
	if got := state(h, "Web", "HM1"); got != tables.StateOnline {
		t.Errorf("snapshot state %s after a failed save, want online", got)
	}
}
