package ca

import (
	"context"
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/gwpki/gwpki/ca/crl"
	"github.com/gwpki/gwpki/ca/ocsp"
	"github.com/gwpki/gwpki/internal/events"
)

// openRevocation starts what answers "is this certificate still good?": an
// OCSP responder and a CRL builder for each issuing CA, fed by the store at
// start and by the revocation topic afterwards. httpURL is the public base
// of the HTTP listener, without a trailing slash. The current issuing CA's
// responder answers at /ocsp for all of them; only its metrics are
// registered.
func (a *Authority) openRevocation(ctx context.Context, httpURL string) error {
	a.revocations = a.opts.Revocations
	if a.revocations == nil {
		a.revocations = &events.Topic[Revocation]{}
	}
	a.db.PublishRevocationsTo(a.revocations)
	var retired []*ocsp.Responder
	for _, ic := range a.retired {
		if err := a.startRevocation(ctx, ic, httpURL, nil, nil); err != nil {
			return err
		}
		retired = append(retired, ic.ocsp)
	}
	if err := a.startRevocation(ctx, a.issuing, httpURL, retired, a.opts.Registerer); err != nil {
		return err
	}
	// Both only update in-memory state here, so the revoking request is
	// answered after the next OCSP request would already say "revoked".
	a.revocations.Subscribe(func(ev Revocation) {
		for _, c := range ev.Certificates {
			ic := a.issuingCAByKeyID(c.Issuer)
			ic.ocsp.Revoked(c.Serial, c.RevokedAt, int(c.Reason))
			ic.crls.Revoked(crl.Revoked{Serial: c.Serial, RevokedAt: c.RevokedAt, Reason: int(c.Reason), NotAfter: c.NotAfter})
		}
	})
	return nil
}

// startRevocation makes ic's OCSP responder and CRL builder. With one
// issuing CA they read the whole store; with several, each reads only what
// its CA issued.
func (a *Authority) startRevocation(ctx context.Context, ic *issuingCA, httpURL string, retired []*ocsp.Responder, reg prometheus.Registerer) error {
	var src interface {
		ocsp.Source
		crl.Source
	} = a.db
	log := a.log
	if len(a.retired) > 0 {
		src = issuerView{db: a.db, keyID: ic.keyID, orphans: ic == a.issuing}
		log = log.With("issuing_ca", fmt.Sprintf("g%d", ic.gen))
	}
	var err error
	ic.ocsp, err = ocsp.New(ocsp.Config{
		Issuer: ic.cert, IssuerKey: ic.signer, Source: src, Retired: retired,
		Logger: log, Registerer: reg,
	})
	if err != nil {
		return fmt.Errorf("start the OCSP responder of issuing CA g%d: %w", ic.gen, err)
	}
	ic.crls, err = crl.New(ctx, crl.Config{
		Issuer: ic.cert, Signer: ic.signer, Shards: a.cfg.CRLShards, BaseURL: httpURL + CRLPath(ic.gen),
		Logger: log, Registerer: reg,
	}, src)
	if err != nil {
		return fmt.Errorf("build the CRLs of issuing CA g%d: %w", ic.gen, err)
	}
	return nil
}

// Revocations is the topic every revocation is published on.
func (a *Authority) Revocations() *events.Topic[Revocation] { return a.revocations }

// RevocationStatusRoutes mounts the CRLs (GET /crl/<shard>.crl) on r, the
// plain HTTP listener's router.
func (a *Authority) RevocationStatusRoutes(r chi.Router) {
	r.HandleFunc("/crl/*", a.serveCRL)
}

// OCSPHandler is the OCSP responder: POST /ocsp and GET /ocsp/<base64
// request>. It needs a mux that does not clean paths (base64 may hold "//").
func (a *Authority) OCSPHandler() http.Handler { return a.issuing.ocsp }

// RunRevocation rotates the OCSP responder's certificate and rebuilds CRLs
// on their schedule until ctx ends.
func (a *Authority) RunRevocation(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.issuing.ocsp.Run(ctx) }) // and the retired ones
	for _, ic := range a.issuingCAs() {
		g.Go(func() error { return ic.crls.Run(ctx) })
	}
	return g.Wait()
}
