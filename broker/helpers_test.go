package broker

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/gwpki/gwpki/internal/testpki"
	"github.com/gwpki/gwpki/telemetry"
)

// nextSerial numbers the test leaves; the testpki CAs use serial 1.
var nextSerial atomic.Int64

func init() { nextSerial.Store(1000) }

// leaf is an issued test certificate with its key, also written as PEM
// files for the command-line peers.
type leaf struct {
	Cert     *x509.Certificate
	TLS      tls.Certificate
	Serial   string // decimal certificate serial
	CertFile string
	KeyFile  string
}

// issue signs a certificate for cn with ca; gateway leaves (server false)
// carry clientAuth, the server leaf serverAuth and 127.0.0.1.
func issue(tb testing.TB, ca *testpki.CA, cn string, server bool) *leaf {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	serial := big.NewInt(nextSerial.Add(1))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, SerialNumber: cn},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"localhost"}
	} else {
		u, _ := url.Parse("urn:gwpki:gateway:" + cn)
		tmpl.URIs = []*url.URL{u}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	l := &leaf{
		Cert:     cert,
		TLS:      tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert},
		Serial:   serial.String(),
		CertFile: filepath.Join(dir, "cert.pem"),
		KeyFile:  filepath.Join(dir, "key.pem"),
	}
	writeFile(tb, l.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(tb, l.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	return l
}

func writeFile(tb testing.TB, name string, b []byte) {
	tb.Helper()
	if err := os.WriteFile(name, b, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// authority is the fake CA check: it accepts the certificate serials listed
// as operational and refuses every other (birth certificates, unknown,
// revoked).
type authority struct {
	mu          sync.Mutex
	operational map[string]string // certificate serial -> gateway
	revoked     map[string]bool
	calls       []string // certificate serials asked about
}

func newAuthority() *authority {
	return &authority{operational: map[string]string{}, revoked: map[string]bool{}}
}

func (a *authority) allow(l *leaf) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.operational[l.Serial] = l.Cert.Subject.CommonName
}

func (a *authority) revoke(l *leaf) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.revoked[l.Serial] = true
}

func (a *authority) asked(serial string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Contains(a.calls, serial)
}

func (a *authority) Authenticate(c *x509.Certificate) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := c.SerialNumber.String()
	a.calls = append(a.calls, s)
	if a.revoked[s] {
		return "", errors.New("certificate revoked")
	}
	gw, ok := a.operational[s]
	if !ok {
		return "", errors.New("not an operational certificate")
	}
	return gw, nil
}

// memSink keeps messages in memory. fail makes Append fail; block, when
// set, makes Append wait for it to close (or ctx) after signalling entered.
type memSink struct {
	mu      sync.Mutex
	msgs    []telemetry.Message
	fail    atomic.Bool
	block   chan struct{}
	entered chan struct{}
}

func (s *memSink) Append(ctx context.Context, m telemetry.Message) error {
	if s.block != nil {
		select {
		case s.entered <- struct{}{}:
		default:
		}
		select {
		case <-s.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s.fail.Load() {
		return errors.New("disk full")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	return nil
}

func (s *memSink) messages() []telemetry.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

// find returns the stored message on topic with payload, if any.
func (s *memSink) find(topic string, payload []byte) (telemetry.Message, bool) {
	for _, m := range s.messages() {
		if m.Topic == topic && bytes.Equal(m.Payload, payload) {
			return m, true
		}
	}
	return telemetry.Message{}, false
}

// env is a running broker with its PKI.
type env struct {
	ca      *testpki.CA
	caFile  string
	auth    *authority
	sink    *memSink
	broker  *Broker
	log     *bytes.Buffer
	logMu   *sync.Mutex
	claimed sync.Map // gateway -> true
	pressed chan string
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// logs returns what the broker logged so far.
func (e *env) logs() string {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	return e.log.String()
}

// newEnv starts a broker on 127.0.0.1:0; edit adjusts its options.
func newEnv(tb testing.TB, edit func(*Options)) *env {
	tb.Helper()
	ca := testpki.NewCA(tb, "test issuing CA")
	e := &env{
		ca:      ca,
		caFile:  filepath.Join(tb.TempDir(), "ca.pem"),
		auth:    newAuthority(),
		sink:    &memSink{},
		log:     new(bytes.Buffer),
		logMu:   new(sync.Mutex),
		pressed: make(chan string, 4),
	}
	writeFile(tb, e.caFile, ca.PEM)
	srv := issue(tb, ca, "broker", true)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	opts := Options{
		Addr:         "127.0.0.1:0",
		TLSConfig:    &tls.Config{Certificates: []tls.Certificate{srv.TLS}, ClientCAs: pool},
		Authenticate: e.auth.Authenticate,
		Sink:         e.sink,
		OnClaimButton: func(_ context.Context, gw string) error {
			e.pressed <- gw
			return nil
		},
		Claimed: func(_ context.Context, gw string) (bool, error) {
			_, ok := e.claimed.Load(gw)
			return ok, nil
		},
		Logger: slog.New(slog.NewTextHandler(lockedWriter{e.logMu, e.log}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&opts)
	}
	b, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	e.broker = b
	done := make(chan error, 1)
	go func() { done <- b.Start(context.Background()) }()
	tb.Cleanup(func() {
		b.Close()
		if err := <-done; err != nil {
			tb.Errorf("Start: %v", err)
		}
	})
	return e
}

// gateway issues a certificate for serial and lists it as operational.
func (e *env) gateway(tb testing.TB, serial string) *leaf {
	tb.Helper()
	l := issue(tb, e.ca, serial, false)
	e.auth.allow(l)
	return l
}

// port returns the broker's port as a string.
func (e *env) port() string {
	return fmt.Sprint(e.broker.Addr().(*net.TCPAddr).Port)
}

// clientTLS is a gateway's TLS configuration for l.
func (e *env) clientTLS(l *leaf) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(e.ca.Cert)
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if l != nil {
		cfg.Certificates = []tls.Certificate{l.TLS}
	}
	return cfg
}

// pahoOptions are the options of a Go MQTT 3.1.1 client for l with client ID id.
func (e *env) pahoOptions(l *leaf, id string) *paho.ClientOptions {
	return paho.NewClientOptions().
		AddBroker("tls://" + e.broker.Addr().String()).
		SetClientID(id).
		SetTLSConfig(e.clientTLS(l)).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetCleanSession(true).
		SetConnectTimeout(5 * time.Second).
		SetWriteTimeout(5 * time.Second)
}

// connect connects a Go client and fails the test if it cannot.
func (e *env) connect(tb testing.TB, opts *paho.ClientOptions) paho.Client {
	tb.Helper()
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		tb.Fatal("connect: timed out")
	}
	if err := tok.Error(); err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(func() { c.Disconnect(0) })
	return c
}

// eventually polls cond until it holds or d passes.
func eventually(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dialTLS does a gateway's TLS handshake with the broker.
func (e *env) dialTLS(tb testing.TB, l *leaf) *tls.Conn {
	tb.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.broker.Addr().String(), e.clientTLS(l))
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}
