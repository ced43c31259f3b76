package ocsp

import (
	"context"
	"crypto"
	_ "crypto/sha1" // CertIDs hashed with SHA-1, what most clients send
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	xocsp "golang.org/x/crypto/ocsp"
)

// Config is what [New] needs. Zero values of the optional fields mean the
// documented default.
type Config struct {
	// Issuer is the issuing CA, the only issuer answered for; requests
	// naming another are answered unauthorized.
	Issuer *x509.Certificate
	// IssuerKey is Issuer's key. It signs only the delegated responder
	// certificates, never a response.
	IssuerKey crypto.Signer
	// Source tells the status of a serial.
	Source Source
	// Retired are the responders of the issuing CAs this one replaced
	// (a key rotation): a request naming one of their issuers is answered
	// by that responder, with its own responder certificate and cache,
	// instead of unauthorized, and Run maintains them too. Their own
	// ServeHTTP and Run are then not used.
	Retired []*Responder

	// ResponderLifetime is the lifetime of each responder certificate
	// (default 7 days); a successor is issued when a third of it is left.
	// No responder certificate outlives Issuer.
	ResponderLifetime time.Duration
	// Validity is nextUpdate - thisUpdate of a response (default 1 hour),
	// cut short where the responder certificate ends sooner. A cached
	// response is re-signed on its first use past half its validity.
	// Unknown answers are valid for at most a minute.
	Validity time.Duration
	// MaxCacheEntries bounds the cached responses (default 1<<20). Each
	// takes about 1.2 KiB (an 800-byte response with the responder
	// certificate, its headers, the key); only serials asked about within
	// the last Validity are held, and beyond the bound random entries are
	// evicted.
	MaxCacheEntries int
	// UnknownPerSecond and UnknownBurst limit, across all clients, how
	// many Unknown answers are signed (default 100 a second, burst twice
	// the rate): they are never cached, so each costs a lookup and a
	// signature. The excess is answered tryLater. A negative
	// UnknownPerSecond removes the limit.
	UnknownPerSecond float64
	UnknownBurst     int

	// Logger gets one line per internal error and per responder rotation,
	// never one per request (default slog.Default()).
	Logger *slog.Logger
	// Clock is the time source (default time.Now). x/crypto/ocsp stamps
	// producedAt from the system clock whatever Clock says.
	Clock func() time.Time
	// Registerer receives gwpki_ocsp_responses_total{status} and
	// gwpki_ocsp_cache_entries (nil: not registered).
	Registerer prometheus.Registerer
}

// algs are the CertID hash algorithms answered for, in cache-key order.
var algs = [...]crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512}

// signedOnRevocation are the algorithms whose revoked response
// [Responder.Revoked] signs at once; the others are signed on first use.
var signedOnRevocation = [len(algs)]bool{true, true, false, false}

// certID is the issuer part of a CertID under one hash algorithm.
type certID struct {
	nameHash, keyHash []byte
}

// Responder is an OCSP responder for one issuing CA. It is an
// http.Handler; run [Responder.Run] beside it to rotate its certificate and
// drop expired responses.
type Responder struct {
	issuer    *x509.Certificate
	issuerKey crypto.Signer
	src       Source
	retired   []*Responder
	lifetime  time.Duration
	validity  time.Duration
	ids       [len(algs)]certID
	cache     *cache
	unknown   *bucket
	log       *slog.Logger
	now       func() time.Time
	metrics   *metrics
	tick      time.Duration // Run's period
	bufs      sync.Pool     // *buffers

	// epoch counts revocations, so that a response looked up before one
	// and finished after it is not cached over it.
	epoch atomic.Uint64

	resp          atomic.Pointer[responder]
	rotateMu      sync.Mutex
	rotateRetryAt time.Time // under rotateMu
}

// New returns a responder for cfg.Issuer with a fresh responder
// certificate.
func New(cfg Config) (*Responder, error) {
	switch {
	case cfg.Issuer == nil:
		return nil, errors.New("ocsp responder: no issuer certificate")
	case cfg.IssuerKey == nil:
		return nil, errors.New("ocsp responder: no issuer key")
	case cfg.Source == nil:
		return nil, errors.New("ocsp responder: no status source")
	case cfg.ResponderLifetime < 0, cfg.Validity < 0, cfg.MaxCacheEntries < 0, cfg.UnknownBurst < 0:
		return nil, errors.New("ocsp responder: negative lifetime, validity or limit")
	}
	if pub, ok := cfg.IssuerKey.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cfg.Issuer.PublicKey) {
		return nil, errors.New("ocsp responder: issuer key does not match the issuer certificate")
	}
	r := &Responder{
		issuer:    cfg.Issuer,
		issuerKey: cfg.IssuerKey,
		src:       cfg.Source,
		retired:   cfg.Retired,
		lifetime:  orDefault(cfg.ResponderLifetime, DefaultResponderLifetime),
		validity:  orDefault(cfg.Validity, DefaultValidity),
		cache:     newCache(orDefault(cfg.MaxCacheEntries, DefaultMaxCacheEntries)),
		log:       cfg.Logger,
		now:       cfg.Clock,
		bufs:      sync.Pool{New: func() any { return new(buffers) }},
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.now == nil {
		r.now = time.Now
	}
	r.tick = min(time.Minute, max(time.Second, r.validity/4))
	rate := orDefault(cfg.UnknownPerSecond, DefaultUnknownPerSecond)
	r.unknown = newBucket(rate, orDefault(cfg.UnknownBurst, max(1, int(2*rate))), r.now())
	ids, err := issuerIDs(cfg.Issuer)
	if err != nil {
		return nil, err
	}
	r.ids = ids
	resp, err := issueResponder(r.issuer, r.issuerKey, r.lifetime, r.now())
	if err != nil {
		return nil, err
	}
	r.resp.Store(resp)
	if r.metrics, err = newMetrics(cfg.Registerer, func() float64 { return float64(r.cache.len()) }); err != nil {
		return nil, err
	}
	return r, nil
}

// orDefault returns v, or def when v is zero.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// issuerIDs hashes the issuer's name and key under every algorithm.
func issuerIDs(issuer *x509.Certificate) (ids [len(algs)]certID, err error) {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(issuer.RawSubjectPublicKeyInfo, &spki); err != nil {
		return ids, fmt.Errorf("ocsp responder: parse issuer public key: %w", err)
	}
	for i, h := range algs {
		n, k := h.New(), h.New()
		n.Write(issuer.RawSubject)
		k.Write(spki.PublicKey.RightAlign())
		ids[i] = certID{nameHash: n.Sum(nil), keyHash: k.Sum(nil)}
	}
	return ids, nil
}

// alg returns the index in algs of the request's CertID if it names this
// issuer, else -1.
func (r *Responder) alg(req *certRequest) int {
	for i, h := range algs {
		if h == req.hash {
			id := &r.ids[i]
			if string(id.nameHash) == string(req.nameHash) && string(id.keyHash) == string(req.keyHash) {
				return i
			}
			return -1
		}
	}
	return -1
}

// answer returns the response to serve for req at now, or nil and the
// error status to send instead.
func (r *Responder) answer(ctx context.Context, req *certRequest, now time.Time) (*entry, outcome) {
	alg := r.alg(req)
	if alg < 0 {
		for _, o := range r.retired {
			if o.alg(req) >= 0 {
				return o.answer(ctx, req, now)
			}
		}
		return nil, outUnauthorized
	}
	var kb [maxKey]byte
	key := appendKey(kb[:0], alg, req.serial)
	if key == nil { // longer than any serial this CA issues
		return r.unknownAnswer(alg, serialInt(req.serial), now)
	}
	e := r.cache.get(key)
	if !e.usable(now) {
		return r.renew(ctx, alg, serialInt(req.serial), key, e, now)
	}
	if now.Before(e.refreshAt) || !e.refreshing.CompareAndSwap(false, true) {
		return e, statusOutcome(e.st.Status)
	}
	// The first use past half its validity re-signs it; should that fail,
	// the current response still serves until its nextUpdate.
	defer e.refreshing.Store(false)
	if ne, o := r.renew(ctx, alg, serialInt(req.serial), key, e, now); ne != nil {
		return ne, o
	}
	return e, statusOutcome(e.st.Status)
}

// renew signs a response for serial at now and caches it in place of old
// (the entry cached under key, or nil). The status comes from the Source,
// except for a revocation, which is final and re-signed as it is.
func (r *Responder) renew(ctx context.Context, alg int, serial *big.Int, key []byte, old *entry, now time.Time) (*entry, outcome) {
	for range 3 {
		epoch := r.epoch.Load()
		st := Entry{}
		if old != nil && old.st.Status == Revoked {
			st = old.st
		} else {
			var err error
			if st, err = r.lookup(ctx, serial); err != nil {
				return nil, outInternalError
			}
			if st.Status == Unknown {
				return r.unknownAnswer(alg, serial, now)
			}
		}
		e, err := r.sign(alg, serial, st, now, r.validity)
		if err != nil {
			r.log.Error("sign OCSP response", "serial", serial.Text(16), "err", err)
			return nil, outInternalError
		}
		// Only replace what the status was read on top of, and a good
		// answer only if no revocation came meanwhile: the revocation may
		// be this serial's, and a lookup that started before it must not
		// cache over it.
		cur, stored := r.cache.replace(key, old, e, now, func() bool {
			return st.Status == Revoked || r.epoch.Load() == epoch
		})
		switch {
		case stored || cur == nil || cur == old:
			return e, statusOutcome(st.Status)
		case cur.usable(now):
			return cur, statusOutcome(cur.st.Status)
		}
		old = cur // a revocation not signed yet: sign it
	}
	return nil, outInternalError
}

// lookup asks the Source and checks what it says.
func (r *Responder) lookup(ctx context.Context, serial *big.Int) (Entry, error) {
	st, err := r.src.Lookup(ctx, serial)
	switch {
	case err != nil:
		if ctx.Err() == nil { // not just a client that went away
			r.log.Error("look up certificate status for OCSP", "serial", serial.Text(16), "err", err)
		}
		return st, err
	case st.Status < Unknown || st.Status > Revoked:
		err = fmt.Errorf("source returned status %d", int(st.Status))
	case st.Status == Revoked && st.RevokedAt.IsZero():
		err = errors.New("source returned a revocation without a time")
	}
	if err != nil {
		r.log.Error("look up certificate status for OCSP", "serial", serial.Text(16), "err", err)
		return st, err
	}
	return normalize(st), nil
}

// normalize makes st what a response can carry: times in whole UTC seconds,
// an assigned reason code (else unspecified).
func normalize(st Entry) Entry {
	if st.Status != Revoked {
		return Entry{Status: st.Status}
	}
	st.RevokedAt = st.RevokedAt.UTC().Truncate(time.Second)
	if !validReason(st.Reason) {
		st.Reason = xocsp.Unspecified
	}
	return st
}

// unknownAnswer signs an Unknown response, uncached and short-lived, if the
// global limit allows one now.
func (r *Responder) unknownAnswer(alg int, serial *big.Int, now time.Time) (*entry, outcome) {
	if !r.unknown.allow(now) {
		return nil, outTryLater
	}
	e, err := r.sign(alg, serial, Entry{Status: Unknown}, now, min(r.validity, unknownValidity))
	if err != nil {
		r.log.Error("sign OCSP response", "serial", serial.Text(16), "err", err)
		return nil, outInternalError
	}
	return e, outUnknown
}

// sign signs st for serial with the current responder: valid from now (to
// the second) for validity, or until the responder certificate ends.
func (r *Responder) sign(alg int, serial *big.Int, st Entry, now time.Time, validity time.Duration) (*entry, error) {
	resp, err := r.currentResponder(now)
	if err != nil {
		return nil, err
	}
	thisUpdate := now.UTC().Truncate(time.Second)
	nextUpdate := thisUpdate.Add(validity)
	if nextUpdate.After(resp.cert.NotAfter) {
		nextUpdate = resp.cert.NotAfter
	}
	if !nextUpdate.After(now) {
		return nil, errors.New("responder certificate expires now")
	}
	tpl := xocsp.Response{
		Status:       st.Status.wire(),
		SerialNumber: serial,
		ThisUpdate:   thisUpdate,
		NextUpdate:   nextUpdate,
		IssuerHash:   algs[alg],
		Certificate:  resp.cert,
	}
	if st.Status == Revoked {
		tpl.RevokedAt, tpl.RevocationReason = st.RevokedAt, st.Reason
	}
	der, err := xocsp.CreateResponse(r.issuer, resp.cert, tpl, resp.key)
	if err != nil {
		return nil, err
	}
	return newEntry(st, der, thisUpdate, nextUpdate), nil
}

// Revoked tells the responder that serial was revoked at the given time for
// reason (an RFC 5280 CRLReason code; an unassigned one is sent as
// unspecified; a zero time means now). When it returns, every request for
// serial is answered revoked: it replaces the cached responses at once
// (signing the SHA-1 and SHA-256 CertID forms; rarer forms are signed on
// first use), and no lookup that was in flight can cache "good" over them.
// A revocation is final: the Source is not asked about serial again while
// its revoked response is cached.
func (r *Responder) Revoked(serial *big.Int, at time.Time, reason int) {
	if serial == nil {
		return
	}
	now := r.now()
	if at.IsZero() {
		at = now
	}
	st := normalize(Entry{Status: Revoked, RevokedAt: at, Reason: reason})
	r.epoch.Add(1)
	sb := serialBytes(serial)
	for alg := range algs {
		var kb [maxKey]byte
		key := appendKey(kb[:0], alg, sb)
		if key == nil {
			return // never cached: the Source answers for it
		}
		e := tombstone(st)
		if signedOnRevocation[alg] {
			if se, err := r.sign(alg, serial, st, now, r.validity); err != nil {
				// The tombstone still wins; the next request signs it.
				r.log.Error("sign OCSP response for a revocation", "serial", serial.Text(16), "err", err)
			} else {
				e = se
			}
		}
		r.cache.set(key, e, now)
	}
}

// Run keeps the responder fresh until ctx ends, then returns nil: it
// rotates the responder certificate when a third of its lifetime is left
// (signing would rotate it too, on first use) and drops expired responses.
// Failures are logged and retried; they never end Run.
func (r *Responder) Run(ctx context.Context) error {
	t := time.NewTicker(r.tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			r.maintain()
		}
	}
}

// maintain is one round of Run's work.
func (r *Responder) maintain() {
	now := r.now()
	_, _ = r.currentResponder(now) // logs its own failure
	r.cache.sweep(now)
	for _, o := range r.retired {
		o.maintain()
	}
}
