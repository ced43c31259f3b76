// Package gatewaytest runs, inside a test, what a gateway agent talks to: a
// bootstrap service (POST /v1/bootstrap, step-ca's POST /1.0/renew, POST
// /v1/gateway/claim-button) on an httptest TLS server that requires client
// certificates for its answers, and a mochi-mqtt broker with a mutual TLS
// listener, both on 127.0.0.1 and both trusting a throwaway CA (a root from
// internal/testpki and an issuing intermediate). It also writes gateway
// bundles that CA's birth certificates. It stands in for gwpki serve's
// bootstrap endpoint and broker, following the same contract, so the agent
// can be tested on its own.
package gatewaytest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gwpki/gwpki/internal/testpki"
	"github.com/gwpki/gwpki/provisioning"
)

// Message is a PUBLISH the broker received from a gateway.
type Message struct {
	ClientID string
	Topic    string
	Payload  []byte
}

// Connection is a CONNECT the broker accepted.
type Connection struct {
	ClientID string
	// CertSerial is the serial number of the client certificate.
	CertSerial *big.Int
}

// Server is the bootstrap service and the broker.
type Server struct {
	// Root is the trust anchor every bundle gets as root.pem.
	Root *testpki.CA
	// APIURL is the bootstrap service's https://127.0.0.1:port.
	APIURL string
	// MQTTURL is the broker's mqtts://127.0.0.1:port, what bootstrap
	// answers unless SetMQTTURL changed it.
	MQTTURL string
	// Broker is the mochi server, for publishing to gateways.
	Broker *mqtt.Server

	inter    *x509.Certificate
	interKey *ecdsa.PrivateKey
	interPEM string
	api      *httptest.Server

	mu          sync.Mutex
	certLife    time.Duration
	mqttURL     string
	idevids     map[string]string // certificate serial (hex) -> gateway serial
	operational map[string]string
	revoked     map[string]bool // certificate serials
	refused     map[string]bool // gateway serials refused at bootstrap
	refuseRenew bool
	bootstraps  map[string]int // per gateway
	renewals    map[string]int
	buttons     map[string]int
	messages    []Message
	conns       []Connection
	changed     chan struct{}
}

// New starts the service and the broker; t.Cleanup stops them.
func New(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{
		Root:        testpki.NewCA(tb, "gatewaytest root"),
		certLife:    time.Hour,
		idevids:     map[string]string{},
		operational: map[string]string{},
		revoked:     map[string]bool{},
		refused:     map[string]bool{},
		bootstraps:  map[string]int{},
		renewals:    map[string]int{},
		buttons:     map[string]int{},
		changed:     make(chan struct{}),
	}
	interKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	interDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber:          big.NewInt(2),
		Subject:               pkix.Name{CommonName: "gatewaytest issuing CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, s.Root.Cert, &interKey.PublicKey, s.Root.Key)
	if err != nil {
		tb.Fatal(err)
	}
	s.inter, _ = x509.ParseCertificate(interDER)
	s.interKey = interKey
	s.interPEM = encodeCert(interDER)

	serverKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serverDER := s.sign(tb, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotAfter:    time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, serverKey.Public())
	serverCert := tls.Certificate{Certificate: [][]byte{serverDER, interDER}, PrivateKey: serverKey}
	roots := x509.NewCertPool()
	roots.AddCert(s.Root.Cert)

	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/bootstrap", s.handleBootstrap)
	mux.HandleFunc("POST /1.0/renew", s.handleRenew)
	mux.HandleFunc("POST /v1/gateway/claim-button", s.handleButton)
	s.api = httptest.NewUnstartedServer(mux)
	s.api.TLS = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.VerifyClientCertIfGiven, // 401 without one, as the server does
		ClientCAs:    roots,
	}
	s.api.StartTLS()
	tb.Cleanup(s.api.Close)
	s.APIURL = s.api.URL

	s.Broker = mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	if err := s.Broker.AddHook(&hook{s: s}, nil); err != nil {
		tb.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "mqtts", Address: "127.0.0.1:0", TLSConfig: &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    roots,
		// The broker takes operational certificates only, and none revoked.
		VerifyConnection: func(cs tls.ConnectionState) error {
			leaf := cs.PeerCertificates[0]
			s.mu.Lock()
			defer s.mu.Unlock()
			key := leaf.SerialNumber.Text(16)
			if _, ok := s.operational[key]; !ok {
				return errors.New("not an operational certificate")
			}
			if s.revoked[key] {
				return errors.New("revoked")
			}
			return nil
		},
	}})
	if err := s.Broker.AddListener(l); err != nil {
		tb.Fatal(err)
	}
	go s.Broker.Serve()
	tb.Cleanup(func() { s.Broker.Close() })
	s.MQTTURL = "mqtts://" + l.Address()
	s.mqttURL = s.MQTTURL
	return s
}

// WriteBundle writes OUT/<serial> as gwpki provision would: a birth
// certificate from the test CA, its key, root.pem and gateway.json with a
// random claim secret. It returns the folder.
func (s *Server) WriteBundle(tb testing.TB, out, serial string) string {
	tb.Helper()
	dir := filepath.Join(out, serial)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der := s.sign(tb, &x509.Certificate{
		Subject:     pkix.Name{CommonName: serial, SerialNumber: serial},
		URIs:        []*url.URL{{Scheme: "urn", Opaque: "gwpki:gateway:" + serial}},
		NotAfter:    time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, key.Public())
	cert, _ := x509.ParseCertificate(der)
	s.mu.Lock()
	s.idevids[cert.SerialNumber.Text(16)] = serial
	s.mu.Unlock()
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	secret := make([]byte, 32)
	rand.Read(secret)
	gw, _ := json.Marshal(provisioning.Bundle{
		Serial:       serial,
		Model:        "test pump controller",
		BootstrapURL: s.APIURL + "/v1/bootstrap",
		ClaimSecret:  base64.RawURLEncoding.EncodeToString(secret),
		IDevIDSerial: cert.SerialNumber.Text(16),
		NotAfter:     cert.NotAfter,
	})
	for name, data := range map[string][]byte{
		provisioning.KeyFile:     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		provisioning.CertFile:    []byte(encodeCert(der) + s.interPEM),
		provisioning.RootFile:    s.Root.PEM,
		provisioning.GatewayFile: gw,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

// SetCertLife sets the life of the operational certificates issued from
// now on (one hour by default).
func (s *Server) SetCertLife(d time.Duration) {
	s.mu.Lock()
	s.certLife = d
	s.mu.Unlock()
}

// SetMQTTURL changes the broker URL bootstrap answers.
func (s *Server) SetMQTTURL(u string) {
	s.mu.Lock()
	s.mqttURL = u
	s.mu.Unlock()
}

// RefuseGateway makes bootstrap answer 403 to the gateway, as the server
// does for a revoked or decommissioned one.
func (s *Server) RefuseGateway(serial string) {
	s.mu.Lock()
	s.refused[serial] = true
	s.mu.Unlock()
}

// RefuseRenewals makes /1.0/renew answer 401, as step-ca does for a
// certificate it will not renew.
func (s *Server) RefuseRenewals(refuse bool) {
	s.mu.Lock()
	s.refuseRenew = refuse
	s.mu.Unlock()
}

// Revoke revokes an operational certificate and drops the gateway's live
// session, as the server's active revocation does: its next connection
// with that certificate is refused.
func (s *Server) Revoke(certSerial *big.Int) {
	s.mu.Lock()
	key := certSerial.Text(16)
	s.revoked[key] = true
	gateway := s.operational[key]
	s.mu.Unlock()
	if cl, ok := s.Broker.Clients.Get(gateway); ok {
		cl.Stop(errors.New("certificate revoked"))
	}
}

// Bootstraps, Renewals and Buttons count the successful requests of a
// gateway.
func (s *Server) Bootstraps(serial string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bootstraps[serial]
}

func (s *Server) Renewals(serial string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.renewals[serial]
}

func (s *Server) Buttons(serial string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buttons[serial]
}

// Messages returns the messages received on topic so far.
func (s *Server) Messages(topic string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.messages {
		if m.Topic == topic {
			out = append(out, m)
		}
	}
	return out
}

// Connections returns the connections the broker accepted so far.
func (s *Server) Connections() []Connection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.conns)
}

// WaitFor waits up to timeout until cond holds, re-checking whenever the
// server sees something; it fails the test with what otherwise.
func (s *Server) WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			tb.Fatalf("after %s: %s", timeout, what)
		}
	}
}

// notify wakes WaitFor; s.mu is held.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) sign(tb testing.TB, tmpl *x509.Certificate, pub crypto.PublicKey) []byte {
	if tb != nil {
		tb.Helper()
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	tmpl.SerialNumber = serial
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Minute)
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.inter, pub, s.interKey)
	if err != nil {
		if tb != nil {
			tb.Fatal(err)
		}
		panic(err)
	}
	return der
}

func encodeCert(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg, "hint": "gatewaytest"})
}

// clientGateway returns the gateway serial and whether the client
// certificate is operational, or answers the request itself.
func (s *Server) clientGateway(w http.ResponseWriter, r *http.Request) (serial string, operational, ok bool) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		writeError(w, http.StatusUnauthorized, "no client certificate")
		return "", false, false
	}
	key := r.TLS.PeerCertificates[0].SerialNumber.Text(16)
	s.mu.Lock()
	defer s.mu.Unlock()
	if gw, ok := s.idevids[key]; ok {
		return gw, false, true
	}
	if gw, ok := s.operational[key]; ok && !s.revoked[key] {
		return gw, true, true
	}
	writeError(w, http.StatusForbidden, "certificate revoked or unknown")
	return "", false, false
}

// issue signs an operational certificate for pub, life from now.
func (s *Server) issue(serial string, pub crypto.PublicKey) (*x509.Certificate, []byte) {
	s.mu.Lock()
	life := s.certLife
	s.mu.Unlock()
	now := time.Now().Truncate(time.Second)
	der := s.sign(nil, &x509.Certificate{
		Subject:     pkix.Name{CommonName: serial, SerialNumber: serial},
		URIs:        []*url.URL{{Scheme: "urn", Opaque: "gwpki:gateway:" + serial}},
		NotBefore:   now,
		NotAfter:    now.Add(life),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, pub)
	cert, _ := x509.ParseCertificate(der)
	s.mu.Lock()
	s.operational[cert.SerialNumber.Text(16)] = serial
	s.mu.Unlock()
	return cert, der
}

func (s *Server) handleBootstrap(w http.ResponseWriter, r *http.Request) {
	serial, _, ok := s.clientGateway(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	refused := s.refused[serial]
	mqttURL := s.mqttURL
	s.mu.Unlock()
	if refused {
		writeError(w, http.StatusForbidden, "gateway revoked")
		return
	}
	var req struct {
		CSR string `json:"csr"`
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "body is not JSON")
		return
	}
	block, _ := pem.Decode([]byte(req.CSR))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		writeError(w, http.StatusBadRequest, "no PEM CSR")
		return
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil || csr.CheckSignature() != nil {
		writeError(w, http.StatusBadRequest, "bad CSR")
		return
	}
	pub, isEC := csr.PublicKey.(*ecdsa.PublicKey)
	if !isEC || pub.Curve != elliptic.P256() || csr.Subject.CommonName != serial ||
		len(csr.URIs) != 1 || csr.URIs[0].String() != "urn:gwpki:gateway:"+serial {
		writeError(w, http.StatusBadRequest, "CSR is not a P-256 key for CN="+serial+" with its URN")
		return
	}
	cert, der := s.issue(serial, pub)
	s.mu.Lock()
	s.bootstraps[serial]++
	s.notify()
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"certificate": encodeCert(der) + s.interPEM,
		"roots":       string(s.Root.PEM),
		"mqtt":        map[string]string{"url": mqttURL, "client_id": serial},
		"renew_after": cert.NotBefore.Add(cert.NotAfter.Sub(cert.NotBefore) * 2 / 3).Format(time.RFC3339),
	})
}

func (s *Server) handleRenew(w http.ResponseWriter, r *http.Request) {
	serial, operational, ok := s.clientGateway(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	refuse := s.refuseRenew
	s.mu.Unlock()
	if !operational || refuse {
		writeError(w, http.StatusUnauthorized, "renew refused")
		return
	}
	cert, der := s.issue(serial, r.TLS.PeerCertificates[0].PublicKey)
	_ = cert
	s.mu.Lock()
	s.renewals[serial]++
	s.notify()
	s.mu.Unlock()
	leaf := encodeCert(der)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"crt": leaf, "ca": s.interPEM, "certChain": []string{leaf, s.interPEM}})
}

func (s *Server) handleButton(w http.ResponseWriter, r *http.Request) {
	serial, _, ok := s.clientGateway(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	s.buttons[serial]++
	s.notify()
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"serial": serial, "was_locked": true, "failures": 3})
}

// hook lets every certificate the listener accepted in, checks that the
// client ID is the certificate's serial, and records what gateways do.
type hook struct {
	mqtt.HookBase
	s *Server
}

func (h *hook) ID() string { return "gatewaytest" }

func (h *hook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck || b == mqtt.OnPublished
}

func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	tc, ok := cl.Net.Conn.(*tls.Conn)
	if !ok {
		return false
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 || certs[0].Subject.CommonName != cl.ID {
		return false
	}
	h.s.mu.Lock()
	h.s.conns = append(h.s.conns, Connection{ClientID: cl.ID, CertSerial: certs[0].SerialNumber})
	h.s.notify()
	h.s.mu.Unlock()
	return true
}

func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool { return true }

func (h *hook) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	h.s.mu.Lock()
	h.s.messages = append(h.s.messages, Message{ClientID: cl.ID, Topic: pk.TopicName, Payload: slices.Clone(pk.Payload)})
	h.s.notify()
	h.s.mu.Unlock()
}
