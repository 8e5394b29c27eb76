package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medialb/medialb/lab"
)

// sendRaw writes frames as they are to ifname in namespace ns, through an AF_PACKET
// socket (the standard library's syscall package: no unsafe needed).
func sendRaw(ns, ifname string, frames [][]byte) error {
	return lab.Do(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, 0)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		defer syscall.Close(fd)
		sa := &syscall.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
		for i, f := range frames {
			copy(sa.Addr[:], f[:min(6, len(f))])
			if err := syscall.Sendto(fd, f, 0, sa); err != nil {
				return fmt.Errorf("send frame %d (%d bytes): %w", i, len(f), err)
			}
			if i%200 == 199 {
				time.Sleep(time.Millisecond) // do not overrun the veth's queue
			}
		}
		return nil
	})
}

// metric reads an unlabelled metric from the API's /metrics.
func metric(t *testing.T, e *env, name string) float64 { return metricLabel(t, e, name, "") }

// metricLabel reads the first sample of name whose labels contain label.
func metricLabel(t *testing.T, e *env, name, label string) float64 {
	t.Helper()
	code, body, err := e.proc.API(context.Background(), "GET", "9443", "/metrics", "loadbalancer", "loadbalancer")
	if err != nil || code != 200 {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, name) || (label != "" && !strings.Contains(l, label)) {
			continue
		}
		rest := strings.TrimPrefix(l, name)
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			return v
		}
	}
	return 0
}
