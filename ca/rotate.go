package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.step.sm/crypto/pemutil"
)

// RotateOptions are the choices of `gwpki ca rotate`.
type RotateOptions struct {
	// Password decrypts the root key and encrypts the new issuing key. Nil:
	// read secrets/password (when init generated it).
	Password []byte
	// RootKey is the root CA's key file, when it is no longer at
	// secrets/root_ca_key (kept offline). Empty: secrets/root_ca_key.
	RootKey string
}

// RotateResult tells what [Rotate] did.
type RotateResult struct {
	Generation int               // the new issuing CA's
	Cert       *x509.Certificate // the new issuing CA
	KMSKey     string            // the new key's name in the KMS, if there
	Retired    RetiredIssuer     // the issuing CA it replaced
}

// newSuffix marks the new issuing key and certificate until a rotation is
// committed (see [finishRotation]).
const newSuffix = ".new"

// Rotate replaces the issuing CA of the data directory dir with a new one:
// a new key (a file encrypted with the CA password, or in the KMS) and a
// certificate from the root. The old one is retired, not forgotten: its
// certificate and key are kept under their generation's names and listed
// in config.json's retired_issuers, so that the server keeps trusting, and
// answering OCSP and publishing CRLs for, what it issued. The server must
// be stopped (the caller holds the database's lock); it picks the change up
// at its next start.
//
// The files are written so that a crash leaves either the old CA or the new
// one: the retired copies and the new files (under ".new" names) first,
// then config.json, which commits, then the renames, which the next Rotate
// or server start completes when they were cut short.
func Rotate(ctx context.Context, dir string, opts RotateOptions) (*RotateResult, error) {
	l := Layout{dir}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	if err := finishRotation(l, cfg); err != nil {
		return nil, err
	}
	password := opts.Password
	if password == nil {
		if !cfg.PasswordInDir {
			return nil, errors.New("the CA key password is not in the data directory; pass --password-file")
		}
		if password, err = ReadPasswordFile(l.Password()); err != nil {
			return nil, err
		}
	}
	rootKeyPath := opts.RootKey
	if rootKeyPath == "" {
		rootKeyPath = l.RootKey()
	}
	root, rootKey, err := readCA(l.RootCert(), rootKeyPath, password)
	if err != nil {
		return nil, fmt.Errorf("root CA: %w", err)
	}
	oldPEM, err := os.ReadFile(l.IntermediateCert())
	if err != nil {
		return nil, fmt.Errorf("read issuing certificate: %w", err)
	}
	old, err := pemutil.ParseCertificate(oldPEM)
	if err != nil {
		return nil, fmt.Errorf("read issuing certificate: %w", err)
	}
	var oldKeyPEM []byte
	if cfg.KMS == "" {
		// Read and decrypted before anything is written: the retired copy
		// must be a key that the server can open.
		if _, oldSigner, err := readCA(l.IntermediateCert(), l.IntermediateKey(), password); err != nil || oldSigner == nil {
			return nil, fmt.Errorf("issuing CA: %w", err)
		}
		if oldKeyPEM, err = os.ReadFile(l.IntermediateKey()); err != nil {
			return nil, fmt.Errorf("read issuing key: %w", err)
		}
	}

	now := time.Now().UTC().Truncate(time.Second)
	oldGen, gen := cfg.IssuerGeneration, cfg.IssuerGeneration+1
	res := &RotateResult{Generation: gen, Retired: RetiredIssuer{
		Generation: oldGen, RetiredAt: now, NotAfter: old.NotAfter.UTC(),
	}}
	var pub crypto.PublicKey
	if cfg.KMS != "" {
		name, p, err := createKMSKey(ctx, cfg.KMS)
		if err != nil {
			return nil, err
		}
		res.KMSKey, res.Retired.KMSKey, pub = name, cfg.IntermediateKey, p
	} else {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate issuing key: %w", err)
		}
		if err := writeEncryptedKey(l.IntermediateKey()+newSuffix, k, password); err != nil {
			return nil, err
		}
		pub = k.Public()
	}
	notAfter := now.Add(intermediateLifetime)
	if notAfter.After(root.NotAfter) {
		notAfter = root.NotAfter
	}
	if res.Cert, err = signCA(&x509.Certificate{
		Subject:        pkix.Name{CommonName: fmt.Sprintf("%s Issuing CA G%d", cfg.Name, gen)},
		NotBefore:      now.Add(-time.Minute),
		NotAfter:       notAfter,
		MaxPathLen:     0,
		MaxPathLenZero: true,
	}, root, pub, rootKey); err != nil {
		return nil, fmt.Errorf("create issuing certificate: %w", err)
	}
	if err := writeFileAtomic(l.IntermediateCert()+newSuffix, pemCert(res.Cert), 0o644); err != nil {
		return nil, fmt.Errorf("write issuing certificate: %w", err)
	}
	if err := writeFileAtomic(l.RetiredIntermediateCert(oldGen), oldPEM, 0o644); err != nil {
		return nil, fmt.Errorf("keep the retired issuing certificate: %w", err)
	}
	if oldKeyPEM != nil {
		if err := writeFileAtomic(l.RetiredIntermediateKey(oldGen), oldKeyPEM, 0o600); err != nil {
			return nil, fmt.Errorf("keep the retired issuing key: %w", err)
		}
	}
	if err := commitRotation(l, gen, res); err != nil {
		return nil, err
	}
	cfg.IssuerGeneration = gen
	cfg.RetiredIssuers = append(cfg.RetiredIssuers, res.Retired)
	return res, finishRotation(l, cfg)
}

// readCA reads a CA certificate and its encrypted key and checks that they
// belong together.
func readCA(certPath, keyPath string, password []byte) (*x509.Certificate, crypto.Signer, error) {
	cert, err := pemutil.ReadCertificate(certPath)
	if err != nil {
		return nil, nil, fmt.Errorf("read certificate: %w", err)
	}
	key, err := pemutil.Read(keyPath, pemutil.WithPassword(password))
	if err != nil {
		return nil, nil, fmt.Errorf("read key %s (wrong password?): %w", keyPath, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("key %s is a %T, not a signing key", keyPath, key)
	}
	if pub, ok := s.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("key %s does not belong to %s", keyPath, certPath)
	}
	return cert, s, nil
}

// commitRotation rewrites config.json with the new generation, the retired
// issuer and, with a KMS, the new key's name. Every other setting is kept
// as the file has it.
func commitRotation(l Layout, gen int, res *RotateResult) error {
	b, err := os.ReadFile(l.Config())
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("parse %s: %w", l.Config(), err)
	}
	var retired []RetiredIssuer
	if v, ok := raw["retired_issuers"]; ok {
		if err := json.Unmarshal(v, &retired); err != nil {
			return fmt.Errorf("parse %s: retired_issuers: %w", l.Config(), err)
		}
	}
	raw["retired_issuers"] = mustJSON(append(retired, res.Retired))
	raw["issuer_generation"] = mustJSON(gen)
	if res.KMSKey != "" {
		raw["intermediate_key"] = mustJSON(res.KMSKey)
	}
	out, err := json.MarshalIndent(raw, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(l.Config(), append(out, '\n'), 0o644); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// finishRotation completes a rotation that stopped after committing
// config.json but before its new key and certificate were renamed into
// place (the current certificate is then still the one config.json lists
// as retired last), and removes what a rotation that never committed left.
func finishRotation(l Layout, cfg *Config) error {
	newCert, newKey := l.IntermediateCert()+newSuffix, l.IntermediateKey()+newSuffix
	if !fileExists(newCert) && !fileExists(newKey) {
		return nil
	}
	committed := false
	if n := len(cfg.RetiredIssuers); n > 0 && cfg.RetiredIssuers[n-1].Generation == cfg.IssuerGeneration-1 {
		retired, err1 := os.ReadFile(l.RetiredIntermediateCert(cfg.IssuerGeneration - 1))
		cur, err2 := os.ReadFile(l.IntermediateCert())
		committed = err1 == nil && err2 == nil && bytes.Equal(retired, cur)
	}
	if !committed {
		for _, p := range []string{newCert, newKey} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove what an unfinished rotation left: %w", err)
			}
		}
		return nil
	}
	if !fileExists(newCert) {
		return fmt.Errorf("an interrupted rotation left no %s; restore the data directory from its backup", newCert)
	}
	if fileExists(newKey) {
		if err := os.Rename(newKey, l.IntermediateKey()); err != nil {
			return fmt.Errorf("finish the rotation: %w", err)
		}
	}
	if err := os.Rename(newCert, l.IntermediateCert()); err != nil {
		return fmt.Errorf("finish the rotation: %w", err)
	}
	for _, d := range []string{filepath.Dir(newKey), filepath.Dir(newCert)} {
		if f, err := os.Open(d); err == nil {
			_ = f.Sync()
			f.Close()
		}
	}
	return nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// KeyID returns the hex key ID of a CA certificate, as its leaves name it
// in their authority key identifier.
func KeyID(c *x509.Certificate) string { return hex.EncodeToString(c.SubjectKeyId) }
