package afxdp

import (
	"testing"

	"github.com/medialb/medialb/config"
)

// TestSteeringMapSize: `medialb check` counts steering keys against
// config.MaxSteeringKeys; it must be what the compiled program's maps hold, or a
// checked file could be refused by the dataplane at run or reload.
func TestSteeringMapSize(t *testing.T) {
	spec, err := loadSteer()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"vips", "fwd_vips"} {
		ms, ok := spec.Maps[m]
		if !ok {
			continue
		}
		if ms.MaxEntries != config.MaxSteeringKeys {
			t.Errorf("map %s holds %d keys, config.MaxSteeringKeys says %d", m, ms.MaxEntries, config.MaxSteeringKeys)
		}
	}
	if _, ok := spec.Maps["vips"]; !ok {
		t.Fatal("the steering program has no vips map")
	}
}
