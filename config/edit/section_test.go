package edit

import (
	"strings"
	"testing"
)

func TestSetSection(t *testing.T) {
	base := minimal + "alerts:\n  # where the pages go\n  email:\n    server: \"mx.example.com:587\"   # submission\n    from: lb1@example.com\n    to: [ops@example.com]\n"
	tests := []struct {
		name           string
		text, body     string
		removed, added []string
	}{
		{"a recipient more", base, `{"email": {"server": "mx.example.com:587", "from": "lb1@example.com", "to": ["ops@example.com", "noc@example.com"]}}`,
			[]string{"    to: [ops@example.com]"}, []string{"    to: [ops@example.com, noc@example.com]"}},
		{"syslog added", base, `{"email": {"server": "mx.example.com:587", "from": "lb1@example.com", "to": ["ops@example.com"]}, "syslog": {"address": "192.0.2.50:514"}}`,
			nil, []string{"  syslog:", "    address: 192.0.2.50:514"}},
		{"the section added", minimal, `{"syslog": {"address": "192.0.2.50:514", "protocol": "tcp"}}`,
			nil, []string{"", "alerts:", "  syslog:", "    address: 192.0.2.50:514", "    protocol: tcp"}},
		{"the section removed", base, `null`,
			[]string{"alerts:", "  # where the pages go", "  email:", `    server: "mx.example.com:587"   # submission`, "    from: lb1@example.com", "    to: [ops@example.com]"}, nil},
	}
	for _, tt := range tests {
		out, err := SetSection([]byte(tt.text), "alerts", []byte(tt.body))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		removed, added := changes([]byte(tt.text), out)
		if strings.Join(removed, "\n") != strings.Join(tt.removed, "\n") || strings.Join(added, "\n") != strings.Join(tt.added, "\n") {
			t.Errorf("%s:\nremoved %q\nadded   %q\nwant    %q\n        %q\n%s", tt.name, removed, added, tt.removed, tt.added, out)
		}
		if p := Check("t.yaml", out); p != nil {
			t.Errorf("%s: result not valid: %v\n%s", tt.name, p, out)
		}
	}
	v, err := Section([]byte(base), "alerts")
	if m, _ := v.(map[string]any); err != nil || m["email"].(map[string]any)["from"] != "lb1@example.com" {
		t.Errorf("Section: %v, %v", v, err)
	}
}
