package crl

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"sync"
	"testing"
	"time"
)

// testCA is a root and an issuing CA that may sign CRLs, like gwpki's own.
type testCA struct {
	root, inter       *x509.Certificate
	rootKey, interKey *ecdsa.PrivateKey
}

// newTestCA makes a CA valid from an hour before now for a day.
func newTestCA(tb testing.TB, now time.Time) *testCA {
	tb.Helper()
	ca := &testCA{rootKey: newKey(tb), interKey: newKey(tb)}
	ca.root = sign(tb, &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "crl test root"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, &ca.rootKey.PublicKey, ca.rootKey)
	ca.inter = sign(tb, &x509.Certificate{
		SerialNumber:          big.NewInt(2),
		Subject:               pkix.Name{CommonName: "crl test issuing CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}, ca.root, &ca.interKey.PublicKey, ca.rootKey)
	return ca
}

// leaf issues an end-entity certificate with serial whose CRL distribution
// point is crlURL.
func (ca *testCA) leaf(tb testing.TB, serial *big.Int, crlURL string, now time.Time) *x509.Certificate {
	tb.Helper()
	key := newKey(tb)
	return sign(tb, &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "gateway " + serial.Text(16)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(12 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		CRLDistributionPoints: []string{crlURL},
	}, ca.inter, &key.PublicKey, ca.interKey)
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return key
}

func sign(tb testing.TB, tpl, parent *x509.Certificate, pub any, key *ecdsa.PrivateKey) *x509.Certificate {
	tb.Helper()
	if parent == nil {
		parent = tpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, parent, pub, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return cert
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// config returns a builder configuration for ca with baseURL and the
// defaults otherwise.
func (ca *testCA) config(shards int) Config {
	return Config{
		Issuer:  ca.inter,
		Signer:  ca.interKey,
		Shards:  shards,
		BaseURL: testBaseURL,
		Logger:  slog.New(slog.DiscardHandler),
	}
}

const testBaseURL = "http://localhost:8080/crl/"

// memSource is a store in memory: revocation records and persisted CRL
// numbers, with a log of NextCRLNumbers calls and injectable failures.
type memSource struct {
	mu      sync.Mutex
	records []Revoked
	numbers map[int]int64
	calls   [][]int // shards of each successful NextCRLNumbers call
	failing int     // calls left to fail; -1: fail until reset
	stuck   bool    // always return 1, as a store that lost its numbers
}

var errStore = errors.New("store unavailable")

func newMemSource(records ...Revoked) *memSource {
	return &memSource{records: records, numbers: map[int]int64{}}
}

func (m *memSource) Revocations(ctx context.Context, fn func(Revoked) error) error {
	m.mu.Lock()
	records := slices.Clone(m.records)
	m.mu.Unlock()
	for _, r := range records {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (m *memSource) NextCRLNumbers(ctx context.Context, shards []int) ([]*big.Int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failing != 0 {
		if m.failing > 0 {
			m.failing--
		}
		return nil, errStore
	}
	m.calls = append(m.calls, slices.Clone(shards))
	out := make([]*big.Int, len(shards))
	for i, s := range shards {
		m.numbers[s]++
		if m.stuck {
			m.numbers[s] = 1
		}
		out[i] = big.NewInt(m.numbers[s])
	}
	return out, nil
}

// setFailing makes the next n calls of NextCRLNumbers fail (-1: all).
func (m *memSource) setFailing(n int) {
	m.mu.Lock()
	m.failing = n
	m.mu.Unlock()
}

// callLog returns the shards of each NextCRLNumbers call so far.
func (m *memSource) callLog() [][]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.calls)
}

// parse parses a CRL and checks that issuer signed it.
func parse(tb testing.TB, der []byte, issuer *x509.Certificate) *x509.RevocationList {
	tb.Helper()
	l, err := x509.ParseRevocationList(der)
	if err != nil {
		tb.Fatalf("parse CRL: %v", err)
	}
	if err := l.CheckSignatureFrom(issuer); err != nil {
		tb.Fatalf("CRL signature: %v", err)
	}
	return l
}

// listed returns the entry of serial on l, or nil.
func listed(l *x509.RevocationList, serial *big.Int) *x509.RevocationListEntry {
	for i, e := range l.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(serial) == 0 {
			return &l.RevokedCertificateEntries[i]
		}
	}
	return nil
}

// randomSerial returns a positive 128-bit serial, as the issuer makes them.
func randomSerial(tb testing.TB) *big.Int {
	tb.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		tb.Fatal(err)
	}
	return n.Add(n, big.NewInt(1))
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

func hexSerial(n *big.Int) string { return fmt.Sprintf("%X", n.Bytes()) }
