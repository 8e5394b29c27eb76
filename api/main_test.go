package api

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves goroutines behind (servers,
// DevTools connections).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
