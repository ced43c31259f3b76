package crl

import (
	"context"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needOpenSSL returns the openssl binary, skipping the test when it is
// missing, except under CI, where a missing peer is a failure.
func needOpenSSL(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("openssl is not installed; CI must install every peer")
		}
		t.Skip("openssl is not installed")
	}
	return path
}

// TestOpenSSL checks a shard's CRL with openssl: it lists the revoked serial
// and the issuing distribution point, openssl verify -crl_check rejects the
// revoked leaf and accepts a good one of the same shard, and refuses the CRL
// for a leaf of another shard.
func TestOpenSSL(t *testing.T) {
	openssl := needOpenSSL(t)
	now := time.Now()
	ca := newTestCA(t, now)
	const shards = 4
	revoked := randomSerial(t)
	good := new(big.Int).Add(revoked, big.NewInt(shards))  // same shard
	otherShard := new(big.Int).Add(revoked, big.NewInt(1)) // the next shard
	s, s2 := Shard(revoked, shards), Shard(otherShard, shards)
	src := newMemSource(Revoked{Serial: revoked, RevokedAt: now.Add(-time.Minute), Reason: 1, NotAfter: now.Add(12 * time.Hour)})
	b, err := New(context.Background(), ca.config(shards), src)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	write := func(name string, data []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	root := write("root.pem", certPEM(ca.root))
	inter := write("intermediate.pem", certPEM(ca.inter))
	crlDER := write("shard.crl", b.CRL(s))
	crlPEM := write("shard.pem", pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: b.CRL(s)}))
	otherPEM := write("other.pem", pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: b.CRL(s2)}))
	leaf := func(sn *big.Int) string {
		return write(sn.Text(16)+".pem", certPEM(ca.leaf(t, sn, b.URL(Shard(sn, shards)), now)))
	}
	revokedLeaf, goodLeaf, otherLeaf := leaf(revoked), leaf(good), leaf(otherShard)

	out, err := exec.Command(openssl, "crl", "-inform", "DER", "-in", crlDER, "-noout", "-text").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl crl: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{
		"Serial Number: " + hexSerial(revoked),
		"Key Compromise",
		"X509v3 Issuing Distribution Point: critical",
		"URI:" + b.URL(s),
		"Only User Certificates",
		"X509v3 CRL Number",
		"X509v3 Authority Key Identifier",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("openssl crl -text lacks %q:\n%s", want, text)
		}
	}

	verify := func(crl, leaf string) (string, error) {
		out, err := exec.Command(openssl, "verify", "-crl_check", "-CAfile", root, "-untrusted", inter,
			"-CRLfile", crl, leaf).CombinedOutput()
		return string(out), err
	}
	if out, err := verify(crlPEM, revokedLeaf); err == nil || !strings.Contains(out, "certificate revoked") {
		t.Errorf("openssl verify of the revoked leaf: %v\n%s\nwant failure: certificate revoked", err, out)
	}
	if out, err := verify(crlPEM, goodLeaf); err != nil || !strings.Contains(out, ": OK") {
		t.Errorf("openssl verify of a good leaf of shard %d: %v\n%s\nwant OK", s, err, out)
	}
	// The issuing distribution point scopes the CRL to its shard: openssl
	// refuses it for a leaf of another shard ("different CRL scope") and
	// accepts that leaf with its own shard's CRL.
	if out, err := verify(crlPEM, otherLeaf); err == nil || !strings.Contains(out, "different CRL scope") {
		t.Errorf("openssl verify of a shard %d leaf with shard %d's CRL: %v\n%s\nwant failure: different CRL scope", s2, s, err, out)
	}
	if out, err := verify(otherPEM, otherLeaf); err != nil || !strings.Contains(out, ": OK") {
		t.Errorf("openssl verify of a shard %d leaf with its CRL: %v\n%s\nwant OK", s2, err, out)
	}
}
