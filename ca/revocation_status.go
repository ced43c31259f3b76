package ca

import (
	"context"
	"crypto"
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"
	"golang.org/x/sync/errgroup"

	"github.com/gwpki/gwpki/ca/crl"
	"github.com/gwpki/gwpki/ca/ocsp"
	"github.com/gwpki/gwpki/internal/events"
)

// openRevocation starts what answers "is this certificate still good?": the
// OCSP responder and the CRL builder, both fed by the store at start and by
// the revocation topic afterwards. httpURL is the public base of the HTTP
// listener, without a trailing slash.
func (a *Authority) openRevocation(ctx context.Context, signer crypto.Signer, httpURL string) error {
	a.revocations = a.opts.Revocations
	if a.revocations == nil {
		a.revocations = &events.Topic[Revocation]{}
	}
	a.db.PublishRevocationsTo(a.revocations)
	var err error
	a.ocsp, err = ocsp.New(ocsp.Config{
		Issuer: a.chain[0], IssuerKey: signer, Source: a.db,
		Logger: a.log, Registerer: a.opts.Registerer,
	})
	if err != nil {
		return fmt.Errorf("start the OCSP responder: %w", err)
	}
	a.crls, err = crl.New(ctx, crl.Config{
		Issuer: a.chain[0], Signer: signer, Shards: a.cfg.CRLShards, BaseURL: httpURL + "/crl/",
		Logger: a.log, Registerer: a.opts.Registerer,
	}, a.db)
	if err != nil {
		return fmt.Errorf("build the CRLs: %w", err)
	}
	// Both only update in-memory state here, so the revoking request is
	// answered after the next OCSP request would already say "revoked".
	a.revocations.Subscribe(func(ev Revocation) {
		for _, c := range ev.Certificates {
			a.ocsp.Revoked(c.Serial, c.RevokedAt, int(c.Reason))
			a.crls.Revoked(crl.Revoked{Serial: c.Serial, RevokedAt: c.RevokedAt, Reason: int(c.Reason), NotAfter: c.NotAfter})
		}
	})
	return nil
}

// Revocations is the topic every revocation is published on.
func (a *Authority) Revocations() *events.Topic[Revocation] { return a.revocations }

// RevocationStatusRoutes mounts the CRLs (GET /crl/<shard>.crl) on r, the
// plain HTTP listener's router.
func (a *Authority) RevocationStatusRoutes(r chi.Router) {
	r.Handle("/crl/*", a.crls)
}

// OCSPHandler is the OCSP responder: POST /ocsp and GET /ocsp/<base64
// request>. It needs a mux that does not clean paths (base64 may hold "//").
func (a *Authority) OCSPHandler() http.Handler { return a.ocsp }

// RunRevocation rotates the OCSP responder's certificate and rebuilds CRLs
// on their schedule until ctx ends.
func (a *Authority) RunRevocation(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.ocsp.Run(ctx) })
	g.Go(func() error { return a.crls.Run(ctx) })
	return g.Wait()
}
