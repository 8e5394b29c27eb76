package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medialb/medialb/tables"
)

// FuzzLoad feeds arbitrary text to the loader: it must never panic, and it
// must return either a valid Config or a sorted, non-empty Errors whose every
// line names the file.
func FuzzLoad(f *testing.F) {
	for _, pat := range []string{"testdata/*.yaml", "../examples/*.yaml"} {
		files, _ := filepath.Glob(pat)
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	for _, s := range []string{head + l7 + l4, svc("    real_servers: [{address: 192.0.2.21}]\n"), "", "~", "[", "a: &a [*a]", "x: !!binary AAAA"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err == nil {
			if cfg == nil || len(cfg.Services) == 0 || cfg.Node.Interface == "" || cfg.Node.HashSeed == 0 {
				t.Fatalf("valid config breaks invariants: %+v", cfg)
			}
			for _, s := range cfg.Services {
				if len(s.Ports) == 0 || (s.Layer != Layer4 && s.Layer != Layer7) || s.Protocol == 0 || !tables.IsPrime(uint64(s.MaglevSize)) ||
					s.HealthCheck.Type == "" || (len(s.RealServers) == 0 && s.Fallback == nil) {
					t.Fatalf("valid service breaks invariants: %+v", s)
				}
				for _, rs := range s.RealServers {
					if !rs.Address.IsValid() || rs.Name == "" || (s.Layer == Layer4 && rs.Port != 0) {
						t.Fatalf("valid real server breaks invariants: %+v", rs)
					}
				}
			}
			if !strings.HasPrefix(cfg.Summary(), "fuzz.yaml: ok: ") {
				t.Fatalf("summary %q", cfg.Summary())
			}
			return
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 || cfg != nil {
			t.Fatalf("want non-empty Errors and no config, got %T %v, %v", err, err, cfg)
		}
		for i, e := range errs {
			if e.File != "fuzz.yaml" || e.Msg == "" || e.Line < 0 || (i > 0 && e.Line < errs[i-1].Line) {
				t.Fatalf("bad error %d: %+v in\n%v", i, e, err)
			}
		}
		if len(errs) > maxErrors+1 {
			t.Fatalf("%d errors, more than the limit", len(errs))
		}
	})
}
