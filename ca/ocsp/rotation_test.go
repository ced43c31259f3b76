package ocsp_test

import (
	"context"
	"crypto"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/gwpki/gwpki/ca/ocsp"
)

func TestResponderRotation(t *testing.T) {
	e := longEnv(t, ocsp.Config{ResponderLifetime: 3 * time.Hour, Validity: time.Hour})
	c := e.good(t)
	first := e.status(t, c, crypto.SHA1).Certificate
	if life := first.NotAfter.Sub(e.clock.Now()); life < 3*time.Hour-2*time.Second || life > 3*time.Hour {
		t.Errorf("responder certificate ends %v after issue; want the 3h lifetime", life)
	}
	if nb := e.clock.Now().Sub(first.NotBefore); nb < time.Minute || nb > time.Minute+time.Second {
		t.Errorf("responder NotBefore %v before issue; want a minute's backdating", nb)
	}

	// Not yet a third left: no rotation.
	e.clock.Add(2*time.Hour - time.Minute)
	if got := e.status(t, e.good(t), crypto.SHA1).Certificate; !got.Equal(first) {
		t.Errorf("responder certificate replaced with more than a third of its lifetime left")
	}
	// A third left: the next signature comes from a successor.
	e.clock.Add(2 * time.Minute)
	resp := e.status(t, e.good(t), crypto.SHA1)
	second := resp.Certificate
	if second.Equal(first) {
		t.Fatal("responder certificate not rotated with a third of its lifetime left")
	}
	checkResponderCert(t, e, second)
	if second.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(first.PublicKey) {
		t.Error("rotated responder certificate reuses the old key")
	}
	// Responses signed by the old certificate were cut at its NotAfter and
	// remain verifiable; the old entry is re-signed when due.
	if !resp.NextUpdate.Equal(resp.ThisUpdate.Add(time.Hour)) {
		t.Errorf("nextUpdate %v; want an hour after %v", resp.NextUpdate, resp.ThisUpdate)
	}
	if got := e.status(t, c, crypto.SHA1).Certificate; !got.Equal(second) {
		t.Errorf("stale entry re-signed by %v; want the new responder", got.SerialNumber)
	}
}

func TestRunRotatesAndSweeps(t *testing.T) {
	e := longEnv(t, ocsp.Config{ResponderLifetime: 3 * time.Hour, Validity: time.Hour})
	e.r.SetTick(5 * time.Millisecond)
	e.status(t, e.good(t), crypto.SHA1)
	first := e.r.ResponderCert()
	if n := e.r.CacheLen(); n != 1 {
		t.Fatalf("%d cached responses; want 1", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.r.Run(ctx) }()

	e.clock.Add(2*time.Hour + time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for e.r.ResponderCert().Equal(first) || e.r.CacheLen() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Run did not rotate (rotated: %v) and sweep (%d left) within 5s", !e.r.ResponderCert().Equal(first), e.r.CacheLen())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v when its context ended; want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return when its context ended")
	}
}

// Near the end of the issuing CA, the responder certificate ends with it and
// nextUpdate never passes it; the certificate is not rotated in a loop.
func TestNextUpdateWithinResponderCert(t *testing.T) {
	e := &env{pki: newPKI(t, time.Now().Add(30*time.Minute)), store: newStore(), clock: newClock()}
	e.start(t, ocsp.Config{Validity: time.Hour})
	c := e.good(t)
	resp := e.status(t, c, crypto.SHA1)
	end := e.pki.issuer.NotAfter
	if !resp.Certificate.NotAfter.Equal(end) {
		t.Errorf("responder NotAfter %v; want the issuer's %v", resp.Certificate.NotAfter, end)
	}
	if !resp.NextUpdate.Equal(end) {
		t.Errorf("nextUpdate %v; want the responder's NotAfter %v", resp.NextUpdate, end)
	}
	e.clock.Add(25 * time.Minute)
	resp = e.status(t, e.good(t), crypto.SHA1)
	if resp.NextUpdate.After(resp.Certificate.NotAfter) {
		t.Errorf("nextUpdate %v after the responder's NotAfter %v", resp.NextUpdate, resp.Certificate.NotAfter)
	}
	if resp.Certificate.NotAfter != end {
		t.Errorf("responder NotAfter %v; want still %v", resp.Certificate.NotAfter, end)
	}
	// Past the issuer's end nothing can be signed: internalError, not a
	// response that outlives its signer.
	e.clock.Add(10 * time.Minute)
	e.wantError(t, e.post(e.request(t, e.good(t).SerialNumber, crypto.SHA1)), xocsp.InternalError)
}
