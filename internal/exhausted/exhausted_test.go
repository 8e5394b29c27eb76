package exhausted

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
)

func TestIs(t *testing.T) {
	wrap := func(e syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("socket", e)}
	}
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{wrap(syscall.EMFILE), true},
		{wrap(syscall.ENFILE), true},
		{fmt.Errorf("connect: %w", wrap(syscall.EADDRNOTAVAIL)), true},
		{wrap(syscall.ENOBUFS), true},
		{wrap(syscall.ECONNREFUSED), false},
		{wrap(syscall.ETIMEDOUT), false},
		{nil, false},
	} {
		if got := Is(tt.err); got != tt.want {
			t.Errorf("Is(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
