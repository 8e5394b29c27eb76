package api

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/medialb/medialb/internal/clientaddr"
)

// authenticator checks HTTP basic-auth credentials against bcrypt hashes.
//
// An unknown user is compared against a dummy hash of the same cost as the real
// ones, so that it takes as long as a wrong password and does not reveal which user
// names exist. Successful checks are remembered for a while (keyed by an HMAC of
// the credentials under a per-process key), so that a browser polling the overview
// does not pay a bcrypt comparison every two seconds; failures are never remembered.
type authenticator struct {
	users map[string][]byte // name -> bcrypt hash
	dummy []byte

	cacheKey [32]byte
	mu       sync.Mutex
	good     map[[32]byte]time.Time // HMAC(user, password) -> valid until
}

const (
	goodTTL  = 5 * time.Minute
	goodSize = 256
)

func newAuthenticator(users []User) (*authenticator, error) {
	if len(users) == 0 {
		return nil, errors.New("start API: no api.users configured, and there is no default password " +
			"(add a user with a password_hash from `medialb passwd`, or remove api.listen)")
	}
	a := &authenticator{users: map[string][]byte{}, good: map[[32]byte]time.Time{}}
	maxCost := bcrypt.MinCost
	for i, u := range users {
		if u.Name == "" {
			return nil, fmt.Errorf("start API: api.users[%d] has no name", i)
		}
		if _, dup := a.users[u.Name]; dup {
			return nil, fmt.Errorf("start API: api user %q is listed twice", u.Name)
		}
		cost, err := bcrypt.Cost([]byte(u.PasswordHash))
		if err != nil {
			return nil, fmt.Errorf("start API: password_hash of api user %q is not a bcrypt hash: %w (make one with `medialb passwd`)", u.Name, err)
		}
		maxCost = max(maxCost, cost)
		a.users[u.Name] = []byte(u.PasswordHash)
	}
	var random [32]byte
	rand.Read(random[:])
	dummy, err := bcrypt.GenerateFromPassword(random[:16], maxCost)
	if err != nil {
		return nil, fmt.Errorf("start API: make dummy password hash: %w", err)
	}
	a.dummy = dummy
	rand.Read(a.cacheKey[:])
	return a, nil
}

// check reports whether user and password are valid.
func (a *authenticator) check(user, password string, now time.Time) bool {
	mac := hmac.New(sha256.New, a.cacheKey[:])
	mac.Write([]byte(user))
	mac.Write([]byte{0})
	mac.Write([]byte(password))
	var key [32]byte
	mac.Sum(key[:0])

	a.mu.Lock()
	until, ok := a.good[key]
	a.mu.Unlock()
	if ok && now.Before(until) {
		return true
	}

	hash, known := a.users[user]
	if !known {
		hash = a.dummy
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || !known {
		return false
	}
	a.mu.Lock()
	if len(a.good) >= goodSize {
		clear(a.good)
	}
	a.good[key] = now.Add(goodTTL)
	a.mu.Unlock()
	return true
}

// limiter rate-limits failed logins per source address with a token bucket: a
// source may fail burst times, then once per interval. While a source has no
// token left, its requests are refused before their credentials are checked.
// IPv6 sources are grouped by /64.
//
// It logs once when a burst of failures starts and once when the source is first
// refused, never once per request.
type limiter struct {
	log      zerolog.Logger
	burst    float64
	interval time.Duration

	mu      sync.Mutex
	sources map[netip.Addr]*bucket
}

type bucket struct {
	tokens   float64
	last     time.Time
	failures int  // in this burst
	refused  int  // requests refused in this burst
	logged   bool // the refusal was logged
}

const maxSources = 10000

func newLimiter(burst int, interval time.Duration, log zerolog.Logger) *limiter {
	return &limiter{log: log, burst: float64(burst), interval: interval, sources: map[netip.Addr]*bucket{}}
}

// refill brings b up to date and reports whether it is full (a new burst starts).
func (l *limiter) refill(b *bucket, now time.Time) bool {
	if l.interval > 0 {
		b.tokens += float64(now.Sub(b.last)) / float64(l.interval)
	}
	b.last = now
	if b.tokens >= l.burst {
		b.tokens = l.burst
		return true
	}
	return false
}

// allow reports whether src may try to log in now. A refusal is counted and, the
// first time in a burst, logged.
func (l *limiter) allow(src netip.Addr, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.sources[clientaddr.Key(src)]
	if b == nil {
		return true
	}
	if l.refill(b, now) {
		delete(l.sources, clientaddr.Key(src))
		return true
	}
	if b.tokens >= 1 {
		return true
	}
	b.refused++
	if !b.logged {
		b.logged = true
		l.log.Warn().Str("source", src.String()).Int("failures", b.failures).
			Dur("retry_after", l.interval).
			Msg("API: too many failed logins from this address; refusing its requests (429) for now")
	}
	return false
}

// fail records a failed login of user from src.
func (l *limiter) fail(src netip.Addr, user string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := clientaddr.Key(src)
	b := l.sources[k]
	if b == nil || l.refill(b, now) {
		if len(l.sources) >= maxSources {
			l.sweep(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.sources[k] = b
		l.log.Warn().Str("source", src.String()).Str("user", user).
			Msg("API: failed login (further failures from this address are logged once it is rate-limited)")
	}
	b.tokens = max(b.tokens-1, 0)
	b.failures++
}

// sweep forgets sources whose bucket has refilled, and all of them if that is not
// enough (an address flood must not grow the map without bound).
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.sources {
		if l.refill(b, now) {
			delete(l.sources, k)
		}
	}
	if len(l.sources) >= maxSources {
		clear(l.sources)
	}
}
