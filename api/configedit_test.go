package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/config/edit"
)

// newConfigServer builds a server whose config endpoints work on a copy of the
// guide's example file.
func newConfigServer(t *testing.T, src Source) (*Server, string, []byte) {
	t.Helper()
	text, err := os.ReadFile("../examples/harmonic-vos.yaml")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "medialb.yaml")
	if err := os.WriteFile(file, text, 0o640); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Listen: "127.0.0.1:0", StateDir: t.TempDir(), Users: testUsers(t), ConfigFile: file}, src, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return s, file, text
}

func withBody(body string) func(*http.Request) {
	return func(r *http.Request) {
		r.Body = io.NopCloser(strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	}
}

func decodeState(t *testing.T, w *httptest.ResponseRecorder) ConfigState {
	t.Helper()
	var st ConfigState
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
		t.Fatalf("answer %q: %v", w.Body.String(), err)
	}
	return st
}

const webService = `{"name":"Web","address":"192.168.94.120","ports":"80,443","layer":7,"protocol":"tcp",
	"health_check":{"type":"tcp-connect","interval":"2s"},"real_servers":[{"name":"W1","address":"192.168.94.121"}]}`

func TestConfigStageAndApply(t *testing.T) {
	f := newFake()
	s, file, orig := newConfigServer(t, f)

	w := serve(s, "GET", "/api/v1/config/services", true)
	if st := decodeState(t, w); w.Code != 200 || st.Staged || len(st.Services) != 2 || st.File != file {
		t.Fatalf("GET: %d %s", w.Code, w.Body)
	}
	w = serve(s, "POST", "/api/v1/config/services", true, withBody(webService))
	if st := decodeState(t, w); w.Code != 201 || !st.Staged || len(st.Services) != 3 || !edit.Changed(st.Diff) {
		t.Fatalf("POST: %d %s", w.Code, w.Body)
	}
	// An invalid change answers every problem with its field and stages nothing.
	bad := strings.Replace(webService, `"Web"`, `"Web2"`, 1)
	bad = strings.Replace(bad, `"80,443"`, `"90-80"`, 1)
	w = serve(s, "POST", "/api/v1/config/services", true, withBody(bad))
	var pa ProblemsAnswer
	json.Unmarshal(w.Body.Bytes(), &pa)
	if w.Code != 400 || len(pa.Errors) == 0 || pa.Errors[0].Path != "virtual_services[3].ports" || pa.Errors[0].Line == 0 {
		t.Fatalf("invalid POST: %d %s, want 400 at virtual_services[3].ports", w.Code, w.Body)
	}
	if st := decodeState(t, serve(s, "GET", "/api/v1/config/services", true)); len(st.Services) != 3 {
		t.Fatalf("the invalid change was staged: %d services", len(st.Services))
	}
	// A health check's interval and a real server less.
	svcs := decodeState(t, serve(s, "GET", "/api/v1/config/services", true)).Services
	mgmt := svcs[0].(map[string]any)
	mgmt["health_check"].(map[string]any)["interval"] = "7s"
	body, _ := json.Marshal(mgmt)
	if w = serve(s, "PUT", "/api/v1/config/services/Harmonic_Management", true, withBody(string(body))); w.Code != 200 {
		t.Fatalf("PUT: %d %s", w.Code, w.Body)
	}
	if w = serve(s, "DELETE", "/api/v1/config/services/Harmonic_Traffic/real-servers/HT2", true); w.Code != 200 {
		t.Fatalf("DELETE server: %d %s", w.Code, w.Body)
	}
	if now, _ := os.ReadFile(file); string(now) != string(orig) {
		t.Fatal("a staged change was written before apply")
	}

	w = serve(s, "POST", "/api/v1/config/apply", true)
	var res ApplyResult
	json.Unmarshal(w.Body.Bytes(), &res)
	if w.Code != 200 || res.Backup != file+".1" || f.reloads != 1 {
		t.Fatalf("apply: %d %s (reloads %d)", w.Code, w.Body, f.reloads)
	}
	if b, _ := os.ReadFile(res.Backup); string(b) != string(orig) {
		t.Error("the backup is not the old file")
	}
	now, _ := os.ReadFile(file)
	var removed, added []string
	for _, l := range edit.Diff(orig, now) {
		switch l.Op {
		case "-":
			removed = append(removed, l.Text)
		case "+":
			added = append(added, l.Text)
		}
	}
	wantRemoved := []string{"      interval: 5s             # time between checks", "      - { name: HT2, address: 192.168.94.116, weight: 100 }"}
	if strings.Join(removed, "\n") != strings.Join(wantRemoved, "\n") || len(added) != 1+11 || added[0] != "      interval: 7s # time between checks" {
		t.Fatalf("applied file changed more than the changes:\nremoved %q\nadded %q", removed, added)
	}
	if st := decodeState(t, serve(s, "GET", "/api/v1/config/services", true)); st.Staged || len(st.Services) != 3 {
		t.Fatalf("after apply: staged %v, %d services", st.Staged, len(st.Services))
	}
	if w = serve(s, "POST", "/api/v1/config/apply", true); w.Code != 400 {
		t.Errorf("apply with nothing staged: %d, want 400", w.Code)
	}
}

func TestConfigErrors(t *testing.T) {
	f := newFake()
	s, file, orig := newConfigServer(t, f)
	for _, tt := range []struct{ method, path, body string }{
		{"PUT", "/api/v1/config/services/Nope", webService},
		{"DELETE", "/api/v1/config/services/Nope", ""},
		{"POST", "/api/v1/config/services/Nope/real-servers", `{"address":"1.2.3.4"}`},
		{"DELETE", "/api/v1/config/services/Harmonic_Traffic/real-servers/Nope", ""},
	} {
		if w := serve(s, tt.method, tt.path, true, withBody(tt.body)); w.Code != 404 || !strings.Contains(jsonError(t, w), "Nope") {
			t.Errorf("%s %s: %d %s, want 404 naming Nope", tt.method, tt.path, w.Code, w.Body)
		}
	}
	if w := serve(s, "POST", "/api/v1/config/services", true, withBody(`not json`)); w.Code != 400 {
		t.Errorf("not JSON: %d", w.Code)
	}

	// The file changed on disk after the first staged change: refused, untouched.
	serve(s, "POST", "/api/v1/config/services", true, withBody(webService))
	edited := append(append([]byte{}, orig...), "# edited by hand\n"...)
	os.WriteFile(file, edited, 0o640)
	if w := serve(s, "POST", "/api/v1/config/apply", true); w.Code != http.StatusConflict {
		t.Fatalf("apply over a changed file: %d %s", w.Code, w.Body)
	}
	if now, _ := os.ReadFile(file); string(now) != string(edited) || f.reloads != 0 {
		t.Fatal("a refused apply changed the file or reloaded")
	}
	// A reload that fails puts the old text back and keeps the changes staged.
	serve(s, "DELETE", "/api/v1/config/staged", true)
	serve(s, "POST", "/api/v1/config/services", true, withBody(webService))
	f.reloadErr = errors.New("the first layer-4 service needs a restart")
	if w := serve(s, "POST", "/api/v1/config/apply", true); w.Code != 500 || !strings.Contains(w.Body.String(), "restart") {
		t.Fatalf("apply with a failing reload: %d %s", w.Code, w.Body)
	}
	if now, _ := os.ReadFile(file); string(now) != string(edited) {
		t.Fatal("a failed apply left the new text in the file")
	}
	if st := decodeState(t, serve(s, "GET", "/api/v1/config/services", true)); !st.Staged {
		t.Fatal("a failed apply dropped the staged changes")
	}
}

func TestBackupsAreNumberedAndBounded(t *testing.T) {
	file := filepath.Join(t.TempDir(), "m.yaml")
	for i := 1; i <= MaxBackups+3; i++ {
		name, err := writeBackup(file, []byte(strconv.Itoa(i)))
		if err != nil || name != file+"."+strconv.Itoa(i) {
			t.Fatalf("backup %d: %s, %v", i, name, err)
		}
	}
	nums, _ := backups(file)
	if len(nums) != MaxBackups || nums[0] != 4 || nums[len(nums)-1] != MaxBackups+3 {
		t.Fatalf("backups kept: %v", nums)
	}
}

func TestConfigAlerts(t *testing.T) {
	s, file, orig := newConfigServer(t, newFake())
	var st AlertsState
	json.Unmarshal(serve(s, "GET", "/api/v1/config/alerts", true).Body.Bytes(), &st)
	if st.Alerts != nil || st.Staged {
		t.Fatalf("alerts of the example: %+v", st)
	}
	w := serve(s, "PUT", "/api/v1/config/alerts", true, withBody(`{"email": {"server": "mx", "from": "lb1@example.com", "to": ["ops@example.com"]}}`))
	var pa ProblemsAnswer
	json.Unmarshal(w.Body.Bytes(), &pa)
	if w.Code != 400 || len(pa.Errors) != 1 || pa.Errors[0].Path != "alerts.email.server" {
		t.Fatalf("a server without a port: %d %s", w.Code, w.Body)
	}
	w = serve(s, "PUT", "/api/v1/config/alerts", true, withBody(`{"syslog": {"address": "192.0.2.50:514", "protocol": "tcp"}}`))
	if w.Code != 200 {
		t.Fatalf("syslog: %d %s", w.Code, w.Body)
	}
	json.Unmarshal(serve(s, "GET", "/api/v1/config/alerts", true).Body.Bytes(), &st)
	if m, _ := st.Alerts.(map[string]any); !st.Staged || m["syslog"].(map[string]any)["protocol"] != "tcp" {
		t.Fatalf("staged alerts: %+v", st)
	}
	serve(s, "POST", "/api/v1/config/apply", true)
	if now, _ := os.ReadFile(file); !strings.HasPrefix(string(now), string(orig)) || !strings.HasSuffix(string(now), "alerts:\n  syslog:\n    address: 192.0.2.50:514\n    protocol: tcp\n") {
		t.Fatalf("applied file ends:\n%s", now[len(now)-120:])
	}

	// The password is never shown; sent back as shown, it stays.
	email := `{"server": "mx:587", "username": "lb", "password": %q, "from": "lb1@example.com", "to": ["ops@example.com"]}`
	if w := serve(s, "PUT", "/api/v1/config/alerts", true, withBody(`{"email": `+fmt.Sprintf(email, PasswordKept)+`}`)); w.Code != 400 || !strings.Contains(w.Body.String(), "no password to keep") {
		t.Errorf("keeping a password there is not: %d %s", w.Code, w.Body)
	}
	serve(s, "PUT", "/api/v1/config/alerts", true, withBody(`{"email": `+fmt.Sprintf(email, "s3cret")+`}`))
	got := serve(s, "GET", "/api/v1/config/alerts", true).Body.String()
	if strings.Contains(got, "s3cret") || !strings.Contains(got, PasswordKept) {
		t.Errorf("GET shows the password: %s", got)
	}
	serve(s, "PUT", "/api/v1/config/alerts", true, withBody(`{"email": `+fmt.Sprintf(strings.Replace(email, "mx:587", "mx2:587", 1), PasswordKept)+`}`))
	serve(s, "POST", "/api/v1/config/apply", true)
	if now, _ := os.ReadFile(file); !strings.Contains(string(now), "password: s3cret") || !strings.Contains(string(now), "server: mx2:587") {
		t.Errorf("the kept password is not in the file:\n%s", now[len(orig):])
	}
}

func TestMaskSecrets(t *testing.T) {
	in := "ha:\n  secret: \"k3J9abcdefabcdefgh\"   # shared\nalerts:\n  email:\n    password: s3cret\n    from: a@b.c\napi:\n  users:\n    - name: x\n      password_hash: \"$2a$10$abc\"\nbgp:\n  peers:\n    - password: pw\n"
	want := "ha:\n  secret: \"(hidden)\"   # shared\nalerts:\n  email:\n    password: \"(hidden)\"\n    from: a@b.c\napi:\n  users:\n    - name: x\n      password_hash: \"$2a$10$abc\"\nbgp:\n  peers:\n    - password: \"(hidden)\"\n"
	if got := string(maskSecrets([]byte(in))); got != want {
		t.Errorf("masked:\n%s\nwant:\n%s", got, want)
	}
}

func TestConfigRefusedOnHASecondary(t *testing.T) {
	f := newFake()
	f.ov.HA = &HA{Role: "backup", Peer: "192.168.94.2", ConfigSync: "secondary"}
	s, _, _ := newConfigServer(t, f)
	if w := serve(s, "POST", "/api/v1/config/services", true, withBody(webService)); w.Code != 409 || !strings.Contains(jsonError(t, w), "192.168.94.2") {
		t.Errorf("a service added on the secondary: %d %s", w.Code, w.Body)
	}
	if w := serve(s, "PUT", "/api/v1/config/alerts", true, withBody(`{"syslog": {"address": "192.0.2.50:514"}}`)); w.Code != 200 {
		t.Errorf("alerts are the node's own: %d %s", w.Code, w.Body)
	}
}
