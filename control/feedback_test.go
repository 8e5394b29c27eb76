package control

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/feedback"
	"github.com/medialb/medialb/tables"
)

const feedbackConfig = `
node: { name: lb1, interface: eth0, state_dir: %s }
virtual_services:
  - name: Web
    address: 192.168.94.100
    ports: "8080"
    layer: 7
    feedback: { protocol: agent, step: 10 }
    slow_start: 10s
    real_servers:
      - { name: A, address: 192.168.94.105, weight: 200 }
      - { name: B, address: 192.168.94.106 }
`

func newFeedbackTest(t *testing.T, slowStart string) (*Controller, *tables.Holder, *bytes.Buffer, *time.Time) {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(strings.NewReplacer("%s", t.TempDir(), "10s", slowStart).Replace(feedbackConfig)))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	h := &tables.Holder{}
	c, err := New(cfg, h, nil, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	return c, h, &logs, &now
}

func answer(t *testing.T, text string) feedback.Result {
	t.Helper()
	a, err := feedback.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	return feedback.Result{Answer: a, At: time.Unix(1000, 0)}
}

func server(h *tables.Holder, name string) *tables.Server {
	for _, s := range h.Load().Service("Web").Servers {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func TestFeedbackWeights(t *testing.T) {
	c, h, logs, _ := newFeedbackTest(t, "0s")
	steps := []struct {
		answer string // "" : a poll without an answer
		weight uint32
		state  tables.State
	}{
		{"50%", 100, tables.StateOnline},    // 200 * 50%
		{"55%", 100, tables.StateOnline},    // moved by less than the step: not republished
		{"60%", 120, tables.StateOnline},    // by the step: republished
		{"", 120, tables.StateOnline},       // no answer: as it was
		{"drain", 120, tables.StateDrain},   // drained, shown as the agent's
		{"maint", 120, tables.StateHalt},    // halted
		{"ready 1%", 2, tables.StateOnline}, // back; weight floor is 1% of 200
		{"0%", 0, tables.StateOnline},       // to zero always republished
		{"3%", 6, tables.StateOnline},       // from zero too
	}
	for i, st := range steps {
		r := feedback.Result{Err: errors.New("connect: connection refused"), At: time.Unix(1000, 0)}
		if st.answer != "" {
			r = answer(t, st.answer)
		}
		c.SetFeedback("Web", "A", r)
		if s := server(h, "A"); s.Weight != st.weight || s.State != st.state {
			t.Fatalf("step %d (%q): A weight %d state %v, want %d %v", i, st.answer, s.Weight, s.State, st.weight, st.state)
		}
		if s := server(h, "B"); s.Weight != 100 {
			t.Fatalf("step %d: B weight %d changed", i, s.Weight)
		}
	}
	fb := c.FeedbackStates()[Key{Service: "Web", Server: "A"}]
	if fb.Answer != "3%" || fb.Percent != 3 || fb.Error != "" {
		t.Errorf("feedback state %+v", fb)
	}
	if !strings.Contains(logs.String(), "drained by the feedback agent") || !strings.Contains(logs.String(), "set to maint by the feedback agent") {
		t.Errorf("logs do not say the agent drained and halted A:\n%s", logs)
	}
	if c.Admin("Web", "A") != tables.StateOnline {
		t.Error("the agent's drain became an operator state")
	}
}

func TestFeedbackAgentVersusOperator(t *testing.T) {
	c, h, _, _ := newFeedbackTest(t, "0s")
	c.SetFeedback("Web", "A", answer(t, "drain"))
	if err := c.SetAdmin("Web", "A", tables.StateHalt); err != nil {
		t.Fatal(err)
	}
	if s := server(h, "A"); s.State != tables.StateHalt {
		t.Fatalf("operator halt under agent drain: %v", s.State)
	}
	c.SetAdmin("Web", "A", tables.StateOnline)
	if s := server(h, "A"); s.State != tables.StateDrain {
		t.Fatalf("operator online does not override the agent's drain: %v", s.State)
	}
	c.SetHealth("Web", "A", false, "refused")
	if s := server(h, "A"); s.State != tables.StateDown {
		t.Fatalf("health down under agent drain: %v", s.State)
	}
}

func TestSlowStart(t *testing.T) {
	c, h, _, now := newFeedbackTest(t, "10s")
	c.SetHealth("Web", "B", true, "ok")
	if s := server(h, "B"); s.Weight != 100 {
		t.Fatalf("first verdict ramps B: weight %d", s.Weight)
	}
	c.SetHealth("Web", "B", false, "refused")
	*now = now.Add(time.Minute)
	c.SetHealth("Web", "B", true, "ok")
	want := []uint32{10, 10, 10, 40, 90, 100}
	at := []time.Duration{0, 500 * time.Millisecond, time.Second, 4 * time.Second, 9 * time.Second, 10 * time.Second}
	start := *now
	for i, w := range want {
		*now = start.Add(at[i])
		c.Tick()
		if s := server(h, "B"); s.Weight != w {
			t.Fatalf("%v after coming back: B weight %d, want %d", at[i], s.Weight, w)
		}
	}
	if c.Ramping("Web", "B") != 0 {
		t.Error("ramp not over after slow_start")
	}
	// An operator's drain and online ramps too.
	c.SetAdmin("Web", "B", tables.StateDrain)
	c.SetAdmin("Web", "B", tables.StateOnline)
	if s := server(h, "B"); s.Weight != 10 {
		t.Fatalf("back from drain: B weight %d, want 10", s.Weight)
	}
}

// A reload without the feedback section ends what the agent asked for.
func TestFeedbackRemovedByReload(t *testing.T) {
	c, h, _, _ := newFeedbackTest(t, "0s")
	c.SetFeedback("Web", "A", answer(t, "drain 50%"))
	if s := server(h, "A"); s.State != tables.StateDrain || s.Weight != 100 {
		t.Fatalf("A %v weight %d, want drain at 100", s.State, s.Weight)
	}
	cfg, err := config.Parse("t.yaml", []byte(strings.NewReplacer("%s", t.TempDir(), "10s", "0s", "    feedback: { protocol: agent, step: 10 }\n", "").Replace(feedbackConfig)))
	if err != nil || cfg.Service("Web").Feedback != nil {
		t.Fatalf("config without feedback: %v", err)
	}
	if err := c.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if s := server(h, "A"); s.State != tables.StateOnline || s.Weight != 200 {
		t.Errorf("after the reload A %v weight %d, want online at its configured 200", s.State, s.Weight)
	}
}
