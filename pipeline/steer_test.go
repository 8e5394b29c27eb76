package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/medialb/medialb/afxdp"
	"github.com/medialb/medialb/tables"
)

// steerVIPs are the steering keys of spec's layer-4 services, as the daemon sets them.
func steerVIPs(spec tables.Spec) []afxdp.VIP {
	var out []afxdp.VIP
	for _, s := range spec.Services {
		if s.Layer != 4 {
			continue
		}
		var ports []afxdp.PortRange
		for _, r := range s.Ports {
			ports = append(ports, afxdp.PortRange{Lo: r.Lo, Hi: r.Hi})
		}
		if s.TCP {
			out = append(out, afxdp.VIP{Addr: s.VIP, Proto: tables.ProtoTCP, Ports: ports, Service: s.Name})
		}
		if s.UDP {
			out = append(out, afxdp.VIP{Addr: s.VIP, Proto: tables.ProtoUDP, Ports: ports, Service: s.Name})
		}
	}
	return out
}

// steerAgree checks that the XDP steering program and the pipeline agree on whether
// frame is the load balancer's (the program redirects it to the socket, the pipeline
// forwards it or drops it for lack of a server or as a malformed ICMP error) or the
// kernel's (the program passes it, the pipeline would say not_for_us or *no_service).
// Frames the pipeline finds malformed may go either way: the kernel drops them too.
func steerAgree(t *testing.T, c *afxdp.Classifier, snap *tables.Snapshot, frame []byte) {
	t.Helper()
	if len(frame) < ethHeaderLen || len(frame) > 1500 {
		return
	}
	frame = append([]byte{}, frame...)
	copy(frame[0:6], localMAC[:]) // the program steers by address; the pipeline also checks the MAC
	toSocket, err := c.ToSocket(frame)
	if err != nil {
		t.Fatal(err)
	}
	r := Process(snap, localMAC, 1, frame)
	var ours bool
	switch r {
	case Forwarded, NoServer, MACUnresolved, MalformedICMP:
		ours = true
	case NotForUs, NoService, ICMPNoService, FragmentNoService:
	default:
		if !r.Malformed() {
			t.Fatalf("pipeline reason %v not classified", r)
		}
		return
	}
	if toSocket != ours {
		t.Errorf("program sends to socket: %v; pipeline says %v\nframe %x", toSocket, r, frame)
	}
}

// steerCorpus is every test frame we have: the named corpus, testdata/frames, the
// ICMP errors, and the fuzz corpora of FuzzParse and FuzzSteerAgrees when present.
func steerCorpus(t testing.TB) [][]byte {
	var out [][]byte
	for _, c := range corpus() {
		out = append(out, c.frame)
	}
	files, err := readTestdata(filepath.Join("testdata", "frames"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range files {
		out = append(out, c.frame)
	}
	out = append(out, icmpSeeds()...)
	tcp4 := reply(protoTCP, vip4, client4, 1935)
	out = append(out,
		icmpError(3, 4, reply(protoTCP, vip4, client4, 22), 0),      // port outside the service
		icmpError(3, 4, reply(protoTCP, vipMgmt, client4, 8080), 0), // layer 7
		icmpError(3, 4, reply(protoTCP, vipMgmt, client4, 8080), 24),
		icmpError(3, 4, tcp4, 24),
		buildFrame(frameSpec{proto: protoTCP, dport: 0}),
		buildFrame(frameSpec{dport: 0}),
		buildFrame(frameSpec{vlans: []uint16{1, 2}, dport: 1935}),
		buildFrame(frameSpec{vlans: []uint16{1, 2, 3}, dport: 1935}),
		buildFrame(frameSpec{dst: vipMgmt, proto: protoTCP, frag: FragLater}),
		buildFrame(frameSpec{dst: vipMgmt, frag: FragLater}),
		buildFrame(frameSpec{src: client6, dport: 1935, ext: []v6ext{{protoDestOpts, 8}, {protoDestOpts, 8},
			{protoDestOpts, 8}, {protoDestOpts, 8}, {protoDestOpts, 8}, {protoDestOpts, 8}, {protoDestOpts, 8}}}),
	)
	for _, dir := range []string{"testdata/fuzz/FuzzParse", "testdata/fuzz/FuzzSteerAgrees"} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if b, err := readFuzzFile(filepath.Join(dir, e.Name())); err == nil {
				out = append(out, b)
			}
		}
	}
	return out
}

func newClassifier(t testing.TB) (*afxdp.Classifier, *tables.Snapshot) {
	if os.Geteuid() != 0 {
		t.Skip("running the XDP program (BPF_PROG_TEST_RUN) needs root")
	}
	c, err := afxdp.NewClassifier(steerVIPs(testSpec()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, testSnapshot(t)
}

// TestSteerAgrees: the XDP program and the pipeline agree on "ours or the kernel's"
// for every frame of the corpus.
func TestSteerAgrees(t *testing.T) {
	c, snap := newClassifier(t)
	frames := steerCorpus(t)
	for _, f := range frames {
		steerAgree(t, c, snap, f)
	}
	t.Logf("%d frames compared", len(frames))
}

// FuzzSteerAgrees is TestSteerAgrees on fuzzed frames.
func FuzzSteerAgrees(f *testing.F) {
	c, snap := newClassifier(f)
	for _, fr := range steerCorpus(f) {
		f.Add(fr)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		steerAgree(t, c, snap, frame)
	})
}

// readFuzzFile reads a one-[]byte entry of a Go fuzz corpus ("go test fuzz v1").
func readFuzzFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := strings.TrimSpace(string(b))
	_, v, ok := strings.Cut(s, "\n[]byte(")
	if !ok || !strings.HasSuffix(v, ")") {
		return nil, fmt.Errorf("%s: not a []byte fuzz entry", path)
	}
	q, err := strconv.Unquote(strings.TrimSuffix(v, ")"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return []byte(q), nil
}
