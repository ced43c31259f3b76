package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/provisioning"
)

// Bundle is a gateway's bundle folder as gwpki provision wrote it.
type Bundle struct {
	// Dir is the bundle folder.
	Dir string
	provisioning.Bundle
	// Secret is the decoded claim secret.
	Secret []byte
}

// LoadBundle reads the gateway.json of the bundle in dir.
func LoadBundle(dir string) (*Bundle, error) {
	data, err := os.ReadFile(filepath.Join(dir, provisioning.GatewayFile))
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	b := &Bundle{Dir: dir}
	if err := json.Unmarshal(data, &b.Bundle); err != nil {
		return nil, fmt.Errorf("read bundle %s: %s is not a gwpki gateway file: %w", dir, provisioning.GatewayFile, err)
	}
	b.Secret, err = base64.RawURLEncoding.DecodeString(b.ClaimSecret)
	if err != nil || len(b.Secret) < 16 || b.Serial == "" {
		return nil, fmt.Errorf("read bundle %s: %s has no serial or no valid claim secret", dir, provisioning.GatewayFile)
	}
	return b, nil
}

// DisplayCode returns the claim code the gateway shows at now.
func (b *Bundle) DisplayCode(now time.Time) string {
	return claim.DisplayCode(b.Secret, b.Serial, now)
}

// APIURL returns the server's API base URL, the bootstrap URL without its
// /v1/bootstrap path.
func (b *Bundle) APIURL() (string, error) {
	u, err := url.Parse(b.BootstrapURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("bundle %s: bootstrap URL %q is not an https URL", b.Dir, b.BootstrapURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/v1/bootstrap")
	return strings.TrimSuffix(u.String(), "/"), nil
}

// TLSConfig returns a client configuration that presents the gateway's
// birth certificate and trusts only the bundle's root: TLS 1.2 or newer.
// A bundle made from the gateway's own CSR (gwpki provision --csr-dir) has
// no key file; its key is in the gateway's secure element.
func (b *Bundle) TLSConfig() (*tls.Config, error) {
	keyPath := filepath.Join(b.Dir, provisioning.KeyFile)
	if _, err := os.Stat(keyPath); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("bundle %s has no %s: its key is in the gateway's secure element", b.Dir, provisioning.KeyFile)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(b.Dir, provisioning.CertFile), keyPath)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: load certificate and key: %w", b.Dir, err)
	}
	roots, err := b.Roots()
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, RootCAs: roots}, nil
}

// Roots returns the bundle's trust anchors, root.pem: the only roots the
// gateway trusts, for the API and for the broker.
func (b *Bundle) Roots() (*x509.CertPool, error) {
	rootPEM, err := os.ReadFile(filepath.Join(b.Dir, provisioning.RootFile))
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", b.Dir, err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		return nil, fmt.Errorf("bundle %s: %s holds no PEM certificate", b.Dir, provisioning.RootFile)
	}
	return roots, nil
}

// PressClaimButton reports a press of the gateway's claim button to the
// server over the gateway's own mutually authenticated connection
// (POST /v1/gateway/claim-button): it lifts a claim lock, since whoever
// pressed it stands at the gateway.
func (b *Bundle) PressClaimButton(ctx context.Context) (claim.UnlockResult, error) {
	var res claim.UnlockResult
	base, err := b.APIURL()
	if err != nil {
		return res, err
	}
	tlsConfig, err := b.TLSConfig()
	if err != nil {
		return res, err
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/gateway/claim-button", bytes.NewReader(nil))
	if err != nil {
		return res, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return res, fmt.Errorf("report claim button: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return res, fmt.Errorf("report claim button: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error, Hint string }
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return res, fmt.Errorf("report claim button: %s", e.Error)
		}
		return res, fmt.Errorf("report claim button: HTTP status %d", resp.StatusCode)
	}
	if err := json.Unmarshal(data, &res); err != nil {
		return res, fmt.Errorf("report claim button: decode answer: %w", err)
	}
	return res, nil
}

// Check reports whether the bundle can work: an https bootstrap URL, and
// the birth certificate, its key and root.pem readable.
func (b *Bundle) Check() error {
	if _, err := b.APIURL(); err != nil {
		return err
	}
	_, err := b.TLSConfig()
	return err
}
