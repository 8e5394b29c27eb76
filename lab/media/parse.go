package media

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Progress is the last report of an ffmpeg run with `-progress pipe:1`.
type Progress struct {
	Frames  int           // video frames encoded and handed to the output
	Bytes   int64         // bytes written to the output protocol (FLV, RTSP, MPEG-TS)
	OutTime time.Duration // media time written
	End     bool          // ffmpeg said progress=end: it finished writing normally
}

// parseProgress reads ffmpeg's key=value progress blocks and keeps the last value of each.
func parseProgress(b []byte) Progress {
	var p Progress
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "frame":
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				p.Frames = n
			}
		case "total_size":
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
				p.Bytes = n
			}
		case "out_time_us":
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
				p.OutTime = time.Duration(n) * time.Microsecond
			}
		case "progress":
			p.End = v == "end"
		}
	}
	return p
}

// accessEntry is one line of the nginx-rtmp access log in accessLogFormat.
type accessEntry struct {
	Peer          netip.Addr
	Command       string // PUBLISH, PLAY, ...
	App, Name     string
	BytesReceived int64
	BytesSent     int64
	Seconds       int
}

// accessLogFormat is the log_format the nginx configuration sets; parseAccessLog reads it.
const accessLogFormat = `$remote_addr $command $app $name $bytes_received $bytes_sent $session_time`

// parseAccessLog reads access log lines; lines not in accessLogFormat are skipped.
func parseAccessLog(b []byte) []accessEntry {
	var out []accessEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 7 {
			continue
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil {
			continue
		}
		rx, err1 := strconv.ParseInt(f[4], 10, 64)
		tx, err2 := strconv.ParseInt(f[5], 10, 64)
		secs, err3 := strconv.Atoi(f[6])
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		out = append(out, accessEntry{Peer: a.Unmap(), Command: f[1], App: f[2], Name: f[3], BytesReceived: rx, BytesSent: tx, Seconds: secs})
	}
	return out
}

// LiveStream is a stream nginx-rtmp is serving now (its /stat page).
type LiveStream struct {
	App, Name  string
	Publisher  netip.Addr   // the publishing client's address as nginx saw it; invalid if none
	Players    []netip.Addr // playing clients
	BytesIn    int64
	VideoCodec string
	Width      int
	Height     int
}

type statXML struct {
	Apps []struct {
		Name    string `xml:"name"`
		Streams []struct {
			Name    string `xml:"name"`
			BytesIn int64  `xml:"bytes_in"`
			Clients []struct {
				Address    string    `xml:"address"`
				Publishing *struct{} `xml:"publishing"`
			} `xml:"client"`
			Video struct {
				Width  int    `xml:"width"`
				Height int    `xml:"height"`
				Codec  string `xml:"codec"`
			} `xml:"meta>video"`
		} `xml:"live>stream"`
	} `xml:"server>application"`
}

// parseStat reads nginx-rtmp's `rtmp_stat all` XML.
func parseStat(b []byte) ([]LiveStream, error) {
	var x statXML
	if err := xml.Unmarshal(b, &x); err != nil {
		return nil, fmt.Errorf("parse nginx-rtmp stat: %w", err)
	}
	var out []LiveStream
	for _, a := range x.Apps {
		for _, s := range a.Streams {
			ls := LiveStream{App: a.Name, Name: s.Name, BytesIn: s.BytesIn, VideoCodec: s.Video.Codec, Width: s.Video.Width, Height: s.Video.Height}
			for _, c := range s.Clients {
				addr, err := netip.ParseAddr(c.Address)
				if err != nil {
					continue
				}
				if c.Publishing != nil {
					ls.Publisher = addr.Unmap()
				} else {
					ls.Players = append(ls.Players, addr.Unmap())
				}
			}
			out = append(out, ls)
		}
	}
	return out, nil
}

// parseProcTCP reads /proc/net/tcp and returns the peer addresses of the established
// connections whose local port is port.
func parseProcTCP(b []byte, port uint16) []netip.Addr {
	var out []netip.Addr
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[3] != "01" { // 01: ESTABLISHED
			continue
		}
		local, ok1 := procAddr(f[1])
		peer, ok2 := procAddr(f[2])
		if ok1 && ok2 && local.Port() == port {
			out = append(out, peer.Addr())
		}
	}
	return out
}

// procTCPListening reports whether /proc/net/tcp's text b has a listening socket
// (state 0A) on port.
func procTCPListening(b []byte, port uint16) bool {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[3] != "0A" { // 0A: LISTEN
			continue
		}
		if local, ok := procAddr(f[1]); ok && local.Port() == port {
			return true
		}
	}
	return false
}

// procAddr reads an IPv4 "0100007F:078F" of /proc/net/tcp: the address as a 32-bit
// number in host byte order, the port in hex.
func procAddr(s string) (netip.AddrPort, bool) {
	a, p, ok := strings.Cut(s, ":")
	if !ok || len(a) != 8 {
		return netip.AddrPort{}, false
	}
	v, err1 := strconv.ParseUint(a, 16, 32)
	port, err2 := strconv.ParseUint(p, 16, 16)
	if err1 != nil || err2 != nil {
		return netip.AddrPort{}, false
	}
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], uint32(v))
	return netip.AddrPortFrom(netip.AddrFrom4(b), uint16(port)), true
}

// UDPCounters are a namespace's kernel UDP counters (the Udp line of /proc/net/snmp).
type UDPCounters struct {
	InDatagrams, NoPorts, InErrors, OutDatagrams, RcvbufErrors uint64
}

// Sub returns c - o, counter by counter.
func (c UDPCounters) Sub(o UDPCounters) UDPCounters {
	return UDPCounters{c.InDatagrams - o.InDatagrams, c.NoPorts - o.NoPorts, c.InErrors - o.InErrors, c.OutDatagrams - o.OutDatagrams, c.RcvbufErrors - o.RcvbufErrors}
}

// parseSNMP reads the "Udp:" header and value lines of /proc/net/snmp.
func parseSNMP(b []byte) (UDPCounters, error) {
	var c UDPCounters
	var hdr []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if hdr == nil {
			hdr = f[1:]
			continue
		}
		if len(f)-1 != len(hdr) {
			return c, fmt.Errorf("parse /proc/net/snmp: %d Udp values for %d names", len(f)-1, len(hdr))
		}
		for i, name := range hdr {
			v, err := strconv.ParseUint(f[i+1], 10, 64)
			if err != nil {
				return c, fmt.Errorf("parse /proc/net/snmp Udp %s: %w", name, err)
			}
			switch name {
			case "InDatagrams":
				c.InDatagrams = v
			case "NoPorts":
				c.NoPorts = v
			case "InErrors":
				c.InErrors = v
			case "OutDatagrams":
				c.OutDatagrams = v
			case "RcvbufErrors":
				c.RcvbufErrors = v
			}
		}
		return c, nil
	}
	return c, fmt.Errorf("parse /proc/net/snmp: no Udp lines")
}

// Probe is what ffprobe found in a stream or a recording.
type Probe struct {
	VideoCodec  string // "h264"
	Width       int
	Height      int
	AudioCodec  string // "aac"
	SampleRate  int
	VideoFrames int           // video packets read (one per frame)
	AudioFrames int           // audio packets read
	Bytes       int64         // payload bytes of the packets read (audio and video)
	Duration    time.Duration // from the first to past the last video frame
}

type probeJSON struct {
	Streams []struct {
		Index      int    `json:"index"`
		CodecType  string `json:"codec_type"`
		CodecName  string `json:"codec_name"`
		Width      int    `json:"width"`
		Height     int    `json:"height"`
		SampleRate string `json:"sample_rate"`
		FrameRate  string `json:"r_frame_rate"`
	} `json:"streams"`
	Packets []struct {
		StreamIndex int    `json:"stream_index"`
		PTSTime     string `json:"pts_time"`
		Size        string `json:"size"`
	} `json:"packets"`
}

// probeEntries is the -show_entries argument whose JSON parseProbe reads.
const probeEntries = "stream=index,codec_type,codec_name,width,height,sample_rate,r_frame_rate:packet=stream_index,pts_time,size"

// parseProbe reads `ffprobe -of json -show_entries probeEntries`.
func parseProbe(b []byte) (Probe, error) {
	var x probeJSON
	var p Probe
	if err := json.Unmarshal(b, &x); err != nil {
		return p, fmt.Errorf("parse ffprobe output: %w", err)
	}
	video, audio := -1, -1
	var frame time.Duration
	for _, s := range x.Streams {
		switch {
		case s.CodecType == "video" && video < 0:
			video = s.Index
			p.VideoCodec, p.Width, p.Height = s.CodecName, s.Width, s.Height
			if n, d, ok := strings.Cut(s.FrameRate, "/"); ok {
				num, err1 := strconv.ParseFloat(n, 64)
				den, err2 := strconv.ParseFloat(d, 64)
				if err1 == nil && err2 == nil && num > 0 && den > 0 && den/num <= 10 {
					frame = time.Duration(float64(time.Second) * den / num)
				}
			}
		case s.CodecType == "audio" && audio < 0:
			audio = s.Index
			p.AudioCodec = s.CodecName
			p.SampleRate, _ = strconv.Atoi(s.SampleRate)
		}
	}
	first, last := math.Inf(1), math.Inf(-1)
	for _, pk := range x.Packets {
		size, _ := strconv.ParseInt(pk.Size, 10, 64)
		switch pk.StreamIndex {
		case video:
			p.VideoFrames++
			p.Bytes += size
			if t, err := strconv.ParseFloat(pk.PTSTime, 64); err == nil && !math.IsNaN(t) && !math.IsInf(t, 0) {
				first, last = math.Min(first, t), math.Max(last, t)
			}
		case audio:
			p.AudioFrames++
			p.Bytes += size
		}
	}
	if last >= first && last-first < 1e6 {
		p.Duration = time.Duration((last-first)*float64(time.Second)) + frame
	}
	return p, nil
}
