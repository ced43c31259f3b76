package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ocsp"
)

// requestTimeout bounds one request, from its write to its last byte.
const requestTimeout = 30 * time.Second

// ocspRequests returns the DER OCSP request for each certificate: one
// CertID, SHA-1 (the RFC 5019 profile, and what openssl ocsp sends), no
// nonce.
func ocspRequests(certs []*issued, issuer *x509.Certificate) ([][]byte, error) {
	ders := make([][]byte, len(certs))
	for i, c := range certs {
		der, err := ocsp.CreateRequest(c.cert, issuer, &ocsp.RequestOptions{Hash: crypto.SHA1})
		if err != nil {
			return nil, fmt.Errorf("OCSP request for %s: %w", c.gateway, err)
		}
		ders[i] = der
	}
	return ders, nil
}

// getRequests returns the bytes of an RFC 5019 GET for each DER request:
// "GET <prefix>/<base64, URL-escaped> HTTP/1.1" and a Host header, nothing
// else. '+', '/' and '=' are percent-encoded, as RFC 5019 asks.
func getRequests(ders [][]byte, prefix, host string) [][]byte {
	reqs := make([][]byte, len(ders))
	for i, der := range ders {
		path := prefix + "/" + url.QueryEscape(base64.StdEncoding.EncodeToString(der))
		reqs[i] = fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host)
	}
	return reqs
}

// loadRun is the outcome of sending n requests.
type loadRun struct {
	latencies []time.Duration // per request, in order sent; -1 when it failed
	wall      time.Duration   // from the first request sent to the last answer read
	errors    int
	firstErr  error
	dials     int      // connections opened
	samples   [][]byte // the bodies of the first requests, for checkAnswers
}

// runLoad sends n requests from len(conns) workers, one connection each,
// request i being reqs[i % len(reqs)] (the certificates round-robin). It
// times each request, checks that it got HTTP 200 and a successful OCSP
// answer, and keeps the bodies of the first sample requests.
func runLoad(ctx context.Context, conns []*rawConn, reqs [][]byte, n, sample int) *loadRun {
	r := &loadRun{latencies: make([]time.Duration, n), samples: make([][]byte, min(sample, n))}
	dials0 := 0
	for _, c := range conns {
		dials0 += c.dials
	}
	var next atomic.Int64
	var errs atomic.Int64
	var mu sync.Mutex
	fail := func(i int, err error) {
		r.latencies[i] = -1
		if errs.Add(1) == 1 {
			mu.Lock()
			r.firstErr = fmt.Errorf("request %d: %w", i, err)
			mu.Unlock()
		}
	}
	var wg sync.WaitGroup
	start := time.Now()
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				resp, err := c.do(reqs[i%len(reqs)])
				lat := time.Since(t0)
				switch {
				case err != nil:
					fail(i, err)
					continue
				case resp.status != 200:
					fail(i, fmt.Errorf("HTTP status %d: %q", resp.status, truncate(resp.body)))
					continue
				case !ocspSuccessful(resp.body):
					fail(i, fmt.Errorf("OCSP answer is not successful: %x", resp.body[:min(len(resp.body), 16)]))
					continue
				}
				r.latencies[i] = lat
				if i < len(r.samples) {
					r.samples[i] = bytes.Clone(resp.body)
				}
			}
		}()
	}
	wg.Wait()
	r.wall = time.Since(start)
	r.errors = int(errs.Load())
	for _, c := range conns {
		r.dials += c.dials
	}
	r.dials -= dials0
	return r
}

// sorted returns the latencies of the successful requests, sorted.
func (r *loadRun) sorted() []time.Duration {
	l := make([]time.Duration, 0, len(r.latencies))
	for _, d := range r.latencies {
		if d >= 0 {
			l = append(l, d)
		}
	}
	slices.Sort(l)
	return l
}

// failures counts the answers that failed a check and keeps the first reason.
type failures struct {
	count int
	first error
}

func (f *failures) add(err error) {
	if f.count == 0 {
		f.first = err
	}
	f.count++
}

// checkAnswers fully verifies the sampled answers (sample i is the answer
// for certs[i % len(certs)]): signed by a responder certificate the issuer
// issued for OCSP signing (or by the issuer), for the right serial, with
// the status gwpki holds (good, or revoked at the time gwpki recorded),
// current at now.
func checkAnswers(samples [][]byte, certs []*issued, issuer *x509.Certificate, now time.Time) failures {
	var f failures
	for i, body := range samples {
		if body == nil {
			continue // failed, and counted, during the run
		}
		c := certs[i%len(certs)]
		if err := checkAnswer(body, c, issuer, now); err != nil {
			f.add(fmt.Errorf("answer for %s (serial %X): %w", c.gateway, c.cert.SerialNumber, err))
		}
	}
	return f
}

func checkAnswer(body []byte, c *issued, issuer *x509.Certificate, now time.Time) error {
	resp, err := ocsp.ParseResponseForCert(body, c.cert, issuer)
	if err != nil {
		return err
	}
	if rc := resp.Certificate; rc != nil && !rc.Equal(issuer) && !slices.Contains(rc.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
		return fmt.Errorf("responder certificate %q lacks id-kp-OCSPSigning", rc.Subject)
	}
	const skew = 5 * time.Minute
	if resp.ThisUpdate.After(now.Add(skew)) || !resp.NextUpdate.After(now) {
		return fmt.Errorf("not current: thisUpdate %s, nextUpdate %s, now %s",
			resp.ThisUpdate.UTC().Format(time.RFC3339), resp.NextUpdate.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	switch want := statusName(c.revoked); {
	case !c.revoked && resp.Status != ocsp.Good, c.revoked && resp.Status != ocsp.Revoked:
		return fmt.Errorf("status %s; want %s", ocspStatusName(resp.Status), want)
	case c.revoked:
		if d := resp.RevokedAt.Sub(c.revokedAt.Truncate(time.Second)); d < -time.Second || d > time.Second {
			return fmt.Errorf("revoked at %s; want %s", resp.RevokedAt.UTC().Format(time.RFC3339), c.revokedAt.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

func statusName(revoked bool) string {
	if revoked {
		return "revoked"
	}
	return "good"
}

func ocspStatusName(s int) string {
	switch s {
	case ocsp.Good:
		return "good"
	case ocsp.Revoked:
		return "revoked"
	case ocsp.Unknown:
		return "unknown"
	}
	return fmt.Sprintf("status %d", s)
}
