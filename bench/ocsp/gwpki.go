package main

import (
	"bytes"
	"context"
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

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/provisioning"
)

// stationName is the station the birth certificates are issued through.
const stationName = "bench"

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
		"station", "add", stationName, "--dir", dataDir,
		"--out", filepath.Join(dataDir, "station.json"), "--jwk", filepath.Join(dataDir, stationName+".jwk"))
	return err
}

// readyInfo is what `gwpki serve --ready-file` writes once it listens.
type readyInfo struct {
	APIURL  string `json:"api_url"`
	HTTPURL string `json:"http_url"`
	PID     int    `json:"pid"`
}

// startGwpki starts `gwpki serve` on loopback ports chosen by the kernel and
// waits for its ready file. env is added to the server's environment
// (GWPKI_CPUPROFILE).
func startGwpki(ctx context.Context, bin, dataDir, work string, env []string) (*server, *readyInfo, error) {
	readyFile := filepath.Join(work, "gwpki-ready.json")
	os.Remove(readyFile)
	args := []string{"serve", "--dir", dataDir,
		"--api-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--ready-file", readyFile}
	if hasFlag(ctx, bin, "--mqtt-addr", "serve") {
		// Never take the default MQTT port another gwpki on this machine may use.
		args = append(args, "--mqtt-addr", "127.0.0.1:0")
	}
	s, err := startProcess(serverGwpki, bin, filepath.Join(work, "gwpki-serve.log"), env, args...)
	if err != nil {
		return nil, nil, err
	}
	s.version = gwpkiVersion(ctx, bin)

	deadline := time.Now().Add(startTimeout)
	for {
		var info readyInfo
		b, err := os.ReadFile(readyFile)
		if err == nil && json.Unmarshal(b, &info) == nil && info.APIURL != "" && info.HTTPURL != "" {
			info.APIURL = strings.TrimSuffix(info.APIURL, "/")
			info.HTTPURL = strings.TrimSuffix(info.HTTPURL, "/")
			u, err := url.Parse(info.HTTPURL)
			if err != nil || u.Scheme != "http" || u.Host == "" {
				s.stop()
				return nil, nil, fmt.Errorf("gwpki ready file: http_url %q is not an http:// URL", info.HTTPURL)
			}
			s.url = info.HTTPURL + "/ocsp"
			s.addr = u.Host
			return s, &info, nil
		}
		if s.exited() {
			return nil, nil, s.failure("exited before writing its ready file")
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			s.stop()
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			return nil, nil, s.failure(fmt.Sprintf("wrote no ready file in %s", startTimeout))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitHealthy polls GET <http_url>/healthz until it answers 200.
func waitHealthy(ctx context.Context, s *server, httpURL string) error {
	if err := harness.WaitHealthy(ctx, httpURL, startTimeout, s.exited); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return s.failure(err.Error())
	}
	return nil
}

// issued is one birth certificate the benchmark asks about.
type issued struct {
	gateway string // BENCH-000001...
	cert    *x509.Certificate

	revoked   bool
	revokedAt time.Time // as gwpki recorded it
}

// issueCerts issues n birth certificates (gateways BENCH-000001...) through
// POST <apiURL>/1.0/sign, with the keys, CSRs and one-time tokens a line
// station makes (package provisioning), c requests at a time.
func issueCerts(ctx context.Context, apiURL, stationPath string, roots *x509.CertPool, n, c int) ([]*issued, error) {
	station, err := provisioning.LoadStation(stationPath)
	if err != nil {
		return nil, err
	}
	client := &http.Client{
		Timeout: time.Minute,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			MaxIdleConnsPerHost: c,
		},
	}
	defer client.CloseIdleConnections()
	signURL := provisioning.SignURL(apiURL)
	certs := make([]*issued, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, c)
	for range min(c, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				gw := fmt.Sprintf("BENCH-%06d", i+1)
				cert, err := issueOne(ctx, client, station, signURL, gw)
				if err != nil {
					errs <- fmt.Errorf("issue %s: %w", gw, err)
					next.Store(int64(n)) // stop the others
					return
				}
				certs[i] = &issued{gateway: gw, cert: cert}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return certs, ctx.Err()
}

// signRequest and signResponse are step-ca's /1.0/sign bodies.
type signRequest struct {
	CSR string `json:"csr"`
	OTT string `json:"ott"`
}

type signResponse struct {
	Crt string `json:"crt"`
}

func issueOne(ctx context.Context, client *http.Client, station *provisioning.Station, signURL, gw string) (*x509.Certificate, error) {
	_, csr, err := provisioning.NewGatewayKey(gw)
	if err != nil {
		return nil, err
	}
	tok, err := station.Token(gw, signURL, time.Now())
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(signRequest{CSR: string(csr), OTT: tok})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, signURL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b[:min(len(b), 300)]))
	}
	var sr signResponse
	if err := json.Unmarshal(b, &sr); err != nil {
		return nil, fmt.Errorf("decode answer: %w", err)
	}
	block, _ := pem.Decode([]byte(sr.Crt))
	if block == nil {
		return nil, errors.New("answer holds no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	if cert.Subject.CommonName != gw {
		return nil, fmt.Errorf("certificate CN %q; want %q", cert.Subject.CommonName, gw)
	}
	return cert, nil
}

// revokeGateways logs in as the first admin (`gwpki login`, the session in
// work/config) and revokes each gateway of certs[i] for i in which with
// `gwpki revoke SERIAL --json`, recording the revocation time gwpki reports.
func revokeGateways(ctx context.Context, bin, apiURL, dataDir, work string, certs []*issued, which []int) error {
	env := []string{"GWPKI_CONFIG_DIR=" + filepath.Join(work, "config")}
	layout := ca.Layout{Dir: dataDir}
	if _, err := harness.RunQuiet(ctx, filepath.Join(work, "gwpki-login.log"), env, bin, "login",
		"--server", apiURL, "--root", filepath.Join(dataDir, "certs", "root_ca.crt"),
		"--user", "admin", "--password-file", layout.AdminPassword()); err != nil {
		return err
	}
	for _, i := range which {
		c := certs[i]
		out, err := harness.RunQuiet(ctx, filepath.Join(work, "gwpki-revoke.log"), env, bin, "revoke", c.gateway, "--json")
		if err != nil {
			return err
		}
		var resp ca.RevokeResponse
		if err := json.Unmarshal(out, &resp); err != nil {
			return fmt.Errorf("gwpki revoke %s: decode --json output: %w", c.gateway, err)
		}
		want := strings.ToUpper(c.cert.SerialNumber.Text(16))
		found := false
		for _, r := range resp.Revoked {
			if strings.EqualFold(strings.ReplaceAll(r.SerialHex, ":", ""), want) ||
				r.Serial == c.cert.SerialNumber.String() {
				c.revoked, c.revokedAt, found = true, r.RevokedAt, true
			}
		}
		if !found {
			return fmt.Errorf("gwpki revoke %s: certificate %s not among the revoked: %s", c.gateway, want, out)
		}
	}
	return nil
}
