package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"

	"go.step.sm/crypto/jose"

	"github.com/gwpki/gwpki/ca"
)

// stationName is the provisioner both servers know the benchmark's station by.
const stationName = "bench"

// caMaterial is the CA and station key both servers share, read from a gwpki
// data directory (see docs/architecture.md for its layout).
type caMaterial struct {
	rootPath            string // D/certs/root_ca.crt
	intermediatePath    string // D/certs/intermediate_ca.crt
	intermediateKeyPath string // D/secrets/intermediate_ca_key, encrypted with the password
	passwordPath        string // D/secrets/password

	root     *x509.Certificate
	rootPool *x509.CertPool

	station       *jose.JSONWebKey // private, from D/bench.jwk
	stationPublic *jose.JSONWebKey // its public part, for step-ca's provisioner
}

func loadCAMaterial(dir string) (*caMaterial, error) {
	m := &caMaterial{
		rootPath:            filepath.Join(dir, "certs", "root_ca.crt"),
		intermediatePath:    filepath.Join(dir, "certs", "intermediate_ca.crt"),
		intermediateKeyPath: filepath.Join(dir, "secrets", "intermediate_ca_key"),
		passwordPath:        filepath.Join(dir, "secrets", "password"),
	}
	for _, p := range []string{m.intermediatePath, m.intermediateKeyPath, m.passwordPath} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("read CA material: %w", err)
		}
	}
	b, err := os.ReadFile(m.rootPath)
	if err != nil {
		return nil, fmt.Errorf("read CA material: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("read root certificate %s: no PEM certificate", m.rootPath)
	}
	if m.root, err = x509.ParseCertificate(block.Bytes); err != nil {
		return nil, fmt.Errorf("read root certificate %s: %w", m.rootPath, err)
	}
	m.rootPool = x509.NewCertPool()
	m.rootPool.AddCert(m.root)

	jwkPath := filepath.Join(dir, stationName+".jwk")
	if m.station, err = jose.ReadKey(jwkPath); err != nil {
		return nil, fmt.Errorf("read station key %s: %w", jwkPath, err)
	}
	if m.station.IsPublic() {
		return nil, fmt.Errorf("read station key %s: it is a public key; want the private JWK", jwkPath)
	}
	if _, ok := m.station.Key.(*ecdsa.PrivateKey); !ok {
		return nil, fmt.Errorf("read station key %s: %T; want an EC P-256 key", jwkPath, m.station.Key)
	}
	if m.station.Algorithm == "" {
		m.station.Algorithm = jose.ES256
	}
	if m.station.KeyID == "" {
		// step-ca finds a JWK provisioner by issuer and kid; give it one.
		if m.station.KeyID, err = jose.Thumbprint(m.station); err != nil {
			return nil, err
		}
	}
	pub := m.station.Public()
	m.stationPublic = &pub
	return m, nil
}

// createCAMaterial lays out, in a gwpki data directory, what `gwpki init
// --hostname 127.0.0.1 --hostname localhost` and `gwpki station add bench
// --jwk D/bench.jwk` would, with the same functions: a root and an issuing CA
// whose keys are encrypted with a generated password, and a station JWK. It
// is used when gwpki itself is not benchmarked (-servers step-ca).
func createCAMaterial(ctx context.Context, dir string) error {
	if _, err := ca.Init(ctx, dir, ca.InitOptions{Hostnames: []string{"127.0.0.1", "localhost"}}); err != nil {
		return fmt.Errorf("create CA: %w", err)
	}
	key, err := ca.AddStation(dir, stationName)
	if err != nil {
		return fmt.Errorf("add station: %w", err)
	}
	b, err := json.MarshalIndent(key, "", "  ")
	if err != nil {
		return fmt.Errorf("encode station key: %w", err)
	}
	path := filepath.Join(dir, stationName+".jwk")
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write station key: %w", err)
	}
	return nil
}
