package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"go.step.sm/crypto/jose"
	"go.step.sm/crypto/pemutil"
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

	root            *x509.Certificate
	rootPool        *x509.CertPool
	rootFingerprint string // hex SHA-256 of the root's DER, the tokens' "sha" claim

	station       *jose.JSONWebKey // private, from D/bench.jwk
	stationPublic *jose.JSONWebKey // its public part, for step-ca's provisioner
}

func loadCAMaterial(dir string) (*caMaterial, error) {
	ca := &caMaterial{
		rootPath:            filepath.Join(dir, "certs", "root_ca.crt"),
		intermediatePath:    filepath.Join(dir, "certs", "intermediate_ca.crt"),
		intermediateKeyPath: filepath.Join(dir, "secrets", "intermediate_ca_key"),
		passwordPath:        filepath.Join(dir, "secrets", "password"),
	}
	for _, p := range []string{ca.intermediatePath, ca.intermediateKeyPath, ca.passwordPath} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("read CA material: %w", err)
		}
	}
	b, err := os.ReadFile(ca.rootPath)
	if err != nil {
		return nil, fmt.Errorf("read CA material: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("read root certificate %s: no PEM certificate", ca.rootPath)
	}
	if ca.root, err = x509.ParseCertificate(block.Bytes); err != nil {
		return nil, fmt.Errorf("read root certificate %s: %w", ca.rootPath, err)
	}
	ca.rootPool = x509.NewCertPool()
	ca.rootPool.AddCert(ca.root)
	sum := sha256.Sum256(ca.root.Raw)
	ca.rootFingerprint = hex.EncodeToString(sum[:])

	jwkPath := filepath.Join(dir, stationName+".jwk")
	if ca.station, err = jose.ReadKey(jwkPath); err != nil {
		return nil, fmt.Errorf("read station key %s: %w", jwkPath, err)
	}
	if ca.station.IsPublic() {
		return nil, fmt.Errorf("read station key %s: it is a public key; want the private JWK", jwkPath)
	}
	if _, ok := ca.station.Key.(*ecdsa.PrivateKey); !ok {
		return nil, fmt.Errorf("read station key %s: %T; want an EC P-256 key", jwkPath, ca.station.Key)
	}
	if ca.station.Algorithm == "" {
		ca.station.Algorithm = jose.ES256
	}
	if ca.station.KeyID == "" {
		// step-ca finds a JWK provisioner by issuer and kid; give it one.
		if ca.station.KeyID, err = jose.Thumbprint(ca.station); err != nil {
			return nil, err
		}
	}
	pub := ca.station.Public()
	ca.stationPublic = &pub
	return ca, nil
}

// createCAMaterial lays out, in a gwpki data directory, what `gwpki init` and
// `gwpki station add bench --jwk D/bench.jwk` would: a root and an issuing CA
// whose keys are encrypted with a generated password, and a station JWK. It
// is used when gwpki itself is not benchmarked (-servers step-ca).
func createCAMaterial(dir string) error {
	for _, d := range []string{filepath.Join(dir, "certs"), filepath.Join(dir, "secrets")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	pw := make([]byte, 32)
	if _, err := rand.Read(pw); err != nil {
		return err
	}
	password := []byte(base64.RawURLEncoding.EncodeToString(pw))
	if err := os.WriteFile(filepath.Join(dir, "secrets", "password"), password, 0o600); err != nil {
		return err
	}

	now := time.Now()
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	rootTmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "gwpki bench Root CA"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.AddDate(20, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return err
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return err
	}
	intKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	intTmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "gwpki bench Intermediate CA"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	intDER, err := x509.CreateCertificate(rand.Reader, intTmpl, root, intKey.Public(), rootKey)
	if err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, "certs", "root_ca.crt"), &pem.Block{Type: "CERTIFICATE", Bytes: rootDER}); err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, "certs", "intermediate_ca.crt"), &pem.Block{Type: "CERTIFICATE", Bytes: intDER}); err != nil {
		return err
	}
	for name, key := range map[string]*ecdsa.PrivateKey{"root_ca_key": rootKey, "intermediate_ca_key": intKey} {
		block, err := pemutil.Serialize(key, pemutil.WithPassword(password), pemutil.WithPKCS8(true))
		if err != nil {
			return fmt.Errorf("encrypt %s: %w", name, err)
		}
		if err := writePEM(filepath.Join(dir, "secrets", name), block); err != nil {
			return err
		}
	}

	jwk, err := jose.GenerateJWK("EC", "P-256", "ES256", "sig", "", 0)
	if err != nil {
		return err
	}
	b, err := json.Marshal(jwk)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, stationName+".jwk"), b, 0o600)
}

func writePEM(path string, block *pem.Block) error {
	b := pem.EncodeToMemory(block)
	if b == nil {
		return errors.New("encode PEM " + path)
	}
	return os.WriteFile(path, b, 0o600)
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}
