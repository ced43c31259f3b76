package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gwpki/gwpki/bench/internal/harness"
	"github.com/gwpki/gwpki/bootstrap"
	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/provisioning"
)

// stationName is the station the gateways are provisioned through.
const stationName = "bench"

// gwpki is a running `gwpki serve` with the fields of its ready file.
type gwpki struct {
	*process
	version string
	dataDir string
	apiURL  string // https://127.0.0.1:PORT
	httpURL string // http://127.0.0.1:PORT
	mqttURL string // mqtts://127.0.0.1:PORT, empty when this gwpki has no broker
}

// readyInfo is what `gwpki serve --ready-file` writes once it listens.
type readyInfo struct {
	APIURL  string `json:"api_url"`
	HTTPURL string `json:"http_url"`
	MQTTURL string `json:"mqtt_url"`
	PID     int    `json:"pid"`
}

// gwpkiVersion is the last word of `gwpki --version`.
func gwpkiVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return "unknown"
	}
	return f[len(f)-1]
}

// hasFlag reports whether `bin args... --help` mentions flag.
func hasFlag(ctx context.Context, bin, flag string, args ...string) bool {
	out, _ := exec.CommandContext(ctx, bin, append(args, "--help")...).CombinedOutput()
	return bytes.Contains(out, []byte(flag))
}

// initGwpki creates gwpki's data directory and the "bench" station
// (dataDir/station.json).
func initGwpki(ctx context.Context, bin, dataDir, work string) error {
	if _, err := harness.RunQuiet(ctx, filepath.Join(work, "gwpki-init.log"), nil, bin,
		"init", "--dir", dataDir, "--hostname", "127.0.0.1"); err != nil {
		return err
	}
	_, err := harness.RunQuiet(ctx, filepath.Join(work, "gwpki-station.log"), nil, bin,
		"station", "add", stationName, "--dir", dataDir, "--out", filepath.Join(dataDir, "station.json"))
	return err
}

// startGwpki starts `gwpki serve` on loopback ports chosen by the kernel and
// waits for its ready file and GET /healthz.
func startGwpki(ctx context.Context, bin, dataDir, work string, env []string) (*gwpki, error) {
	readyFile := filepath.Join(work, "gwpki-ready.json")
	os.Remove(readyFile)
	args := []string{"serve", "--dir", dataDir,
		"--api-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--ready-file", readyFile}
	if hasFlag(ctx, bin, "--mqtt-addr", "serve") {
		// A port of our own rather than :0, which the bootstrap service's
		// endpoint pool may refuse to announce.
		port, err := harness.FreePort()
		if err != nil {
			return nil, err
		}
		args = append(args, "--mqtt-addr", fmt.Sprintf("127.0.0.1:%d", port))
	}
	p, err := startProcess("gwpki serve", bin, filepath.Join(work, "gwpki-serve.log"), env, args...)
	if err != nil {
		return nil, err
	}
	g := &gwpki{process: p, version: gwpkiVersion(ctx, bin), dataDir: dataDir}
	deadline := time.Now().Add(startTimeout)
	for {
		var info readyInfo
		b, err := os.ReadFile(readyFile)
		if err == nil && json.Unmarshal(b, &info) == nil && info.APIURL != "" && info.HTTPURL != "" {
			g.apiURL = strings.TrimSuffix(info.APIURL, "/")
			g.httpURL = strings.TrimSuffix(info.HTTPURL, "/")
			g.mqttURL = info.MQTTURL
			break
		}
		if p.exited() {
			return nil, p.failure("exited before writing its ready file")
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			p.stop()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, p.failure(fmt.Sprintf("wrote no ready file in %s", startTimeout))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := g.waitHealthy(ctx); err != nil {
		p.stop()
		return nil, err
	}
	return g, nil
}

// waitHealthy polls GET <http_url>/healthz until it answers 200.
func (g *gwpki) waitHealthy(ctx context.Context) error {
	if err := harness.WaitHealthy(ctx, g.httpURL, startTimeout, g.exited); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return g.failure(err.Error())
	}
	return nil
}

// mqttAddr is host:port of the broker's mqtts:// URL.
func (g *gwpki) mqttAddr() (string, error) {
	u, err := url.Parse(g.mqttURL)
	if err != nil || u.Scheme != "mqtts" || u.Host == "" {
		return "", fmt.Errorf("gwpki ready file: mqtt_url %q is not an mqtts:// URL", g.mqttURL)
	}
	return u.Host, nil
}

// provision makes n gateways (MQ-000001...) with provisioning.RunBatch, as
// `gwpki provision` does, labels off; their bundles go to out.
func (g *gwpki) provision(ctx context.Context, n int, out string) ([]string, error) {
	station, err := provisioning.LoadStation(filepath.Join(g.dataDir, "station.json"))
	if err != nil {
		return nil, err
	}
	rootPEM, err := os.ReadFile(ca.Layout{Dir: g.dataDir}.RootCert())
	if err != nil {
		return nil, err
	}
	const conc = 128
	client, err := provisioning.NewClient(g.apiURL, rootPEM, station, conc)
	if err != nil {
		return nil, err
	}
	serials := make([]string, n)
	for i := range serials {
		serials[i] = fmt.Sprintf("MQ-%06d", i+1)
	}
	sum, err := provisioning.RunBatch(ctx, provisioning.BatchOptions{
		Client: client, Serials: serials, Model: "M1", Out: out, Concurrency: conc,
	})
	if err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	if sum.Done != n {
		return nil, fmt.Errorf("provision: %d of %d gateways provisioned, %d failed", sum.Done, n, sum.Failed)
	}
	return serials, nil
}

// gateway is one gateway of the benchmark with its operational certificate.
type gateway struct {
	serial string
	topic  string // gw/<serial>/telemetry
	cert   tls.Certificate
}

// bootstrapAll bootstraps every gateway of bundles/<serial> (POST
// /v1/bootstrap over mTLS with its birth certificate and a CSR for a fresh
// P-256 key), conc at a time, and keeps the operational certificates and
// keys in memory.
func (g *gwpki) bootstrapAll(ctx context.Context, bundles string, serials []string, roots *x509.CertPool, conc int) ([]*gateway, error) {
	gws := make([]*gateway, len(serials))
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	for range min(conc, len(serials)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(serials) || ctx.Err() != nil {
					return
				}
				gw, err := g.bootstrapOne(ctx, filepath.Join(bundles, serials[i]), serials[i], roots)
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("bootstrap %s: %w", serials[i], err) })
					next.Store(int64(len(serials)))
					return
				}
				gws[i] = gw
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return gws, ctx.Err()
}

func (g *gwpki) bootstrapOne(ctx context.Context, bundle, serial string, roots *x509.CertPool) (*gateway, error) {
	birth, err := tls.LoadX509KeyPair(filepath.Join(bundle, provisioning.CertFile), filepath.Join(bundle, provisioning.KeyFile))
	if err != nil {
		return nil, fmt.Errorf("read the bundle: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := provisioning.GatewayCSR(serial, key)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(bootstrap.Request{CSR: string(csr)})
	if err != nil {
		return nil, err
	}
	// One transport per gateway: a pooled connection would carry another
	// gateway's certificate.
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{birth}, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.apiURL+"/v1/bootstrap", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: tr, Timeout: time.Minute}).Do(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b[:min(len(b), 300)]))
	}
	var ans bootstrap.Answer
	if err := json.Unmarshal(b, &ans); err != nil {
		return nil, fmt.Errorf("decode the answer: %w", err)
	}
	cert := tls.Certificate{PrivateKey: key}
	rest := []byte(ans.Certificate)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "CERTIFICATE" {
			cert.Certificate = append(cert.Certificate, block.Bytes)
		}
	}
	if len(cert.Certificate) == 0 {
		return nil, errors.New("the answer holds no certificate")
	}
	if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
		return nil, fmt.Errorf("parse the operational certificate: %w", err)
	}
	if cert.Leaf.Subject.CommonName != serial || ans.MQTT.ClientID != serial {
		return nil, fmt.Errorf("operational certificate for %q, client ID %q; want %q", cert.Leaf.Subject.CommonName, ans.MQTT.ClientID, serial)
	}
	return &gateway{serial: serial, topic: "gw/" + serial + "/telemetry", cert: cert}, nil
}

// apiClient is an operator's session on gwpki's API.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// login logs in as the first admin (its password in
// <dir>/secrets/admin_password) with POST /v1/login.
func (g *gwpki) login(ctx context.Context, roots *x509.CertPool) (*apiClient, error) {
	pw, err := os.ReadFile(ca.Layout{Dir: g.dataDir}.AdminPassword())
	if err != nil {
		return nil, err
	}
	c := &apiClient{base: g.apiURL, http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
	}}}
	var ans struct {
		Token string `json:"token"`
	}
	body, _ := json.Marshal(map[string]string{"username": "admin", "password": strings.TrimSpace(string(pw))})
	if err := c.do(ctx, http.MethodPost, "/v1/login", body, &ans); err != nil {
		return nil, err
	}
	if ans.Token == "" {
		return nil, errors.New("POST /v1/login: no token in the answer")
	}
	c.token = ans.Token
	return c, nil
}

func (c *apiClient) do(ctx context.Context, method, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b[:min(len(b), 300)]))
	}
	return json.Unmarshal(b, out)
}

// countTelemetry counts the messages gwpki stored for serial on topic,
// following GET /v1/devices/<serial>/telemetry's pages.
func (c *apiClient) countTelemetry(ctx context.Context, serial, topic string) (int, error) {
	n := 0
	after := ""
	for {
		q := url.Values{"limit": {"1000"}, "topic": {topic}}
		if after != "" {
			q.Set("after", after)
		}
		var page struct {
			Messages []json.RawMessage `json:"messages"`
			Next     string            `json:"next"`
		}
		if err := c.do(ctx, http.MethodGet, "/v1/devices/"+url.PathEscape(serial)+"/telemetry?"+q.Encode(), nil, &page); err != nil {
			return n, err
		}
		n += len(page.Messages)
		if page.Next == "" || len(page.Messages) == 0 {
			return n, nil
		}
		after = page.Next
	}
}
