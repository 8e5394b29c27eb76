//go:build !linux

package l7

import "syscall"

// freebind does nothing outside Linux: VIPs must be up before Apply.
func freebind(network, address string, c syscall.RawConn) error { return nil }
