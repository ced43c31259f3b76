package gateway

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/gwpki/gwpki/provisioning"
)

// bootstrapAnswer is the answer of POST /v1/bootstrap.
type bootstrapAnswer struct {
	// Certificate is the PEM chain, leaf first.
	Certificate string       `json:"certificate"`
	Roots       string       `json:"roots"`
	MQTT        MQTTEndpoint `json:"mqtt"`
	RenewAfter  string       `json:"renew_after"`
}

// renewAnswer is step-ca's answer to POST /1.0/renew.
type renewAnswer struct {
	Crt       string   `json:"crt"`
	CA        string   `json:"ca"`
	CertChain []string `json:"certChain"`
}

// bootstrap asks the server for an operational certificate with the
// gateway's birth certificate and a fresh key made here, and keeps them in
// the bundle.
func (a *Agent) bootstrap(ctx context.Context) (*operational, error) {
	idevid, err := a.b.TLSConfig()
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: generate key: %w", err)
	}
	csr, err := provisioning.GatewayCSR(a.b.Serial, key)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	body, _ := json.Marshal(map[string]string{"csr": string(csr)})
	var ans bootstrapAnswer
	if err := a.post(ctx, "bootstrap", "/v1/bootstrap", idevid, body, &ans); err != nil {
		return nil, err
	}
	state := bootstrapState{MQTT: ans.MQTT}
	if state.MQTT.ClientID == "" {
		state.MQTT.ClientID = a.b.Serial
	}
	if u, err := url.Parse(ans.MQTT.URL); err != nil || (u.Scheme != "mqtts" && u.Scheme != "tls" && u.Scheme != "ssl") || u.Host == "" {
		return nil, fmt.Errorf("bootstrap: the answer's MQTT URL %q is not mqtts://host:port", ans.MQTT.URL)
	}
	op, err := newOperational(key, pemChain(ans.Certificate), state)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: the answer's certificate: %w", err)
	}
	if op.leaf.Subject.CommonName != a.b.Serial {
		return nil, fmt.Errorf("bootstrap: the answer's certificate is for %q, not %s", op.leaf.Subject.CommonName, a.b.Serial)
	}
	op.state.RenewAfter = renewAfter(op.leaf)
	if t, err := time.Parse(time.RFC3339, ans.RenewAfter); err == nil {
		op.state.RenewAfter = t
	}
	// The key first: a crash before the certificate is written leaves a
	// key without its certificate, which the next start bootstraps over.
	if err := saveKey(a.b.Dir, key); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if err := op.saveCert(a.b.Dir); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return op, nil
}

// renew asks step-ca to renew the operational certificate, authenticated
// by that certificate; the key stays the same.
func (a *Agent) renew(ctx context.Context, op *operational) (*operational, error) {
	roots, err := a.b.Roots()
	if err != nil {
		return nil, fmt.Errorf("renew: %w", err)
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, Certificates: []tls.Certificate{op.cert}}
	var ans renewAnswer
	if err := a.post(ctx, "renew", "/1.0/renew", conf, nil, &ans); err != nil {
		return nil, err
	}
	chain := pemChain(ans.CertChain...)
	if len(ans.CertChain) == 0 {
		chain = pemChain(ans.Crt, ans.CA)
	}
	next, err := newOperational(op.key, chain, op.state)
	if err != nil {
		return nil, fmt.Errorf("renew: the answer's certificate: %w", err)
	}
	next.state.RenewAfter = renewAfter(next.leaf)
	if err := next.saveCert(a.b.Dir); err != nil {
		return nil, fmt.Errorf("renew: %w", err)
	}
	return next, nil
}

// post sends body (nil: an empty body) to the API path over mutual TLS
// with conf and decodes a 200 answer into out.
func (a *Agent) post(ctx context.Context, op, path string, conf *tls.Config, body []byte, out any) error {
	base, err := a.b.APIURL()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	client := &http.Client{
		Timeout: a.opts.HTTPTimeout,
		// One request, then the connection closes: thousands of agents
		// in one process must not keep idle connections open.
		Transport: &http.Transport{TLSClientConfig: conf, DisableKeepAlives: true, TLSHandshakeTimeout: a.opts.HTTPTimeout},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s: read answer: %w", op, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error   string `json:"error"`
			Message string `json:"message"`
			Hint    string `json:"hint"`
		}
		json.Unmarshal(data, &e)
		if e.Error == "" {
			e.Error = e.Message
		}
		return &ServerError{Op: op, Status: resp.StatusCode, Message: e.Error, Hint: e.Hint}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s: decode answer: %w", op, err)
	}
	return nil
}
