package ca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/smallstep/certificates/api"
	steplog "github.com/smallstep/certificates/api/log"
	"github.com/smallstep/certificates/authority"
	"github.com/smallstep/certificates/authority/config"
	"github.com/smallstep/certificates/authority/provisioner"
	casapi "github.com/smallstep/certificates/cas/apiv1"
	"github.com/smallstep/certificates/cas/softcas"
	stepdb "github.com/smallstep/certificates/db"
	kmsapi "go.step.sm/crypto/kms/apiv1"
	"go.step.sm/crypto/pemutil"

	"github.com/gwpki/gwpki/internal/events"
	"github.com/gwpki/gwpki/internal/store"
)

// backdate is how far before the time of issue certificates start, so that
// a device whose clock is slightly behind accepts them.
const backdate = time.Minute

// MaxRequestBody bounds the body of every step-ca API request: a CSR and a
// token fit in a few kilobytes.
const MaxRequestBody = 64 << 10

// Options are the optional settings of [Open].
type Options struct {
	// Password decrypts the issuing key. Nil: read secrets/password.
	Password []byte
	// PublicHTTPURL overrides the configured base of OCSP and CRL URLs; the
	// server passes the HTTP listener's address when none is configured.
	PublicHTTPURL string
	// APIAddr is the address the HTTPS listener is bound to.
	APIAddr string
	// Registerer receives the CA's metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Logger gets reload and renewal messages (default slog.Default()).
	Logger *slog.Logger
	// Revocations is the topic revocations are published on (default: a
	// topic of the authority's own); the OCSP cache and the CRL builder
	// subscribe to it, and so may others.
	Revocations *events.Topic[Revocation]
}

// state is what one build from the data directory produced; it is swapped
// as a whole when the station list changes.
type state struct {
	step          *authority.Authority
	stations      map[string]*stationProvisioner // by key ID
	signAudiences []string                       // what a sign token's aud may be
}

// Authority is the running CA: a step-ca authority built from a data
// directory and rebuilt, with the same store and signer, when the station
// list changes.
type Authority struct {
	layout  Layout
	cfg     *Config
	opts    Options
	db      *DB
	issuer  *issuer
	roots   []*x509.Certificate
	chain   []*x509.Certificate
	metrics *metrics
	log     *slog.Logger

	current atomic.Pointer[state]
	// claimed tells the sign endpoint whether a gateway is claimed
	// ([Authority.SetClaimed]).
	claimed atomic.Pointer[ClaimedFunc]

	reloadMu      sync.Mutex
	stationsStamp time.Time // mtime of stations.json at the last build

	serverCert *serverCert
	refusals   *refusalLimiter
	bootstrap  *bootstrapProvisioner

	revocations *events.Topic[Revocation]
	issuing     *issuingCA   // the one that issues: chain[0]
	retired     []*issuingCA // replaced by rotations, not expired yet
	km          kmsapi.KeyManager
}

// Open builds the authority for the data directory dir on the store st.
func Open(ctx context.Context, dir string, st *store.DB, opts Options) (*Authority, error) {
	l := Layout{dir}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	if err := finishRotation(l, cfg); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Password == nil && cfg.KMS == "" {
		if !cfg.PasswordInDir {
			return nil, errors.New("the CA key password is not in the data directory; pass --password-file")
		}
		if opts.Password, err = ReadPasswordFile(l.Password()); err != nil {
			return nil, err
		}
	}
	db, err := NewDB(st)
	if err != nil {
		return nil, err
	}
	roots, err := pemutil.ReadCertificateBundle(l.RootCert())
	if err != nil {
		return nil, fmt.Errorf("read root certificate: %w", err)
	}
	chain, err := pemutil.ReadCertificateBundle(l.IntermediateCert())
	if err != nil {
		return nil, fmt.Errorf("read issuing certificate: %w", err)
	}
	a := &Authority{
		layout: l, cfg: cfg, opts: opts, db: db, roots: roots, chain: chain,
		metrics: newMetrics(opts.Registerer), log: opts.Logger,
		refusals: newRefusalLimiter(time.Now),
	}
	bootstrapKey, err := loadOrCreateBootstrapKey(l)
	if err != nil {
		return nil, err
	}
	a.bootstrap = newBootstrapProvisioner(bootstrapKey, a.operationalLifetime())
	kmsKey := ""
	if cfg.KMS != "" {
		kmsKey = cfg.IntermediateKey
	}
	signer, err := a.openSigner(ctx, l.IntermediateKey(), kmsKey)
	if err != nil {
		a.Close()
		return nil, err
	}
	if a.issuing, err = newIssuingCA(cfg.IssuerGeneration, chain[0], signer); err != nil {
		a.Close()
		return nil, err
	}
	if err := a.openRetired(ctx); err != nil {
		a.Close()
		return nil, err
	}
	httpURL := cfg.PublicHTTPURL
	if httpURL == "" {
		httpURL = opts.PublicHTTPURL
	}
	if httpURL == "" {
		a.Close()
		return nil, errors.New("no public HTTP URL for OCSP and CRL: set public_http_url in config.json")
	}
	httpURL = strings.TrimRight(httpURL, "/")
	soft, err := softcas.New(ctx, casapi.Options{CertificateChain: chain, Signer: signer})
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("create signer: %w", err)
	}
	if a.issuer, err = newIssuer(soft, httpURL, httpURL+CRLPath(cfg.IssuerGeneration), cfg.CRLShards); err != nil {
		a.Close()
		return nil, err
	}
	if err := a.openRevocation(ctx, httpURL); err != nil {
		a.Close()
		return nil, err
	}
	if err := a.rebuild(); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// rebuild makes a new step-ca authority from the current station list and
// swaps it in; requests in flight finish on the old one.
func (a *Authority) rebuild() error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	stamp := fileStamp(a.layout.Stations())
	stations, err := Stations(a.layout.Dir)
	if err != nil {
		return err
	}
	lifetime := a.cfg.IDevIDLifetime.Duration
	var provs provisioner.List
	for _, s := range stations {
		provs = append(provs, newStationProvisioner(s, lifetime))
	}
	provs = append(provs, a.bootstrap)
	apiAddr := a.opts.APIAddr
	if apiAddr == "" {
		apiAddr = a.cfg.APIAddr
	}
	cfg := &config.Config{
		Root:             []string{a.layout.RootCert()},
		IntermediateCert: a.layout.IntermediateCert(),
		IntermediateKey:  a.layout.IntermediateKey(),
		Address:          apiAddr,
		DNSNames:         a.cfg.Hostnames,
		AuthorityConfig: &config.AuthConfig{
			Provisioners: provs,
			Backdate:     &provisioner.Duration{Duration: backdate},
			// step-ca refuses tokens issued before the authority started, a
			// stopgap for stores that forget used tokens. gwpki's store
			// keeps them, and rebuilds the authority when stations change,
			// which would otherwise void every token a line had prepared.
			DisableIssuedAtCheck: true,
		},
	}
	auth, err := authority.New(cfg,
		authority.WithDatabase(a.db),
		authority.WithX509CAService(a.issuer),
		authority.WithMeter(a.metrics),
		authority.WithQuietInit(),
	)
	if err != nil {
		return fmt.Errorf("build authority: %w", err)
	}
	st := &state{step: auth, stations: map[string]*stationProvisioner{}, signAudiences: cfg.GetAudiences().Sign}
	for _, p := range provs {
		if sp, ok := p.(*stationProvisioner); ok {
			st.stations[sp.Key.KeyID] = sp
		}
	}
	a.current.Store(st)
	a.stationsStamp = stamp
	return nil
}

// reloadIfChanged rebuilds the authority when stations.json changed since
// the last build; it is cheap enough to call every second.
func (a *Authority) reloadIfChanged() error {
	a.reloadMu.Lock()
	changed := !fileStamp(a.layout.Stations()).Equal(a.stationsStamp)
	a.reloadMu.Unlock()
	if !changed {
		return nil
	}
	if err := a.rebuild(); err != nil {
		return err
	}
	a.log.Info("stations reloaded")
	return nil
}

// WatchStations polls the station list every interval until ctx ends, so a
// `gwpki station add` or `disable` takes effect without a restart.
func (a *Authority) WatchStations(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.reloadIfChanged(); err != nil {
				a.log.Error("reload stations", "err", err)
			}
		}
	}
}

// PruneUsedTokens forgets, every interval until ctx ends, the station
// tokens that expired long enough ago that the sign handler refuses them
// anyway, so the record of used tokens stays the size of a few minutes of
// issuance.
func (a *Authority) PruneUsedTokens(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			before := time.Now().Add(-2 * tokenLeeway)
			for {
				n, err := a.db.PruneStationTokens(before, 10000)
				if err != nil {
					a.log.Error("prune used tokens", "err", err)
				}
				if err != nil || n < 10000 {
					break
				}
			}
		}
	}
}

func fileStamp(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// Routes mounts step-ca's API on r at / and /1.0, as step-ca does.
func (a *Authority) Routes(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(a.withStepContext, a.metrics.measure, limitBody, a.refusals.limitRefused)
		routes := func(r chi.Router) {
			api.Route(r)
			r.Post("/sign", a.sign) // replaces step-ca's; see sign.go
		}
		routes(r)
		r.Route("/1.0", routes)
	})
}

// withStepContext puts the current authority and its database into the
// request context, where step-ca's handlers look for them.
func (a *Authority) withStepContext(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := authority.NewContext(r.Context(), a.current.Load().step)
		ctx = stepdb.NewContext(ctx, a.db)
		ctx = steplog.WithErrorLogger(ctx, a.logRefusal)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// logRefusal logs why step-ca refused a request. step-ca answers with a
// deliberately vague message (no oracle for token guessers), so the cause,
// such as "station line1 is disabled", is only in the server log.
func (a *Authority) logRefusal(_ http.ResponseWriter, r *http.Request, err error) {
	a.log.Warn("request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "err", err.Error())
}

func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxRequestBody {
			http.Error(w, `{"status":413,"message":"request body too large"}`, http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBody)
		next.ServeHTTP(w, r)
	})
}

// TLSConfig returns the HTTPS listener's configuration: TLS 1.2 or newer, a
// server certificate issued by this CA and renewed by the server until ctx
// ends, and client certificates requested (not required) so that step-ca's
// /renew works over mutual TLS.
func (a *Authority) TLSConfig(ctx context.Context) (*tls.Config, error) {
	sc := &serverCert{issuer: a.issuer, hostnames: a.cfg.Hostnames, lifetime: a.cfg.ServerCertLifetime.Duration}
	if _, err := sc.issue(); err != nil {
		return nil, err
	}
	a.serverCert = sc
	go sc.renewLoop(ctx, func(err error) { a.log.Error("renew server certificate", "err", err) })
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: sc.get,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      a.trustPool(),
	}, nil
}

// Healthy reports why the CA cannot serve, or nil: the server certificate
// must be current (its renewal works) and the issuing CA unexpired.
func (a *Authority) Healthy() error {
	now := time.Now()
	if a.serverCert != nil {
		if leaf := a.serverCert.current.Load().Leaf; now.After(leaf.NotAfter) {
			return errors.New("server certificate expired: renewal is failing")
		}
	}
	if now.After(a.issuer.notAfter) {
		return errors.New("issuing CA certificate expired")
	}
	return nil
}

// Close releases the KMS. The store is the caller's to close.
func (a *Authority) Close() error {
	if a.km != nil {
		return a.km.Close()
	}
	return nil
}
