package ocsp

import (
	"sync"
	"time"
)

const (
	// MaxRequest is the largest OCSP request accepted, as a POST body or
	// decoded from a GET path: a one-certificate request is about 80 bytes,
	// with a nonce or a requestor name a few hundred. Larger POST bodies
	// are answered 413.
	MaxRequest = 4 << 10
	// MaxPath is the longest GET path accepted (the base64 of MaxRequest
	// and some room for the prefix); longer paths are answered 414.
	MaxPath = 6 << 10
)

// Defaults for the zero values of [Config].
const (
	DefaultResponderLifetime = 7 * 24 * time.Hour
	DefaultValidity          = time.Hour
	DefaultMaxCacheEntries   = 1 << 20
	DefaultUnknownPerSecond  = 100
)

// unknownValidity caps the validity of an Unknown response: the serial may
// be issued a moment later, so caches must not hold "unknown" for long.
const unknownValidity = time.Minute

// rotateRetry is the pause between failed responder rotations.
const rotateRetry = time.Minute

// bucket is a token bucket: rate tokens a second, at most burst saved up.
// A nil bucket allows everything.
type bucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate float64, burst int, now time.Time) *bucket {
	if rate < 0 {
		return nil
	}
	return &bucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: now}
}

// allow takes a token if one is left at now.
func (b *bucket) allow(now time.Time) bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
