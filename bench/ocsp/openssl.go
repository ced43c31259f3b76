package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gwpki/gwpki/bench/internal/harness"

	"go.step.sm/crypto/pemutil"
)

var (
	// oidOCSPNoCheck is id-pkix-ocsp-nocheck (RFC 6960 4.2.2.2.1).
	oidOCSPNoCheck = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}
	// asn1Null is the DER of ASN.1 NULL, the nocheck extension's value.
	asn1Null = []byte{0x05, 0x00}
)

// opensslFiles are what `openssl ocsp` is started with.
type opensslFiles struct {
	index  string // index.txt: the status of every certificate
	rsign  string // the delegated responder certificate
	rkey   string // its private key (PKCS#8, unencrypted)
	issuer string // the issuing CA's certificate (-CA)
}

// writeOpenSSLFiles lays out, in dir, the same data gwpki's responder
// serves: an index.txt with a V line for every certificate and an R line
// for each revoked one (with gwpki's revocation time), and a delegated
// responder certificate like gwpki's own (a fresh P-256 key, issued by the
// issuing CA for 7 days, id-kp-OCSPSigning and id-pkix-ocsp-nocheck).
func writeOpenSSLFiles(dir, issuerPath, issuerKeyPath, passwordPath string, issuer *x509.Certificate, certs []*issued) (*opensslFiles, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f := &opensslFiles{
		index:  filepath.Join(dir, "index.txt"),
		rsign:  filepath.Join(dir, "responder.crt"),
		rkey:   filepath.Join(dir, "responder.key"),
		issuer: issuerPath,
	}
	var b strings.Builder
	for _, c := range certs {
		// status, expiry, revocation, serial (hex, as openssl's BN_bn2hex
		// writes it: whole bytes, upper case), file name, subject.
		status, revokedAt := "V", ""
		if c.revoked {
			status, revokedAt = "R", asn1Time(c.revokedAt)
		}
		fmt.Fprintf(&b, "%s\t%s\t%s\t%X\tunknown\t/CN=%s\n",
			status, asn1Time(c.cert.NotAfter), revokedAt, c.cert.SerialNumber.Bytes(), c.cert.Subject.CommonName)
	}
	if err := os.WriteFile(f.index, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(f.index+".attr", []byte("unique_subject = no\n"), 0o600); err != nil {
		return nil, err
	}

	k, err := pemutil.Read(issuerKeyPath, pemutil.WithPasswordFile(passwordPath))
	if err != nil {
		return nil, fmt.Errorf("read issuing CA key: %w", err)
	}
	issuerKey, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("issuing CA key is a %T, not a signer", k)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	notAfter := now.Add(7 * 24 * time.Hour)
	if notAfter.After(issuer.NotAfter) {
		notAfter = issuer.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber:    sn,
		Subject:         pkix.Name{CommonName: issuer.Subject.CommonName + " OCSP responder (openssl, bench)"},
		NotBefore:       now.Add(-time.Minute),
		NotAfter:        notAfter,
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
		ExtraExtensions: []pkix.Extension{{Id: oidOCSPNoCheck, Value: asn1Null}},
	}, issuer, key.Public(), issuerKey)
	if err != nil {
		return nil, fmt.Errorf("issue openssl's responder certificate: %w", err)
	}
	if err := os.WriteFile(f.rsign, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(f.rkey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}), 0o600); err != nil {
		return nil, err
	}
	return f, nil
}

// asn1Time is the time format of openssl's index.txt, YYMMDDHHMMSSZ.
func asn1Time(t time.Time) string { return t.UTC().Format("060102150405Z") }

// startOpenSSL starts `openssl ocsp` as a responder on a free port with
// workers forked processes (-multi), each signing every answer (-nmin 60,
// the validity of gwpki's answers).
func startOpenSSL(ctx context.Context, bin string, f *opensslFiles, workers int, work string) (*server, error) {
	port, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	// OpenSSL 3.0's -port takes a port number only and listens on every
	// address.
	args := []string{"ocsp", "-index", f.index, "-port", strconv.Itoa(port),
		"-rsigner", f.rsign, "-rkey", f.rkey, "-CA", f.issuer, "-nmin", "60", "-ignore_err"}
	if workers > 1 {
		args = append(args, "-multi", strconv.Itoa(workers))
	}
	s, err := startProcess(serverOpenSSL, bin, filepath.Join(work, "openssl-ocsp.log"), nil, args...)
	if err != nil {
		return nil, err
	}
	s.addr = fmt.Sprintf("127.0.0.1:%d", port)
	s.url = "http://" + s.addr
	s.version = opensslVersion(ctx, bin)
	return s, nil
}

func findOpenSSL(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	p, err := exec.LookPath("openssl")
	if err != nil {
		return "", errors.New("openssl not found on PATH; install it (scripts/install-test-deps.sh) or give -openssl")
	}
	return p, nil
}

// opensslVersion returns the version `openssl version` prints ("3.0.22").
func opensslVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		return "unknown"
	}
	return f[1]
}
