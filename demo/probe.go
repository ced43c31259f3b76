package demo

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.step.sm/crypto/pemutil"
	"golang.org/x/crypto/ocsp"
)

// The probes look at the system from outside, the way a backend or a
// gateway would: an OCSP request over plain HTTP, an MQTT connection over
// mutual TLS.

// operationalCert reads the operational certificate (leaf, issuer) and key
// the agent keeps in its bundle.
func operationalCert(bundleDir string) (tls.Certificate, *x509.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(filepath.Join(bundleDir, "operational.crt"), filepath.Join(bundleDir, "operational.key"))
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("read the operational certificate: %w", err)
	}
	if len(pair.Certificate) < 2 {
		return tls.Certificate{}, nil, errors.New("operational.crt holds no issuer certificate")
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pair.Leaf = leaf
	issuer, err := x509.ParseCertificate(pair.Certificate[1])
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return pair, issuer, nil
}

// ocspStatus asks the responder at url (…/ocsp) about cert and checks the
// answer's signature against issuer.
func ocspStatus(ctx context.Context, url string, cert, issuer *x509.Certificate) (*ocsp.Response, error) {
	req, err := ocsp.CreateRequest(cert, issuer, &ocsp.RequestOptions{Hash: 0})
	if err != nil {
		return nil, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(req))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/ocsp-request")
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("OCSP: HTTP %d", resp.StatusCode)
	}
	return ocsp.ParseResponseForCert(body, cert, issuer)
}

// ocspStatusName names an OCSP status as openssl prints it.
func ocspStatusName(s int) string {
	switch s {
	case ocsp.Good:
		return "good"
	case ocsp.Revoked:
		return "revoked"
	default:
		return "unknown"
	}
}

// mqttConnect opens an MQTT session as clientID with cert at brokerURL
// (mqtts://host:port), trusting rootFile, and closes it again. It returns
// nil only when the broker accepted the session.
func mqttConnect(brokerURL, rootFile, clientID string, cert tls.Certificate) error {
	roots, err := pemutil.ReadCertificateBundle(rootFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	for _, c := range roots {
		pool.AddCert(c)
	}
	opts := mqtt.NewClientOptions().
		AddBroker(strings.Replace(brokerURL, "mqtts://", "tls://", 1)).
		SetClientID(clientID).
		SetTLSConfig(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second)
	c := mqtt.NewClient(opts)
	t := c.Connect()
	if !t.WaitTimeout(10 * time.Second) {
		return errors.New("connect timed out")
	}
	if err := t.Error(); err != nil {
		return err
	}
	c.Disconnect(100)
	return nil
}

// fileExists reports whether path names a regular, non-empty file.
func fileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Size() > 0
}
