package media

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestParseProgress(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Progress
	}{
		{"empty", "", Progress{}},
		{"two blocks, last wins", "frame=10\ntotal_size=1000\nout_time_us=400000\nprogress=continue\nframe=75\ntotal_size=91989\nout_time_us=3018000\nprogress=end\n",
			Progress{Frames: 75, Bytes: 91989, OutTime: 3018 * time.Millisecond, End: true}},
		{"cut off mid-run", "frame=12\ntotal_size=N/A\nout_time_us=480000\nprogress=continue\n",
			Progress{Frames: 12, OutTime: 480 * time.Millisecond}},
		{"junk and negatives ignored", "frame=-3\nnonsense\nbitrate= 243.8kbits/s\nspeed=   1x\n", Progress{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseProgress([]byte(tt.in)); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseAccessLog(t *testing.T) {
	in := "192.168.95.3 PUBLISH live t1 151000 529 5\n" +
		"192.168.95.3 PLAY live t1 406 69216 2\n" +
		"127.0.0.1 [25/Nov/2026:20:25:18 +0000] PUBLISH \"live\" \"s1\" \"\" - 90939 529\n" + // default format: skipped
		"not-an-address PUBLISH live x 1 2 3\n"
	got := parseAccessLog([]byte(in))
	want := []accessEntry{
		{Peer: netip.MustParseAddr("192.168.95.3"), Command: "PUBLISH", App: "live", Name: "t1", BytesReceived: 151000, BytesSent: 529, Seconds: 5},
		{Peer: netip.MustParseAddr("192.168.95.3"), Command: "PLAY", App: "live", Name: "t1", BytesReceived: 406, BytesSent: 69216, Seconds: 2},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// statSample is nginx-rtmp 1.1.4's /stat (rtmp_stat all) with a publisher and a player.
const statSample = `<?xml version="1.0" encoding="utf-8" ?>
<rtmp><nginx_version>1.22.1</nginx_version><server><application><name>live</name><live>
<stream><name>s1</name><time>1180</time><bw_in>0</bw_in><bytes_in>39737</bytes_in>
<client><id>1</id><address>192.168.95.101</address><time>1368</time><flashver>FMLE/3.0</flashver><dropped>0</dropped><publishing/><active/></client>
<client><id>2</id><address>192.168.95.102</address><time>368</time><flashver>LNX 9,0,124,2</flashver><dropped>0</dropped><active/></client>
<meta><video><width>320</width><height>240</height><frame_rate>25</frame_rate><codec>H264</codec></video><audio><codec>AAC</codec></audio></meta>
<nclients>2</nclients><publishing/><active/></stream>
<nclients>2</nclients></live></application></server></rtmp>`

func TestParseStat(t *testing.T) {
	got, err := parseStat([]byte(statSample))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("got %d streams, want 1", len(got))
	}
	s := got[0]
	if s.App != "live" || s.Name != "s1" || s.BytesIn != 39737 || s.Publisher != netip.MustParseAddr("192.168.95.101") ||
		!slices.Equal(s.Players, []netip.Addr{netip.MustParseAddr("192.168.95.102")}) || s.VideoCodec != "H264" || s.Width != 320 || s.Height != 240 {
		t.Errorf("got %+v", s)
	}
	if _, err := parseStat([]byte("<rtmp><server>")); err == nil {
		t.Error("truncated XML: want an error")
	}
}

func TestParseProcTCP(t *testing.T) {
	in := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:022A 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 866687 1
   1: 6E5EA8C0:022A 685FA8C0:A1B2 01 00000000:00000000 00:00000000 00000000     0        0 866688 1
   2: 6E5EA8C0:078F 655FA8C0:A1B3 01 00000000:00000000 00:00000000 00000000     0        0 866689 1
   3: 6E5EA8C0:022A 665FA8C0:A1B4 06 00000000:00000000 00:00000000 00000000     0        0 0 1
`
	got := parseProcTCP([]byte(in), 554)
	want := []netip.Addr{netip.MustParseAddr("192.168.95.104")}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v (established on :554 only)", got, want)
	}
	for _, tc := range []struct {
		port uint16
		want bool
	}{{554, true}, {1935, false}, {0, false}} {
		if got := procTCPListening([]byte(in), tc.port); got != tc.want {
			t.Errorf("listening on %d: got %v, want %v", tc.port, got, tc.want)
		}
	}
}

func TestParseSNMP(t *testing.T) {
	in := "Tcp: RtoAlgorithm RtoMin\nTcp: 1 200\n" +
		"Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n" +
		"Udp: 198 2 1 7 3 0 0 0 0\n" +
		"UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n" +
		"UdpLite: 0 0 0 0 0 0 0 0 0\n"
	got, err := parseSNMP([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if want := (UDPCounters{InDatagrams: 198, NoPorts: 2, InErrors: 1, OutDatagrams: 7, RcvbufErrors: 3}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "Udp: InDatagrams NoPorts\nUdp: 1\n", "Udp: InDatagrams\nUdp: x\n"} {
		if _, err := parseSNMP([]byte(bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestParseProbe(t *testing.T) {
	in := `{"packets": [
		{"stream_index": 1, "pts_time": "0.998000", "size": "1000"},
		{"stream_index": 1, "pts_time": "1.038000", "size": "500"},
		{"stream_index": 0, "pts_time": "1.000000", "size": "20"},
		{"stream_index": 1, "pts_time": "N/A", "size": "300"}],
	"streams": [
		{"index": 0, "codec_name": "aac", "codec_type": "audio", "sample_rate": "44100", "r_frame_rate": "0/0"},
		{"index": 1, "codec_name": "h264", "codec_type": "video", "width": 320, "height": 240, "r_frame_rate": "25/1"}]}`
	got, err := parseProbe([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Probe{VideoCodec: "h264", Width: 320, Height: 240, AudioCodec: "aac", SampleRate: 44100,
		VideoFrames: 3, AudioFrames: 1, Bytes: 1820, Duration: 80 * time.Millisecond}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, err := parseProbe([]byte("{")); err == nil {
		t.Error("truncated JSON: want an error")
	}
}

func FuzzParsers(f *testing.F) {
	for _, s := range []string{statSample, "frame=75\ntotal_size=91989\nprogress=end\n", "192.168.95.3 PUBLISH live t1 151000 529 5\n",
		"   1: 6E5EA8C0:022A 685FA8C0:A1B2 01 0", "Udp: InDatagrams\nUdp: 5\n", `{"streams":[{"index":0,"codec_type":"video","r_frame_rate":"1/0"}],"packets":[{"stream_index":0,"pts_time":"1e308"}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		parseProgress(b)
		parseAccessLog(b)
		parseStat(b)         //nolint:errcheck // must not panic
		parseProcTCP(b, 554) //nolint:errcheck // must not panic
		procTCPListening(b, 554)
		parseSNMP(b) //nolint:errcheck // must not panic
		if p, err := parseProbe(b); err == nil && p.Duration < 0 {
			t.Errorf("negative duration %v", p.Duration)
		}
	})
}

func TestPublishURL(t *testing.T) {
	vip := netip.MustParseAddr("192.168.94.110")
	tests := []struct {
		p    Publish
		want string
	}{
		{Publish{Proto: RTMP, VIP: vip, Name: "cam1"}, "rtmp://192.168.94.110:1935/live/cam1"},
		{Publish{Proto: RTSP, VIP: vip, Name: "cam2"}, "rtsp://192.168.94.110:554/live/cam2"},
		{Publish{Proto: MPEGTS, VIP: vip, Port: 50010}, "udp://192.168.94.110:50010?pkt_size=1316"},
	}
	for _, tt := range tests {
		if got := tt.p.URL(); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.p.Proto, got, tt.want)
		}
	}
}
