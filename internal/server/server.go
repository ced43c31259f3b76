// Package server assembles gwpki serve: it opens the data directory, builds
// the CA and the account service on one store, and runs the HTTPS API
// listener and the plain HTTP listener until its context ends.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/net/netutil"

	"github.com/gwpki/gwpki/bootstrap"
	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/internal/audit"
	"github.com/gwpki/gwpki/internal/httpapi"
	"github.com/gwpki/gwpki/internal/store"
	"github.com/gwpki/gwpki/telemetry"
)

// Options are the settings of [Run]; empty fields take the data directory's
// configuration.
type Options struct {
	Dir          string
	APIAddr      string
	HTTPAddr     string
	MQTTAddr     string
	PasswordFile string
	// ReadyFile, when set, receives a JSON [Ready] once every listener is up.
	ReadyFile string
	// Out receives the start-up banner (where things listen, what next).
	Out    io.Writer
	Logger *slog.Logger
}

// maxConns caps the open connections of each listener.
const maxConns = 4096

// Ready is what [Run] writes to Options.ReadyFile.
type Ready struct {
	APIURL  string `json:"api_url"`
	HTTPURL string `json:"http_url"`
	MQTTURL string `json:"mqtt_url"`
	PID     int    `json:"pid"`
}

// Run serves until ctx ends, then shuts down cleanly: listeners stop
// accepting, requests in flight finish, the store commits and closes.
func Run(ctx context.Context, opts Options) error {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	log := opts.Logger
	// Background work (station reloads, certificate renewal) ends with Run.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if !ca.Initialized(opts.Dir) {
		res, err := Init(ctx, opts.Dir, InitOptions{})
		if err != nil {
			return err
		}
		printInit(opts.Out, opts.Dir, res)
	}
	cfg, err := ca.LoadConfig(opts.Dir)
	if err != nil {
		return err
	}
	if err := cfg.MQTTLimits.Validate(); err != nil {
		return fmt.Errorf("%s: %w", ca.Layout{Dir: opts.Dir}.Config(), err)
	}
	var password []byte
	if opts.PasswordFile != "" {
		if password, err = ca.ReadPasswordFile(opts.PasswordFile); err != nil {
			return err
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	st, err := openStore(opts.Dir, cfg.CommitLinger.Duration, reg)
	if err != nil {
		return err
	}
	defer shutdownStep(log, "close the store (gwpki.db)", st.Close)

	apiLn, err := net.Listen("tcp", pick(opts.APIAddr, cfg.APIAddr))
	if err != nil {
		return fmt.Errorf("listen for the API: %w", err)
	}
	defer apiLn.Close()
	httpLn, err := net.Listen("tcp", pick(opts.HTTPAddr, cfg.HTTPAddr))
	if err != nil {
		return fmt.Errorf("listen for HTTP: %w", err)
	}
	defer httpLn.Close()
	apiURL := "https://" + hostPort(cfg.Hostnames[0], apiLn.Addr())
	httpURL := "http://" + hostPort(cfg.Hostnames[0], httpLn.Addr())

	auth, err := ca.Open(ctx, opts.Dir, st, ca.Options{
		Password:      password,
		PublicHTTPURL: httpURL,
		APIAddr:       apiLn.Addr().String(),
		Registerer:    reg,
		Logger:        log,
	})
	if err != nil {
		return err
	}
	defer shutdownStep(log, "close the CA", auth.Close)
	auditLog, err := audit.New(st, audit.WithLogger(log))
	if err != nil {
		return err
	}
	accounts, err := claim.NewAccounts(st, claim.WithLogger(log), claim.WithAudit(auditLog), claim.WithRegisterer(reg))
	if err != nil {
		return err
	}
	// Made by init; a data directory from before the registry gets it here.
	claimKey, err := claim.LoadOrCreateClaimKey(ca.Layout{Dir: opts.Dir}.ClaimKey())
	if err != nil {
		return err
	}
	registry, err := claim.NewRegistry(st, claimKey, auditLog, claim.WithLogger(log))
	if err != nil {
		return err
	}
	// A station may not reissue a claimed or decommissioned gateway: the
	// CA asks the registry before signing, the registry the CA when the
	// reissue is registered (docs/provisioning.md, "Reissuing").
	auth.SetClaimed(gatewayClaimed(registry))
	registry.SetRetiredCheck(func(_ context.Context, serial string) (bool, error) {
		return auth.BirthCertificateRetired(serial)
	})
	attempts, err := claim.NewAttempts(st, claimLimits(cfg.ClaimLimits), claim.WithLogger(log), claim.WithRegisterer(reg))
	if err != nil {
		return err
	}
	claims, err := claim.NewClaims(registry, attempts, auditLog, auth.RevokeOperational, claim.WithLogger(log), claim.WithRegisterer(reg))
	if err != nil {
		return err
	}
	auditRevocations(ctx, auth.Revocations(), auditLog, registry, log)
	tlsConfig, err := auth.TLSConfig(ctx)
	if err != nil {
		return err
	}

	api := chi.NewRouter()
	accounts.Routes(api)
	operator := accounts.RequireRole(claim.RoleOperator)
	auth.RevocationRoutes(api, actor, operator, ownsRevocationTarget(auth, registry))
	auditLog.Routes(api, auditScope, accounts.RequireRole(claim.RoleOperator))
	registry.Routes(api, stationAuth(auth), verifyBirthCert(auth), operator, apiURL+"/v1/bootstrap")
	claims.Routes(api, accounts.RequireRole(claim.RoleInstaller, claim.RoleOperator), operator, gatewayAuth(auth))
	telemetryStore, err := openTelemetry(opts.Dir, cfg, reg, log)
	if err != nil {
		return err
	}
	defer shutdownStep(log, "close the telemetry store", telemetryStore.Close)
	go telemetryStore.Run(ctx)
	api.With(accounts.RequireRole(claim.RoleAdmin)).Get("/v1/backup", backupHandler(opts.Dir, st, telemetryStore, auditLog, log))
	seen := newLastSeen(telemetryStore)
	mqttBroker, err := newBroker(pick(opts.MQTTAddr, cfg.MQTTAddr), cfg.MQTTLimits, auth, tlsConfig, seen, claims, registry, reg, log)
	if err != nil {
		return fmt.Errorf("listen for MQTT: %w", err)
	}
	// Bounded like the other steps: Close runs once, so a hung first call
	// would hold this one too.
	defer shutdownStep(log, "close the MQTT broker", mqttBroker.Close)
	registry.SetFleetSources(fleetSources(auth, mqttBroker, telemetryStore, seen, attempts, time.Now))
	mqttURL := "mqtts://" + hostPort(cfg.Hostnames[0], mqttBroker.Addr())
	pool, err := mqttPool(cfg, mqttURL)
	if err != nil {
		return err
	}
	boot := bootstrap.New(auth, registered(registry), pool, log)
	if err := boot.RegisterMetrics(reg); err != nil {
		return err
	}
	boot.Routes(api)
	api.With(operator, registry.Owned).Get("/v1/devices/{serial}/telemetry", telemetryStore.Handler("serial"))
	auth.Routes(api)
	apiSrv := &http.Server{
		Handler:           api,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	httpSrv := &http.Server{
		Handler:           plainRoutes(auth, &storeHealth{st: st}, reg),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}

	go auth.WatchStations(ctx, 500*time.Millisecond)
	go auth.PruneUsedTokens(ctx, time.Minute)
	go func() {
		if err := auth.RunRevocation(ctx); err != nil && ctx.Err() == nil {
			log.Error("revocation status service stopped", "err", err)
		}
	}()

	errc := make(chan error, 3)
	go func() { errc <- mqttBroker.Start(ctx) }()
	// Past maxConns, new connections wait in the kernel's backlog instead of
	// costing goroutines and TLS state.
	go func() { errc <- serveErr(apiSrv.ServeTLS(netutil.LimitListener(apiLn, maxConns), "", "")) }()
	go func() { errc <- serveErr(httpSrv.Serve(netutil.LimitListener(httpLn, maxConns))) }()

	if opts.ReadyFile != "" {
		b, _ := json.Marshal(Ready{APIURL: apiURL, HTTPURL: httpURL, MQTTURL: mqttURL, PID: os.Getpid()})
		if err := writeFile(opts.ReadyFile, b); err != nil {
			return fmt.Errorf("write ready file: %w", err)
		}
	}
	printBanner(opts.Out, opts.Dir, apiURL, httpURL, mqttURL)

	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	log.Info("shutting down")
	shutdownCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	err = errors.Join(err,
		shutdownStep(log, "shut down the API server", func() error { return apiSrv.Shutdown(shutdownCtx) }),
		shutdownStep(log, "shut down the HTTP server", func() error { return httpSrv.Shutdown(shutdownCtx) }),
		shutdownStep(log, "close the MQTT broker", mqttBroker.Close))
	return err
}

// shutdownStepLimit bounds each step of Run's shutdown.
const shutdownStepLimit = 12 * time.Second

// shutdownStep runs one step of the shutdown. If it has not returned
// within shutdownStepLimit it logs an error naming the step and returns
// one, leaving the step running: a step that hangs then names itself
// instead of keeping Run (and gwpki serve on SIGTERM) from returning.
func shutdownStep(log *slog.Logger, name string, fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	t := time.NewTimer(shutdownStepLimit)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		log.Error("shutdown step did not finish in time; going on without it", "step", name, "limit", shutdownStepLimit)
		return fmt.Errorf("shutdown: %s did not finish within %v", name, shutdownStepLimit)
	}
}

// openStore opens the data directory's database, reporting group commits.
func openStore(dir string, linger time.Duration, reg prometheus.Registerer) (*store.DB, error) {
	batch := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "gwpki_store_commit_batch_size",
		Help:    "Updates per durable commit (group commit).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 11),
	})
	took := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "gwpki_store_commit_duration_seconds",
		Help:    "Time to apply and fsync one commit.",
		Buckets: prometheus.ExponentialBuckets(0.0002, 2, 12),
	})
	reg.MustRegister(batch, took)
	st, err := store.Open(ca.Layout{Dir: dir}.Database(), store.Options{
		Linger: linger,
		OnCommit: func(n int, d time.Duration) {
			batch.Observe(float64(n))
			took.Observe(d.Seconds())
		},
	})
	if err != nil {
		return nil, err
	}
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "gwpki_store_commit_errors_total",
		Help: "Commits of gwpki.db that failed (bbolt's write or fsync, or a transaction that could not begin); every update of the batch got the error.",
	}, func() float64 { return float64(st.CommitErrors()) }))
	return st, nil
}

// openTelemetry opens the telemetry store, its own bbolt file, reporting
// its group commits.
func openTelemetry(dir string, cfg *ca.Config, reg prometheus.Registerer, log *slog.Logger) (*telemetry.Store, error) {
	batch := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "gwpki_telemetry_commit_batch_size",
		Help:    "Telemetry messages per durable commit (group commit).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 12),
	})
	reg.MustRegister(batch)
	return telemetry.Open(ca.Layout{Dir: dir}.Telemetry(), telemetry.Options{
		Linger:    cfg.CommitLinger.Duration,
		Retention: cfg.TelemetryRetention.Duration,
		Logger:    log,
		OnCommit:  func(n int, _ time.Duration) { batch.Observe(float64(n)) },
	})
}

// plainRoutes are the unauthenticated HTTP listener's: health and metrics.
// OCSP and CRLs join them with revocation (issue 3).
func plainRoutes(auth *ca.Authority, st *storeHealth, reg *prometheus.Registry) http.Handler {
	r := chi.NewRouter()
	r.Get("/healthz", healthHandler(auth.Healthy, st.check))
	r.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	auth.RevocationStatusRoutes(r)
	// OCSP is the listener's hot path (tens of thousands of answers a
	// second): it skips the router.
	ocsp := auth.OCSPHandler()
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if p := req.URL.Path; p == "/ocsp" || strings.HasPrefix(p, "/ocsp/") {
			ocsp.ServeHTTP(w, req)
			return
		}
		r.ServeHTTP(w, req)
	})
}

// healthHandler answers /healthz: 200 {"status":"ok"} when every check
// passes, else 503 {"status":"unavailable","reason":...} with the first
// failure.
func healthHandler(certs func() error, store func(context.Context) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := certs()
		if err == nil {
			err = store(r.Context())
		}
		if err != nil {
			httpapi.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": err.Error()})
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
}

// storeProbeInterval is the least time between two probe commits of an
// unhealthy store.
const storeProbeInterval = 10 * time.Second

// storeHealth is the store's part of /healthz. It reads what the
// committer last saw (store.DB.Health), so a health check writes nothing
// while the store is well. Once a commit has failed it stays unhealthy
// until a commit succeeds; on an idle server none might for hours, so then
// the check tries an empty commit itself, at most every
// storeProbeInterval.
type storeHealth struct {
	st *store.DB

	mu        sync.Mutex
	lastProbe time.Time
}

func (h *storeHealth) check(ctx context.Context) error {
	err := h.st.Health()
	if err == nil || errors.Is(err, store.ErrClosed) || errors.Is(err, store.ErrStalled) {
		// A probe would queue behind a stalled commit, and a closed
		// store takes none.
		return storeErr(err)
	}
	h.mu.Lock()
	due := time.Since(h.lastProbe) >= storeProbeInterval
	if due {
		h.lastProbe = time.Now()
	}
	h.mu.Unlock()
	if !due {
		return storeErr(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if perr := h.st.Update(ctx, func(*bolt.Tx) error { return nil }); perr != nil {
		return storeErr(perr)
	}
	return storeErr(h.st.Health())
}

func storeErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("store cannot commit: %w", err)
}

// actor names the authenticated user of r for the audit log.
func actor(r *http.Request) string {
	if u, ok := claim.UserFromContext(r.Context()); ok {
		return audit.UserActor(u.Username)
	}
	return "unknown"
}

func serveErr(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func pick(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// hostPort joins the public host name with the port actually listened on.
func hostPort(host string, addr net.Addr) string {
	port := 0
	if ta, ok := addr.(*net.TCPAddr); ok {
		port = ta.Port
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// stationAuth authenticates a line station's registration: a one-time
// token signed by its key for <api>/v1/devices.
func stationAuth(auth *ca.Authority) claim.StationAuth {
	return func(r *http.Request) (string, error) {
		sr, err := auth.AuthenticateStation(r, "/v1/devices")
		if err != nil {
			return "", err
		}
		return sr.Station, nil
	}
}

// verifyBirthCert checks the birth certificate a station registers.
func verifyBirthCert(auth *ca.Authority) claim.CertVerifier {
	return func(ctx context.Context, pemCert []byte) (claim.CertInfo, error) {
		bc, err := auth.VerifyBirthCertificate(ctx, pemCert)
		if err != nil {
			return claim.CertInfo{}, err
		}
		return claim.CertInfo{Serial: bc.Serial, GatewaySerial: bc.Gateway, Station: bc.Station, NotAfter: bc.NotAfter}, nil
	}
}
