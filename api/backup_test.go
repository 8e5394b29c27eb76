package api

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
)

func untar(t *testing.T, data []byte) map[string]string {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	out := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = string(b)
	}
}

func mktar(files map[string]string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, data := range files {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write([]byte(data))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func withRaw(body []byte) func(*http.Request) {
	return func(r *http.Request) { r.Body = io.NopCloser(bytes.NewReader(body)) }
}

// TestBackupChangeRestore: a backup holds the file and the operator states
// (no private key unless asked); after a change, restoring it brings both back;
// an invalid backup changes nothing.
func TestBackupChangeRestore(t *testing.T) {
	f := newFake()
	s, file, orig := newConfigServer(t, f)
	f.SetState("Harmonic_Traffic", "HT1", "drain")

	w := serve(s, "GET", "/api/v1/backup", true)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/gzip" {
		t.Fatalf("backup: %d %s", w.Code, w.Body)
	}
	archive := w.Body.Bytes()
	files := untar(t, archive)
	var states []AdminState
	json.Unmarshal([]byte(files[backupStates]), &states)
	if files[backupConfig] != string(orig) || !strings.Contains(files[backupCert], "BEGIN CERTIFICATE") || files[backupKey] != "" ||
		!strings.Contains(files["MANIFEST.txt"], "Not included: private keys") || len(states) != 4 || states[2] != (AdminState{"Harmonic_Traffic", "HT1", "drain"}) {
		t.Fatalf("backup holds %d files, states %v:\n%s", len(files), states, files["MANIFEST.txt"])
	}
	if keyed := untar(t, serve(s, "GET", "/api/v1/backup?private_keys=1", true).Body.Bytes()); !strings.Contains(keyed[backupKey], "PRIVATE KEY") {
		t.Fatal("private_keys=1: no private key in the backup")
	}

	// A change: HM2 deleted and applied, HT1 back online.
	serve(s, "DELETE", "/api/v1/config/services/Harmonic_Management/real-servers/HM2", true)
	if w := serve(s, "POST", "/api/v1/config/apply", true); w.Code != 200 {
		t.Fatalf("apply: %d %s", w.Code, w.Body)
	}
	f.SetState("Harmonic_Traffic", "HT1", "online")
	changed, _ := os.ReadFile(file)

	// Invalid backups change nothing.
	broken := strings.Replace(string(orig), `ports: "8080,8443"`, `ports: "8443-8080"`, 1)
	for name, bad := range map[string][]byte{
		"not an archive":     []byte("hello"),
		"invalid config":     mktar(map[string]string{backupConfig: broken}),
		"unknown server":     mktar(map[string]string{backupConfig: string(orig), backupStates: `[{"service":"Harmonic_Traffic","server":"HT9","state":"drain"}]`}),
		"no configuration":   mktar(map[string]string{backupStates: "[]"}),
		"unknown state word": mktar(map[string]string{backupConfig: string(orig), backupStates: `[{"service":"Harmonic_Traffic","server":"HT1","state":"off"}]`}),
	} {
		w := serve(s, "POST", "/api/v1/restore", true, withRaw(bad))
		if w.Code != 400 {
			t.Errorf("%s: %d %s, want 400", name, w.Code, w.Body)
		}
		if now, _ := os.ReadFile(file); string(now) != string(changed) {
			t.Fatalf("%s: the refused restore changed the file", name)
		}
	}
	if w := serve(s, "POST", "/api/v1/restore", true, withRaw(mktar(map[string]string{backupConfig: broken}))); !strings.Contains(w.Body.String(), "virtual_services[0].ports") {
		t.Errorf("invalid config: answer %s does not name the field", w.Body)
	}

	reloads := f.reloads
	w = serve(s, "POST", "/api/v1/restore", true, withRaw(archive))
	if w.Code != 200 {
		t.Fatalf("restore: %d %s", w.Code, w.Body)
	}
	if now, _ := os.ReadFile(file); string(now) != string(orig) || f.reloads != reloads+1 {
		t.Fatalf("after restore: file restored %v, reloads %d", string(now) == string(orig), f.reloads-reloads)
	}
	if rs, _ := f.server("Harmonic_Traffic", "HT1"); rs.Admin != "drain" {
		t.Errorf("HT1 after restore: %s, want drain", rs.Admin)
	}
}

func (f *fakeSource) RestartL7() (string, error) { return "2 layer-7 listeners open again", nil }
func (f *fakeSource) RestartKeepalived() (string, error) {
	return "", fmt.Errorf("restart keepalived: no ha section: %w", ErrNotRunHere)
}

func TestMaintenanceEndpoints(t *testing.T) {
	s := newTestServer(t, newFake(), nil)
	if w := serve(s, "POST", "/api/v1/maintenance/restart-l7", true); w.Code != 200 || !strings.Contains(w.Body.String(), "listeners open again") {
		t.Errorf("restart-l7: %d %s", w.Code, w.Body)
	}
	if w := serve(s, "POST", "/api/v1/maintenance/restart-keepalived", true); w.Code != 409 || !strings.Contains(jsonError(t, w), "no ha section") {
		t.Errorf("restart-keepalived without HA: %d %s", w.Code, w.Body)
	}
	if w := serve(s, "POST", "/api/v1/maintenance/restart-l7", false); w.Code != 401 {
		t.Errorf("without a login: %d", w.Code)
	}
}
