package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
		data string
		perm os.FileMode
	}{
		{"new file", filepath.Join(dir, "a"), "one\n", 0o640},
		{"replace", filepath.Join(dir, "a"), "two\n", 0o600},
		{"missing directory", filepath.Join(dir, "sub", "b"), "x", 0o644},
		{"empty", filepath.Join(dir, "c"), "", 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Write(tt.path, []byte(tt.data), tt.perm); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(tt.path)
			if err != nil || string(got) != tt.data {
				t.Fatalf("read back %q, %v; want %q", got, err, tt.data)
			}
			st, _ := os.Stat(tt.path)
			if st.Mode().Perm() != tt.perm {
				t.Errorf("mode %v, want %v", st.Mode().Perm(), tt.perm)
			}
		})
	}
	// No temporary file stays behind.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left in %s", e.Name(), dir)
		}
	}
}

// TestWriteFails: a directory that cannot be written leaves the old file as it was
// and says which file failed.
func TestWriteFails(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes read-only directories: the failure cannot be provoked")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "state")
	if err := Write(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o500)
	defer os.Chmod(dir, 0o700)
	err := Write(p, []byte("new"), 0o600)
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("err %v, want one naming %s", err, p)
	}
	if got, _ := os.ReadFile(p); string(got) != "old" {
		t.Errorf("file now %q, want the old content", got)
	}
}
