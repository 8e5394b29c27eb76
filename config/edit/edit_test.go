package edit

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func example(t testing.TB) []byte {
	t.Helper()
	text, err := os.ReadFile("../../examples/harmonic-vos.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// changes returns the lines removed and added between a and b.
func changes(a, b []byte) (removed, added []string) {
	for _, l := range Diff(a, b) {
		switch l.Op {
		case "-":
			removed = append(removed, l.Text)
		case "+":
			added = append(added, l.Text)
		}
	}
	return removed, added
}

const minimal = `# a load balancer with nothing to balance yet
node:
  interface: eth0   # the VIP NIC
`

func TestChanges(t *testing.T) {
	ex := example(t)
	mgmtInterval10 := `{"name":"Harmonic_Management","address":"192.168.94.100","ports":"8080,8443","layer":7,"protocol":"tcp",
		"persistence":{"mode":"source-ip","timeout":"30m"},
		"health_check":{"type":"https-get","port":8443,"path":"/admin/status","expect":"Healthy","interval":"10s","timeout":"3s","rise":2,"fall":3},
		"real_servers":[{"name":"HM1","address":"192.168.94.105"},{"name":"HM2","address":"192.168.94.106"}]}`
	web := `{"name":"Web","address":"10.0.0.1","ports":"80,443","layer":7,"health_check":{"type":"tcp-connect","interval":"2s"},"real_servers":[{"name":"W1","address":"10.0.0.2"}]}`
	tests := []struct {
		name           string
		text           []byte
		change         func([]byte) ([]byte, error)
		removed, added []string // exactly these lines change
		services       int      // services in the result
	}{
		{
			name: "a health check's interval: one line, its comment kept",
			text: ex,
			change: func(t []byte) ([]byte, error) {
				return ReplaceService(t, "Harmonic_Management", []byte(mgmtInterval10))
			},
			removed:  []string{"      interval: 5s             # time between checks"},
			added:    []string{"      interval: 10s # time between checks"},
			services: 2,
		},
		{
			name: "a real server added beside flow-style ones",
			text: ex,
			change: func(t []byte) ([]byte, error) {
				return AddServer(t, "Harmonic_Traffic", []byte(`{"name":"HT3","address":"192.168.94.117","weight":50}`))
			},
			added:    []string{"      - {name: HT3, address: 192.168.94.117, weight: 50}"},
			services: 2,
		},
		{
			name: "a real server's weight",
			text: ex,
			change: func(t []byte) ([]byte, error) {
				return ReplaceServer(t, "Harmonic_Traffic", "HT2", []byte(`{"name":"HT2","address":"192.168.94.116","weight":0}`))
			},
			removed:  []string{"      - { name: HT2, address: 192.168.94.116, weight: 100 }"},
			added:    []string{"      - {name: HT2, address: 192.168.94.116, weight: 0}"},
			services: 2,
		},
		{
			name:     "a real server deleted",
			text:     ex,
			change:   func(t []byte) ([]byte, error) { return DeleteServer(t, "Harmonic_Management", "HM2") },
			removed:  []string{"      - { name: HM2, address: 192.168.94.106 }"},
			services: 2,
		},
		{
			name:   "a service deleted with the comment above it",
			text:   ex,
			change: func(t []byte) ([]byte, error) { return DeleteService(t, "Harmonic_Traffic") },
			removed: func() []string {
				var out []string
				lines := strings.Split(string(ex), "\n")
				for i, l := range lines {
					if strings.HasPrefix(l, "  # VIP 2") {
						// up to the last real server; the commented-out fallback after it stays
						for _, m := range lines[i:] {
							if strings.HasPrefix(m, "    # fallback") {
								break
							}
							out = append(out, m)
						}
					}
				}
				return out
			}(),
			services: 1,
		},
		{
			name:     "a service added at the end",
			text:     ex,
			change:   func(t []byte) ([]byte, error) { return AddService(t, []byte(web)) },
			added:    []string{"  - name: Web", "    address: 10.0.0.1", "    ports: 80,443", "    layer: 7", "    health_check:", "      type: tcp-connect", "      interval: 2s", "    real_servers:", "      - name: W1", "        address: 10.0.0.2"},
			services: 3,
		},
		{
			name:     "the first service of a file without any",
			text:     []byte(minimal),
			change:   func(t []byte) ([]byte, error) { return AddService(t, []byte(web)) },
			added:    []string{"", "virtual_services:", "  - name: Web", "    address: 10.0.0.1", "    ports: 80,443", "    layer: 7", "    health_check:", "      type: tcp-connect", "      interval: 2s", "    real_servers:", "      - name: W1", "        address: 10.0.0.2"},
			services: 1,
		},
		{
			name: "the first service of an empty list",
			text: []byte(minimal + "virtual_services: []   # none yet\n"),
			change: func(t []byte) ([]byte, error) {
				return AddService(t, []byte(`{"name":"A","address":"10.0.0.1","ports":"80","layer":7,"real_servers":[{"address":"10.0.0.2"}]}`))
			},
			removed:  []string{"virtual_services: []   # none yet"},
			added:    []string{"virtual_services: # none yet", "  - name: A", "    address: 10.0.0.1", `    ports: "80"`, "    layer: 7", "    real_servers:", "      - address: 10.0.0.2"},
			services: 1,
		},
		{
			name:    "the last service deleted: no section left",
			text:    []byte(minimal + "virtual_services:\n  - name: A\n    address: 10.0.0.1\n    ports: \"80\"\n    layer: 7\n    real_servers: [{address: 10.0.0.2}]\n"),
			change:  func(t []byte) ([]byte, error) { return DeleteService(t, "A") },
			removed: []string{"virtual_services:", "  - name: A", "    address: 10.0.0.1", `    ports: "80"`, "    layer: 7", "    real_servers: [{address: 10.0.0.2}]"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.change(tt.text)
			if err != nil {
				t.Fatal(err)
			}
			removed, added := changes(tt.text, out)
			if strings.Join(removed, "\n") != strings.Join(tt.removed, "\n") || strings.Join(added, "\n") != strings.Join(tt.added, "\n") {
				t.Fatalf("changed lines:\nremoved %q\nadded   %q\nwant removed %q\nadded   %q\nresult:\n%s", removed, added, tt.removed, tt.added, out)
			}
			svcs, err := Services(out)
			if err != nil || len(svcs) != tt.services {
				t.Fatalf("Services: %d, %v; want %d", len(svcs), err, tt.services)
			}
			if p := Check("test.yaml", out); p != nil {
				t.Fatalf("the result is not valid: %+v\n%s", p, out)
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	ex := example(t)
	for _, err := range []error{
		func() error { _, err := ReplaceService(ex, "nope", []byte(`{}`)); return err }(),
		func() error { _, err := DeleteService(ex, "nope"); return err }(),
		func() error { _, err := AddServer(ex, "nope", []byte(`{}`)); return err }(),
		func() error { _, err := ReplaceServer(ex, "Harmonic_Traffic", "nope", []byte(`{}`)); return err }(),
		func() error { _, err := DeleteServer(ex, "Harmonic_Traffic", "nope"); return err }(),
	} {
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "nope") {
			t.Errorf("err = %v, want ErrNotFound naming nope", err)
		}
	}
	if _, err := AddService(ex, []byte(`[1]`)); err == nil || !strings.Contains(err.Error(), "JSON object") {
		t.Errorf("a list as a service: %v", err)
	}
}

func TestCheckNamesTheField(t *testing.T) {
	ex := example(t)
	tests := []struct {
		body, path, msg string
	}{
		{`{"name":"Bad","address":"10.9.0.1","ports":"50000-40000","layer":4,"real_servers":[{"name":"B1","address":"10.9.0.2"}]}`,
			"virtual_services[2].ports", "50000-40000"},
		{`{"name":"Bad","address":"10.9.0.1","ports":"80","layer":5,"real_servers":[{"name":"B1","address":"10.9.0.2"}]}`,
			"virtual_services[2].layer", "not a layer"},
		{`{"name":"Bad","address":"10.9.0.1","ports":"80","layer":7,"real_servers":[{"name":"B1","address":"not-an-ip"}]}`,
			"virtual_services[2].real_servers[0].address", "not-an-ip"},
		{`{"address":"10.9.0.1","ports":"80","layer":7,"real_servers":[{"address":"10.9.0.2"}]}`,
			"virtual_services[2]", "name is required"},
	}
	for _, tt := range tests {
		out, err := AddService(ex, []byte(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		ps := Check("test.yaml", out)
		found := false
		for _, p := range ps {
			if p.Path == tt.path && strings.Contains(p.Message, tt.msg) && p.Line > 85 {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: problems %+v, want one at %s (line of the new service) saying %q", tt.body, ps, tt.path, tt.msg)
		}
	}
}

func TestDiff(t *testing.T) {
	got := Diff([]byte("a\nb\nc\n"), []byte("a\nc\nd\n"))
	want := []Line{{" ", "a"}, {"-", "b"}, {" ", "c"}, {"+", "d"}}
	if len(got) != len(want) {
		t.Fatalf("Diff = %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("Diff = %v, want %v", got, want)
		}
	}
	if Changed(Diff([]byte("x\n"), []byte("x\n"))) {
		t.Error("equal texts reported as changed")
	}
}

// FuzzAddService: whatever the file and the body, a change (AddService,
// SetSection) fails with an error or yields a text that parses, and never panics.
func FuzzAddService(f *testing.F) {
	f.Add([]byte(minimal), []byte(`{"name":"A","address":"10.0.0.1","ports":"80","layer":7,"real_servers":[{"address":"10.0.0.2"}]}`))
	f.Add(example(f), []byte(`{"name":"B","ports":[80,"90-99"]}`))
	f.Add([]byte("virtual_services: [{name: A}]\n"), []byte(`{"name":"C"}`))
	f.Fuzz(func(t *testing.T, text, body []byte) {
		out, err := AddService(text, body)
		if err != nil {
			return
		}
		if _, err := Services(out); err != nil {
			t.Fatalf("the result does not parse: %v\n%s", err, out)
		}
		DeleteService(out, "A")
		if out, err := SetSection(text, "alerts", body); err == nil {
			if _, err := Section(out, "alerts"); err != nil {
				t.Fatalf("SetSection's result does not parse: %v\n%s", err, out)
			}
		}
	})
}

// TestFlowStyleSection: a virtual_services written as one flow list is written
// anew in block style when a service in it changes or goes.
func TestFlowStyleSection(t *testing.T) {
	text := []byte(minimal + `virtual_services: [{name: A, address: 10.0.0.1, ports: "80", layer: 7, real_servers: [{address: 10.0.0.2}]}, {name: B, address: 10.0.0.3, ports: "81", layer: 7, real_servers: [{address: 10.0.0.4}]}]` + "\n")
	out, err := ReplaceService(text, "B", []byte(`{"name": "B", "address": "10.0.0.3", "ports": "82", "layer": 7, "real_servers": [{"address": "10.0.0.4"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if p := Check("t.yaml", out); p != nil || !strings.HasPrefix(string(out), minimal+"virtual_services:\n  - {name: A") || !strings.Contains(string(out), `ports: "82"`) {
		t.Fatalf("replaced in a flow list: %v\n%s", p, out)
	}
	out, err = DeleteService(text, "A")
	if err != nil {
		t.Fatal(err)
	}
	if svcs, _ := Services(out); len(svcs) != 1 || Check("t.yaml", out) != nil {
		t.Fatalf("deleted from a flow list:\n%s", out)
	}
}
