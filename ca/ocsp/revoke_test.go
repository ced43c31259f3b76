package ocsp_test

import (
	"crypto"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/gwpki/gwpki/ca/ocsp"
)

func TestRevokedReplacesCachedResponse(t *testing.T) {
	e := newEnv(t, ocsp.Config{})
	c := e.good(t)
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		if s := e.status(t, c, h).Status; s != xocsp.Good {
			t.Fatalf("%v: status %d; want good", h, s)
		}
	}
	// The store is not told: the responder must not need it to flip.
	at := e.clock.Now().Add(-time.Second)
	e.r.Revoked(c.SerialNumber, at, xocsp.KeyCompromise)
	lookups := e.store.lookups.Load()
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		resp := e.status(t, c, h)
		if resp.Status != xocsp.Revoked {
			t.Fatalf("%v: status %d right after Revoked; want revoked", h, resp.Status)
		}
		if !resp.RevokedAt.Equal(at.UTC().Truncate(time.Second)) || resp.RevocationReason != xocsp.KeyCompromise {
			t.Errorf("%v: revoked at %v reason %d; want %v reason %d", h, resp.RevokedAt, resp.RevocationReason, at, xocsp.KeyCompromise)
		}
	}
	if n := e.store.lookups.Load(); n != lookups {
		t.Errorf("%d source lookups after Revoked; want none", n-lookups)
	}
	// Revocation is final: the refresh re-signs it without the source.
	e.clock.Add(45 * time.Minute)
	if s := e.status(t, c, crypto.SHA1).Status; s != xocsp.Revoked {
		t.Errorf("status %d after a refresh; want still revoked", s)
	}
	if n := e.store.lookups.Load(); n != lookups {
		t.Errorf("refresh of a revocation asked the source %d times; want none", n-lookups)
	}
}

func TestRevokedUnassignedReason(t *testing.T) {
	e := newEnv(t, ocsp.Config{})
	c := e.good(t)
	e.r.Revoked(c.SerialNumber, time.Time{}, 7)
	resp := e.status(t, c, crypto.SHA1)
	if resp.Status != xocsp.Revoked || resp.RevocationReason != xocsp.Unspecified {
		t.Errorf("status %d reason %d; want revoked, unspecified", resp.Status, resp.RevocationReason)
	}
	if want := e.clock.Now().UTC().Truncate(time.Second); !resp.RevokedAt.Equal(want) {
		t.Errorf("revoked at %v; want now, %v, for a zero time", resp.RevokedAt, want)
	}
}

// A lookup that read "good" before the revocation and finishes after it
// must not put "good" back.
func TestRevokedWinsOverLookupInFlight(t *testing.T) {
	for _, cached := range []bool{false, true} {
		name := map[bool]string{false: "miss", true: "refresh"}[cached]
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, ocsp.Config{})
			c := e.good(t)
			req := e.request(t, c.SerialNumber, crypto.SHA1)
			if cached {
				e.status(t, c, crypto.SHA1)
				e.clock.Add(40 * time.Minute) // the next request re-signs
			}
			read, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			e.store.hook = func(*big.Int) {
				once.Do(func() { close(read); <-release })
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				e.post(req) // may say good: it began before the revocation
			}()
			<-read
			e.r.Revoked(c.SerialNumber, e.clock.Now(), xocsp.Superseded)
			close(release)
			<-done
			if s := e.status(t, c, crypto.SHA1).Status; s != xocsp.Revoked {
				t.Errorf("status %d after the in-flight lookup finished; want revoked", s)
			}
		})
	}
}

// Many clients at once, a revocation in the middle: every request that
// starts after Revoked returns sees revoked. Run with -race.
func TestRevokedRace(t *testing.T) {
	e := newEnv(t, ocsp.Config{Validity: 2 * time.Second})
	certs := []*big.Int{e.good(t).SerialNumber, e.good(t).SerialNumber}
	var revoked atomic.Bool
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan string, 100)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := []crypto.Hash{crypto.SHA1, crypto.SHA256}[i%2]
			req := e.request(t, certs[0], h)
			for {
				select {
				case <-stop:
					return
				default:
				}
				after := revoked.Load()
				w := e.post(req)
				resp, err := xocsp.ParseResponse(w.Body.Bytes(), e.pki.issuer)
				switch {
				case err != nil:
					errs <- err.Error()
					return
				case after && resp.Status != xocsp.Revoked:
					errs <- "good after Revoked returned"
					return
				}
				if i == 0 {
					e.clock.Add(100 * time.Millisecond) // some requests re-sign
				}
			}
		}()
	}
	// Another serial churns the same cache and store meanwhile.
	wg.Add(1)
	go func() {
		defer wg.Done()
		req := e.request(t, certs[1], crypto.SHA1)
		for {
			select {
			case <-stop:
				return
			default:
				e.post(req)
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	e.r.Revoked(certs[0], e.clock.Now(), xocsp.KeyCompromise)
	revoked.Store(true)
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Even when the revocation's entry is evicted before the lookup that began
// before it finishes (a full cache), that lookup's "good" is not cached: the
// next request asks the source, which knows of the revocation by then.
func TestRevokedEvictedDuringLookup(t *testing.T) {
	e := newEnv(t, ocsp.Config{MaxCacheEntries: 1}) // one entry per shard
	c := e.good(t)
	read, release := make(chan struct{}), make(chan struct{})
	e.store.hook = func(sn *big.Int) {
		if sn.Cmp(c.SerialNumber) == 0 {
			select {
			case <-read:
			default:
				close(read)
				<-release
			}
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.post(e.request(t, c.SerialNumber, crypto.SHA1))
	}()
	<-read
	e.store.set(c.SerialNumber, ocsp.Entry{Status: ocsp.Revoked, RevokedAt: e.clock.Now(), Reason: xocsp.KeyCompromise})
	e.r.Revoked(c.SerialNumber, e.clock.Now(), xocsp.KeyCompromise)
	for range 2000 { // fill every shard: the revocation is evicted
		e.post(e.request(t, e.good(t).SerialNumber, crypto.SHA1))
	}
	close(release)
	<-done
	if s := e.status(t, c, crypto.SHA1).Status; s != xocsp.Revoked {
		t.Errorf("status %d; want revoked", s)
	}
}
