package ca

import (
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Refused POST requests (sign, renew, rekey, revoke) allowed per source
// address and window before the source is answered 429 without any parsing
// or signature work. A station that follows the profile never gets near it;
// something guessing tokens or burning the CA's CPU with garbage does.
const (
	maxRefusals    = 100
	refusalWindow  = time.Minute
	maxRefusalIPs  = 10000 // bounds the limiter's memory
	refusalRetryIn = refusalWindow
)

// refusalLimiter counts refused sign requests per source IP in fixed
// windows. It lives in memory on purpose: it protects CPU, not a secret, and
// a restart that forgets it costs nothing (unlike claim attempt counters,
// which the store keeps).
type refusalLimiter struct {
	mu     sync.Mutex
	now    func() time.Time
	counts map[string]*refusalCount
}

type refusalCount struct {
	since time.Time
	n     int
}

func newRefusalLimiter(now func() time.Time) *refusalLimiter {
	return &refusalLimiter{now: now, counts: map[string]*refusalCount{}}
}

// allow reports whether ip may be served.
func (l *refusalLimiter) allow(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.counts[ip]
	if !ok || l.now().Sub(c.since) >= refusalWindow {
		return true
	}
	return c.n < maxRefusals
}

// refused records a refused request from ip.
func (l *refusalLimiter) refused(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	c, ok := l.counts[ip]
	if !ok || now.Sub(c.since) >= refusalWindow {
		if !ok && len(l.counts) >= maxRefusalIPs {
			l.evict(now)
		}
		c = &refusalCount{since: now}
		l.counts[ip] = c
	}
	c.n++
}

// evict drops finished windows; if every window is live (a flood from many
// addresses), it starts over rather than grow without bound.
func (l *refusalLimiter) evict(now time.Time) {
	for ip, c := range l.counts {
		if now.Sub(c.since) >= refusalWindow {
			delete(l.counts, ip)
		}
	}
	if len(l.counts) >= maxRefusalIPs {
		clear(l.counts)
	}
}

// limitRefused answers a POST from a source with too many recent refusals
// with 429, and counts the 4xx answers to POSTs.
func (l *refusalLimiter) limitRefused(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		ip, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			ip = r.RemoteAddr
		}
		if !l.allow(ip) {
			w.Header().Set("Retry-After", strconv.Itoa(int(refusalRetryIn.Seconds())))
			http.Error(w, `{"status":429,"message":"too many refused requests from this address; retry later"}`, http.StatusTooManyRequests)
			return
		}
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		if sw.code >= 400 && sw.code < 500 {
			l.refused(ip)
		}
	})
}
