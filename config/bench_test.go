package config

import (
	"os"
	"testing"
)

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile("../examples/harmonic-vos.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("harmonic-vos.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}
