package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.step.sm/crypto/kms"
	kmsapi "go.step.sm/crypto/kms/apiv1"
	_ "go.step.sm/crypto/kms/pkcs11" // registers the pkcs11 KMS for --kms
	"go.step.sm/crypto/pemutil"
)

// CA lifetimes of DESIGN.md.
const (
	rootLifetime         = 20 * 365 * 24 * time.Hour
	intermediateLifetime = 10 * 365 * 24 * time.Hour
)

// InitOptions are the choices of gwpki init.
type InitOptions struct {
	// Hostnames of the server certificate (default DefaultHostnames).
	Hostnames []string
	// Password encrypts the CA keys. Nil: generate one into secrets/password.
	Password []byte
	// KMS is a PKCS#11 URI; when set the issuing key is created there.
	KMS string
	// Force moves an existing CA aside (to <dir>.bak-<time>) instead of
	// refusing. Nothing is deleted.
	Force bool
}

// InitResult tells what Init created.
type InitResult struct {
	Config      *Config
	RootSHA256  string // hex SHA-256 of the root certificate (step's fingerprint)
	MovedAside  string // where an existing directory went with Force
	RootSubject string
}

// Init creates a CA in dir: the root (key encrypted at rest), the issuing CA
// (key encrypted at rest or in the KMS) and the configuration.
func Init(ctx context.Context, dir string, opts InitOptions) (*InitResult, error) {
	l := Layout{dir}
	res := &InitResult{}
	if Initialized(dir) {
		if !opts.Force {
			return nil, fmt.Errorf("%w: %s", ErrAlreadyInitialized, dir)
		}
		aside := fmt.Sprintf("%s.bak-%s", filepath.Clean(dir), time.Now().UTC().Format("20060102T150405Z"))
		if err := os.Rename(dir, aside); err != nil {
			return nil, fmt.Errorf("move existing data directory aside: %w", err)
		}
		res.MovedAside = aside
	}
	for _, d := range []string{dir, filepath.Join(dir, "certs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}

	cfg := &Config{Hostnames: opts.Hostnames, KMS: opts.KMS}
	cfg.setDefaults()

	password := opts.Password
	if password == nil {
		p, err := randomToken(32)
		if err != nil {
			return nil, err
		}
		password = []byte(p)
		if err := writeFileAtomic(l.Password(), password, 0o600); err != nil {
			return nil, fmt.Errorf("write password: %w", err)
		}
		cfg.PasswordInDir = true
	}

	now := time.Now().UTC().Truncate(time.Second)
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate root key: %w", err)
	}
	root, err := signCA(&x509.Certificate{
		Subject:    pkix.Name{CommonName: cfg.Name + " Root CA"},
		NotBefore:  now.Add(-time.Minute),
		NotAfter:   now.Add(rootLifetime),
		MaxPathLen: 1,
	}, nil, rootKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("create root certificate: %w", err)
	}

	var interPub crypto.PublicKey
	if opts.KMS != "" {
		name, pub, err := createKMSKey(ctx, opts.KMS)
		if err != nil {
			return nil, err
		}
		cfg.IntermediateKey, interPub = name, pub
	} else {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate issuing key: %w", err)
		}
		if err := writeEncryptedKey(l.IntermediateKey(), k, password); err != nil {
			return nil, err
		}
		interPub = k.Public()
	}
	inter, err := signCA(&x509.Certificate{
		Subject:        pkix.Name{CommonName: cfg.Name + " Issuing CA"},
		NotBefore:      now.Add(-time.Minute),
		NotAfter:       now.Add(intermediateLifetime),
		MaxPathLen:     0,
		MaxPathLenZero: true,
	}, root, interPub, rootKey)
	if err != nil {
		return nil, fmt.Errorf("create issuing certificate: %w", err)
	}

	if err := writeEncryptedKey(l.RootKey(), rootKey, password); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(l.RootCert(), pemCert(root), 0o644); err != nil {
		return nil, fmt.Errorf("write root certificate: %w", err)
	}
	if err := writeFileAtomic(l.IntermediateCert(), pemCert(inter), 0o644); err != nil {
		return nil, fmt.Errorf("write issuing certificate: %w", err)
	}
	// The configuration goes last: its presence marks a complete CA.
	if err := cfg.save(dir); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	sum := sha256.Sum256(root.Raw)
	res.Config, res.RootSHA256, res.RootSubject = cfg, hex.EncodeToString(sum[:]), root.Subject.CommonName
	return res, nil
}

// Initialized reports whether dir already holds (part of) a CA.
func Initialized(dir string) bool {
	l := Layout{dir}
	for _, p := range []string{l.Config(), l.RootCert(), l.Database()} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// signCA signs a CA certificate template; parent nil makes it self-signed.
func signCA(tpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) (*x509.Certificate, error) {
	sn, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tpl.SerialNumber = sn
	tpl.IsCA = true
	tpl.BasicConstraintsValid = true
	tpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	if parent == nil {
		parent = tpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, parent, pub, signer)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// writeEncryptedKey writes key as PKCS#8 encrypted with password (PBES2:
// PBKDF2-SHA256 and AES-256-CBC), readable by step and openssl.
func writeEncryptedKey(path string, key crypto.PrivateKey, password []byte) error {
	block, err := pemutil.Serialize(key, pemutil.WithPassword(password), pemutil.WithPKCS8(true))
	if err != nil {
		return fmt.Errorf("encrypt key: %w", err)
	}
	if err := writeFileAtomic(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	return nil
}

// createKMSKey creates the issuing key in the PKCS#11 module of uri, under a
// fresh id so that a second init never reuses or overwrites a key.
func createKMSKey(ctx context.Context, uri string) (string, crypto.PublicKey, error) {
	km, err := kms.New(ctx, kmsapi.Options{Type: kmsapi.PKCS11, URI: uri})
	if err != nil {
		return "", nil, fmt.Errorf("open kms: %w", err)
	}
	defer km.Close()
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return "", nil, err
	}
	resp, err := km.CreateKey(&kmsapi.CreateKeyRequest{
		Name:               fmt.Sprintf("pkcs11:id=%x;object=gwpki-issuing-ca", id),
		SignatureAlgorithm: kmsapi.ECDSAWithSHA256,
	})
	if err != nil {
		return "", nil, fmt.Errorf("create issuing key in kms: %w", err)
	}
	return resp.Name, resp.PublicKey, nil
}

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// ReadPasswordFile reads a password file the way gwpki does everywhere: the
// whole file less its trailing newline; empty files are refused.
func ReadPasswordFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read password file: %w", err)
	}
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return nil, errors.New("password file is empty")
	}
	return b, nil
}
