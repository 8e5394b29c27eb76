package pipeline

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/frames from the corpus in frames_test.go")

// compareWithSlow parses frame with Parse and with the reference decoder and reports any
// difference. It returns Parse's answer.
func compareWithSlow(t *testing.T, frame []byte) (Reason, Packet) {
	t.Helper()
	var p Packet
	got := Parse(frame, &p)
	want := slowParse(frame)
	if got != want.Reason {
		t.Fatalf("Parse = %v, reference = %v\nframe: %x", got, want.Reason, frame)
	}
	if got != OK {
		return got, p
	}
	gotRes := slowResult{Reason: got, Src: p.Src, Dst: p.Dst, Proto: p.Proto, Frag: p.Frag,
		SrcPort: p.SrcPort, DstPort: p.DstPort, VLANs: int(p.VLANs)}
	if gotRes != want {
		t.Fatalf("Parse = %+v\nreference = %+v\nframe: %x", gotRes, want, frame)
	}
	// The offsets must point at what they claim to.
	if p.L3Off != ethHeaderLen+4*int(p.VLANs) {
		t.Fatalf("L3Off = %d with %d VLAN tags", p.L3Off, p.VLANs)
	}
	if p.Frag == FragLater {
		if p.L4Off != 0 || p.SrcPort != 0 || p.DstPort != 0 {
			t.Fatalf("non-first fragment with L4Off %d, ports %d->%d", p.L4Off, p.SrcPort, p.DstPort)
		}
	} else if p.L4Off+4 > len(frame) || uint16(frame[p.L4Off+2])<<8|uint16(frame[p.L4Off+3]) != p.DstPort {
		t.Fatalf("L4Off %d does not point at destination port %d", p.L4Off, p.DstPort)
	}
	return got, p
}

func TestParseCorpus(t *testing.T) {
	for _, c := range corpus() {
		t.Run(c.name, func(t *testing.T) {
			got, _ := compareWithSlow(t, c.frame)
			if got != c.want {
				t.Errorf("Parse = %v, want %v", got, c.want)
			}
		})
	}
}

func TestParseFields(t *testing.T) {
	tests := []struct {
		name             string
		spec             frameSpec
		src, dst         netip.Addr
		proto            uint8
		sport, dport     uint16
		frag             Frag
		vlans            uint8
		l3Off, l4Off     int
		l4End            int
		truncateL4Header bool
	}{
		{name: "udp4", spec: frameSpec{sport: 1111, dport: 1935},
			src: client4, dst: vip4, proto: protoUDP, sport: 1111, dport: 1935, l3Off: 14, l4Off: 34, l4End: 42},
		{name: "tcp4 options vlan", spec: frameSpec{proto: protoTCP, ipOptions: 8, vlans: []uint16{5}, sport: 2, dport: 554},
			src: client4, dst: vip4, proto: protoTCP, sport: 2, dport: 554, vlans: 1, l3Off: 18, l4Off: 46, l4End: 66},
		{name: "udp6 ext", spec: frameSpec{src: client6, dport: 65535, ext: []v6ext{{protoHopByHop, 16}, {protoAH, 12}}},
			src: client6, dst: vip6, proto: protoUDP, sport: 40000, dport: 65535, l3Off: 14, l4Off: 14 + 40 + 16 + 12, l4End: 90},
		{name: "tcp6 first fragment", spec: frameSpec{src: client6, proto: protoTCP, dport: 50001, frag: FragFirst},
			src: client6, dst: vip6, proto: protoTCP, sport: 40000, dport: 50001, frag: FragFirst, l3Off: 14, l4Off: 14 + 48, l4End: 82},
		{name: "udp4 later fragment qinq", spec: frameSpec{vlans: []uint16{1, 2}, frag: FragLater, payload: 100},
			src: client4, dst: vip4, proto: protoUDP, frag: FragLater, vlans: 2, l3Off: 22},
		{name: "tcp6 later fragment", spec: frameSpec{src: client6, proto: protoTCP, frag: FragLater, fragOffset: 1},
			src: client6, dst: vip6, proto: protoTCP, frag: FragLater, l3Off: 14},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := buildFrame(tt.spec)
			r, p := compareWithSlow(t, f)
			if r != OK {
				t.Fatalf("Parse = %v, want ok", r)
			}
			want := Packet{Src: tt.src, Dst: tt.dst, Proto: tt.proto, Frag: tt.frag, VLANs: tt.vlans,
				SrcPort: tt.sport, DstPort: tt.dport, L3Off: tt.l3Off, L4Off: tt.l4Off, L4End: tt.l4End}
			if p != want {
				t.Errorf("Parse:\n got %+v\nwant %+v", p, want)
			}
		})
	}
}

// Every prefix of a valid frame that cuts into its headers is malformed, never OK.
func TestParseTruncations(t *testing.T) {
	for _, c := range corpus() {
		if c.want != OK {
			continue
		}
		var full Packet
		Parse(c.frame, &full)
		hdrEnd := full.L4Off + 8
		if full.Proto == protoTCP {
			hdrEnd = full.L4Off + 20
		}
		if full.Frag == FragLater {
			hdrEnd = full.L3Off + 20
		}
		for n := 0; n < hdrEnd; n++ {
			var p Packet
			r := Parse(c.frame[:n], &p)
			if r == OK || r == NotForUs {
				t.Errorf("%s cut to %d bytes: Parse = %v, want malformed", c.name, n, r)
			}
			if ref := slowParse(c.frame[:n]); ref.Reason != r {
				t.Errorf("%s cut to %d bytes: Parse = %v, reference = %v", c.name, n, r, ref.Reason)
			}
		}
	}
}

// testdata/frames holds the corpus as hex files (`go test -run TestTestdata -update`
// rewrites them); the test checks that they match the corpus and parse as stated.
func TestTestdata(t *testing.T) {
	dir := filepath.Join("testdata", "frames")
	c := corpus()
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range c {
			if err := os.WriteFile(filepath.Join(dir, f.name+".hex"), encodeHexFrame(f), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, err := readTestdata(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(c) {
		t.Errorf("%d files in %s, %d frames in the corpus (run with -update)", len(files), dir, len(c))
	}
	for _, f := range c {
		got, ok := files[f.name]
		if !ok {
			t.Errorf("%s.hex missing (run with -update)", f.name)
			continue
		}
		if !bytes.Equal(got.frame, f.frame) || got.want != f.want {
			t.Errorf("%s.hex differs from the corpus (run with -update)", f.name)
		}
		var p Packet
		if r := Parse(got.frame, &p); r != got.want {
			t.Errorf("%s.hex: Parse = %v, want %v", f.name, r, got.want)
		}
	}
}

func encodeHexFrame(f corpusFrame) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s: %d bytes\n# want: %v\n", f.name, len(f.frame), f.want)
	for i := 0; i < len(f.frame); i += 16 {
		end := min(i+16, len(f.frame))
		fmt.Fprintf(&b, "%s\n", hex.EncodeToString(f.frame[i:end]))
	}
	return b.Bytes()
}

// readTestdata reads every NAME.hex file of dir.
func readTestdata(dir string) (map[string]corpusFrame, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.hex"))
	if err != nil {
		return nil, err
	}
	out := make(map[string]corpusFrame)
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		f := corpusFrame{name: strings.TrimSuffix(filepath.Base(path), ".hex"), want: NumReasons}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if w, ok := strings.CutPrefix(line, "# want: "); ok {
				for r := range NumReasons {
					if r.String() == w {
						f.want = r
					}
				}
				continue
			}
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			b, err := hex.DecodeString(line)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", path, err)
			}
			f.frame = append(f.frame, b...)
		}
		if f.want == NumReasons {
			return nil, fmt.Errorf("read %s: no valid \"# want:\" line", path)
		}
		out[f.name] = f
	}
	return out, nil
}

// FuzzParse compares Parse with the slow reference decoder on arbitrary frames, seeded
// with testdata/frames.
func FuzzParse(f *testing.F) {
	files, err := readTestdata(filepath.Join("testdata", "frames"))
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range files {
		f.Add(c.frame)
	}
	for _, fr := range icmpSeeds() {
		f.Add(fr)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		r, p := compareWithSlow(t, frame)
		if r != NotForUs {
			return
		}
		// ParseICMPError takes over from Parse: it must not panic, and a quoted packet
		// it accepts is from the error's destination.
		outerDst := p.Dst
		switch ParseICMPError(frame, &p) {
		case OK:
			if p.Src != outerDst || (p.Proto != protoTCP && p.Proto != protoUDP) || p.ICMP == ICMPNone {
				t.Fatalf("ParseICMPError accepted %+v for an error to %v", p, outerDst)
			}
		case MalformedICMP:
			if p.Dst != outerDst {
				t.Fatalf("malformed: Dst %v changed from %v", p.Dst, outerDst)
			}
		}
	})
}
