package ha

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/internal/atomicfile"
)

// The authentication of configuration-sync requests (see ConfigPath).

// requestMAC is the MAC of a request whose body has length n and SHA-256 sum.
func requestMAC(secret, method, path string, ts int64, n int64, sum [sha256.Size]byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "medialb-ha-request\n%s\n%s\n%d\n%d\n%x", method, path, ts, n, sum)
	return m.Sum(nil)
}

// responseMAC is the MAC of an answer to the request made at ts.
func responseMAC(secret string, ts int64, status int, body []byte) []byte {
	sum := sha256.Sum256(body)
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "medialb-ha-response\n%d\n%d\n%x", ts, status, sum)
	return m.Sum(nil)
}

// signRequest adds the time, length, body hash and MAC headers to req, whose
// body is body.
func signRequest(req *http.Request, secret string, ts int64, body []byte) {
	sum := sha256.Sum256(body)
	n := int64(len(body))
	req.Header.Set(hdrTime, strconv.FormatInt(ts, 10))
	req.Header.Set(hdrLength, strconv.FormatInt(n, 10))
	req.Header.Set(hdrBody, hex.EncodeToString(sum[:]))
	req.Header.Set(hdrMAC, hex.EncodeToString(requestMAC(secret, req.Method, req.URL.Path, ts, n, sum)))
}

var errAuth = errors.New("HA request not authenticated")

// verifier checks requests and refuses replays: it takes a request only with
// a time later than the last one it took, which it keeps in a file so that a
// restart does not open the window of ConfigClockSkew again. Safe for
// concurrent use.
type verifier struct {
	file string // "" keeps nothing
	now  func() time.Time
	log  zerolog.Logger

	mu   sync.Mutex
	last int64 // the latest request time taken
}

// newVerifier reads the last time taken from file, if any.
func newVerifier(file string, now func() time.Time, log zerolog.Logger) *verifier {
	v := &verifier{file: file, now: now, log: log}
	if file == "" {
		return v
	}
	data, err := os.ReadFile(file)
	if err == nil {
		v.last, err = strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		// Refusing every request for ConfigClockSkew is safer than taking replays.
		v.last = now().Add(ConfigClockSkew).UnixNano()
		log.Warn().Err(err).Str("file", file).Msg("HA: last configuration-sync time unreadable; refusing requests for the clock skew window")
	}
	return v
}

// verify authenticates r from its headers alone, and only then reads its body
// (at most maxServicesDoc, exactly the signed length, with the signed hash).
// It returns the request's time and body.
func (v *verifier) verify(r *http.Request, secret string) (int64, []byte, error) {
	ts, err := strconv.ParseInt(r.Header.Get(hdrTime), 10, 64)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: no valid %s header", errAuth, hdrTime)
	}
	n, err := strconv.ParseInt(r.Header.Get(hdrLength), 10, 64)
	if err != nil || n < 0 {
		return 0, nil, fmt.Errorf("%w: no valid %s header", errAuth, hdrLength)
	}
	var sum [sha256.Size]byte
	if b, err := hex.DecodeString(r.Header.Get(hdrBody)); err != nil || len(b) != len(sum) {
		return 0, nil, fmt.Errorf("%w: no valid %s header", errAuth, hdrBody)
	} else {
		copy(sum[:], b)
	}
	mac, err := hex.DecodeString(r.Header.Get(hdrMAC))
	if err != nil || !hmac.Equal(mac, requestMAC(secret, r.Method, r.URL.Path, ts, n, sum)) {
		return 0, nil, fmt.Errorf("%w: bad MAC (ha.secret differs?)", errAuth)
	}
	if d := v.now().Sub(time.Unix(0, ts)); d > ConfigClockSkew || d < -ConfigClockSkew {
		return 0, nil, fmt.Errorf("%w: request time %s off this node's clock (run NTP on both nodes)", errAuth, d.Round(time.Second))
	}
	if n > maxServicesDoc {
		return 0, nil, fmt.Errorf("services document of %d bytes: %w (at most %d)", n, errTooLarge, maxServicesDoc)
	}
	if err := v.take(ts); err != nil {
		return 0, nil, err
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, n+1))
	if err != nil {
		return 0, nil, fmt.Errorf("%w: read body: %v", errAuth, err)
	}
	if got := sha256.Sum256(body); int64(len(body)) != n || !bytes.Equal(got[:], sum[:]) {
		return 0, nil, fmt.Errorf("%w: body differs from its signed length and hash", errAuth)
	}
	return ts, body, nil
}

// take records ts as the last request time taken, or refuses a replay.
func (v *verifier) take(ts int64) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if ts <= v.last {
		return fmt.Errorf("%w: request time not after the last one taken (a replay?)", errAuth)
	}
	if v.file != "" {
		if err := atomicfile.Write(v.file, []byte(strconv.FormatInt(ts, 10)+"\n"), 0o600); err != nil {
			// Not kept: a replay after a restart could be taken; refuse instead.
			return fmt.Errorf("keep the last configuration-sync time: %w", err)
		}
	}
	v.last = ts
	return nil
}
