package ca

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	xocsp "golang.org/x/crypto/ocsp"

	"github.com/gwpki/gwpki/ca/crl"
	"github.com/gwpki/gwpki/ca/ocsp"
	"github.com/gwpki/gwpki/internal/store"
	"github.com/gwpki/gwpki/internal/store/storetest"
)

const rotateTestURL = "http://127.0.0.1:8080"

func openRotateTest(t *testing.T, dir string, st *store.DB) *Authority {
	t.Helper()
	a, err := Open(context.Background(), dir, st, Options{PublicHTTPURL: rotateTestURL, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// issueOperational issues an operational certificate for gateway.
func issueOperational(t *testing.T, a *Authority, gateway string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: gateway}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	op, err := a.IssueOperational(context.Background(), gateway, csr)
	if err != nil {
		t.Fatalf("IssueOperational(%s): %v", gateway, err)
	}
	return op.Chain[0]
}

// ocspStatus asks a's responder about serial under issuer's CertID.
func ocspStatus(t *testing.T, a *Authority, serial *big.Int, issuer *x509.Certificate) string {
	t.Helper()
	req, err := xocsp.CreateRequest(&x509.Certificate{SerialNumber: serial}, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	a.OCSPHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/ocsp", bytes.NewReader(req)))
	if bytes.Equal(rec.Body.Bytes(), xocsp.UnauthorizedErrorResponse) {
		return "unauthorized"
	}
	resp, err := xocsp.ParseResponse(rec.Body.Bytes(), issuer)
	if err != nil {
		t.Fatalf("OCSP response about %x: %v", serial, err)
	}
	if resp.SerialNumber.Cmp(serial) != 0 {
		t.Fatalf("OCSP response names serial %x; want %x", resp.SerialNumber, serial)
	}
	return map[int]string{xocsp.Good: "good", xocsp.Revoked: "revoked", xocsp.Unknown: "unknown"}[resp.Status]
}

// getCRL fetches path from a's CRL routes: the parsed CRL, or nil for 404.
func getCRL(t *testing.T, a *Authority, path string) *x509.RevocationList {
	t.Helper()
	rec := httptest.NewRecorder()
	a.serveCRL(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code == http.StatusNotFound {
		return nil
	}
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d", path, rec.Code)
	}
	crl, err := x509.ParseRevocationList(rec.Body.Bytes())
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return crl
}

func listed(crl *x509.RevocationList, serial *big.Int) bool {
	return slices.ContainsFunc(crl.RevokedCertificateEntries, func(e x509.RevocationListEntry) bool {
		return e.SerialNumber.Cmp(serial) == 0
	})
}

func TestRotateRetiresTheIssuingCA(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := Layout{dir}
	if _, err := Init(ctx, dir, InitOptions{Hostnames: []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	st := storetest.OpenTemp(t)
	a := openRotateTest(t, dir, st)
	g0 := a.issuing.cert
	old := issueOperational(t, a, "GW-OLD")
	gone := issueOperational(t, a, "GW-GONE")
	a.Close()

	res, err := Rotate(ctx, dir, RotateOptions{})
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if res.Generation != 1 || res.Retired.Generation != 0 || !res.Retired.NotAfter.Equal(g0.NotAfter) {
		t.Fatalf("Rotate = generation %d, retired %+v", res.Generation, res.Retired)
	}
	if err := res.Cert.CheckSignatureFrom(a.roots[0]); err != nil {
		t.Fatalf("new issuing CA is not the root's: %v", err)
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.IssuerGeneration != 1 || len(cfg.RetiredIssuers) != 1 || cfg.RetiredIssuers[0].Generation != 0 {
		t.Fatalf("config after rotation: generation %d, retired %+v", cfg.IssuerGeneration, cfg.RetiredIssuers)
	}
	if len(cfg.Hostnames) != 1 || cfg.Hostnames[0] != "127.0.0.1" {
		t.Errorf("rotation changed the hostnames: %v", cfg.Hostnames)
	}
	if _, _, err := readCA(l.RetiredIntermediateCert(0), l.RetiredIntermediateKey(0), mustRead(t, l.Password())); err != nil {
		t.Errorf("retired certificate and key: %v", err)
	}
	if _, _, err := readCA(l.IntermediateCert(), l.IntermediateKey(), mustRead(t, l.Password())); err != nil {
		t.Errorf("new certificate and key: %v", err)
	}

	a = openRotateTest(t, dir, st)
	g1 := a.issuing.cert
	if !g1.Equal(res.Cert) || len(a.retired) != 1 || !a.retired[0].cert.Equal(g0) {
		t.Fatalf("reopened: issuing %q, %d retired", g1.Subject.CommonName, len(a.retired))
	}

	// New certificates come from the new CA, with its CRLs under /crl/g1/.
	fresh := issueOperational(t, a, "GW-NEW")
	if err := fresh.CheckSignatureFrom(g1); err != nil {
		t.Errorf("new certificate is not the new CA's: %v", err)
	}
	if dp := fresh.CRLDistributionPoints; len(dp) != 1 || !strings.HasPrefix(dp[0], rotateTestURL+"/crl/g1/") {
		t.Errorf("new certificate's CRL distribution point %v; want under /crl/g1/", dp)
	}
	if dp := old.CRLDistributionPoints; len(dp) != 1 || strings.Contains(dp[0], "/g") {
		t.Errorf("old certificate's CRL distribution point %v", dp)
	}

	// The old certificate is still trusted as a client certificate.
	for _, c := range []*x509.Certificate{old, fresh} {
		if _, err := c.Verify(x509.VerifyOptions{Roots: a.ClientCAs(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s: %v", c.Subject.CommonName, err)
		}
	}

	// OCSP: each certificate under its own issuer; under the other one it
	// is unknown; another CA's requests are unauthorized.
	for _, tc := range []struct {
		serial *big.Int
		issuer *x509.Certificate
		want   string
	}{
		{old.SerialNumber, g0, "good"},
		{fresh.SerialNumber, g1, "good"},
		{old.SerialNumber, g1, "unknown"},
		{fresh.SerialNumber, g0, "unknown"},
		{old.SerialNumber, old, "unauthorized"},
	} {
		if got := ocspStatus(t, a, tc.serial, tc.issuer); got != tc.want {
			t.Errorf("OCSP for %x under %q: %s; want %s", tc.serial, tc.issuer.Subject.CommonName, got, tc.want)
		}
	}

	// A revocation of the old CA's certificate reaches its responder.
	ev, err := a.db.RevokeCertificate(ctx, gone.SerialNumber, ReasonKeyCompromise, "test", "")
	if err != nil {
		t.Fatal(err)
	}
	if ev.Certificates[0].Issuer != KeyID(g0) {
		t.Errorf("revocation event names issuer %s; want %s", ev.Certificates[0].Issuer, KeyID(g0))
	}
	if got := ocspStatus(t, a, gone.SerialNumber, g0); got != "revoked" {
		t.Errorf("OCSP for the revoked old certificate: %s", got)
	}
	a.Close()

	// After a restart, each issuer's CRLs list its own revocations, signed
	// by it, at the URL its certificates name.
	a = openRotateTest(t, dir, st)
	shard := CRLShard(gone.SerialNumber, cfg.CRLShards)
	crl0 := getCRL(t, a, "/crl/"+shard+".crl")
	crl1 := getCRL(t, a, "/crl/g1/"+shard+".crl")
	if crl0 == nil || crl1 == nil {
		t.Fatalf("CRL shard %s: g0 %v, g1 %v", shard, crl0 != nil, crl1 != nil)
	}
	if err := crl0.CheckSignatureFrom(g0); err != nil || !listed(crl0, gone.SerialNumber) {
		t.Errorf("old issuer's CRL: signature %v, lists the revoked certificate %v", err, listed(crl0, gone.SerialNumber))
	}
	if err := crl1.CheckSignatureFrom(g1); err != nil || listed(crl1, gone.SerialNumber) {
		t.Errorf("new issuer's CRL: signature %v, lists the old CA's certificate %v", err, listed(crl1, gone.SerialNumber))
	}
	if got := ocspStatus(t, a, gone.SerialNumber, g0); got != "revoked" {
		t.Errorf("OCSP for the revoked old certificate after a restart: %s", got)
	}
	for _, p := range []string{"/crl/g0/" + shard + ".crl", "/crl/g2/" + shard + ".crl", "/crl/g01/" + shard + ".crl", "/crl/g1/x/" + shard + ".crl"} {
		if getCRL(t, a, p) != nil {
			t.Errorf("GET %s: found; want 404", p)
		}
	}

	// A second rotation retires generation 1 too; generation 0 stays.
	a.Close()
	if res, err = Rotate(ctx, dir, RotateOptions{}); err != nil || res.Generation != 2 {
		t.Fatalf("second Rotate: %v, %+v", err, res)
	}
	a = openRotateTest(t, dir, st)
	if len(a.retired) != 2 || ocspStatus(t, a, old.SerialNumber, g0) != "good" || ocspStatus(t, a, fresh.SerialNumber, g1) != "good" {
		t.Errorf("after a second rotation: %d retired, old and fresh not both good", len(a.retired))
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := ReadPasswordFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRotateNeedsTheRootKeyAndPassword(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := Layout{dir}
	if _, err := Init(ctx, dir, InitOptions{Hostnames: []string{"127.0.0.1"}, Password: []byte("pw-1")}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(l.IntermediateCert())
	if _, err := Rotate(ctx, dir, RotateOptions{}); err == nil || !strings.Contains(err.Error(), "--password-file") {
		t.Errorf("Rotate without the password: %v", err)
	}
	if _, err := Rotate(ctx, dir, RotateOptions{Password: []byte("wrong")}); err == nil {
		t.Error("Rotate with a wrong password succeeded")
	}
	// The root key kept elsewhere is found with RootKey.
	offline := dir + "/../root_ca_key.offline"
	if err := os.Rename(l.RootKey(), offline); err != nil {
		t.Fatal(err)
	}
	if _, err := Rotate(ctx, dir, RotateOptions{Password: []byte("pw-1")}); err == nil {
		t.Error("Rotate without the root key succeeded")
	}
	after, _ := os.ReadFile(l.IntermediateCert())
	if !bytes.Equal(before, after) || fileExists(l.IntermediateCert()+newSuffix) || fileExists(l.IntermediateKey()+newSuffix) {
		t.Fatal("a refused rotation changed the issuing CA or left files")
	}
	if _, err := Rotate(ctx, dir, RotateOptions{Password: []byte("pw-1"), RootKey: offline}); err != nil {
		t.Errorf("Rotate with --root-key: %v", err)
	}
}

// TestFinishRotation: a rotation cut short after config.json is finished
// at the next start; one cut short before is undone.
func TestFinishRotation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := Layout{dir}
	if _, err := Init(ctx, dir, InitOptions{Hostnames: []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	g0cert, _ := os.ReadFile(l.IntermediateCert())
	g0key, _ := os.ReadFile(l.IntermediateKey())

	// Before the commit: leftovers go, the CA is unchanged.
	for _, p := range []string{l.IntermediateCert() + newSuffix, l.IntermediateKey() + newSuffix} {
		if err := os.WriteFile(p, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	st := storetest.OpenTemp(t)
	a := openRotateTest(t, dir, st)
	if a.issuing.gen != 0 || fileExists(l.IntermediateCert()+newSuffix) || fileExists(l.IntermediateKey()+newSuffix) {
		t.Fatalf("uncommitted leftovers: generation %d, files left", a.issuing.gen)
	}
	a.Close()

	// After the commit, before the renames: put the state back to that.
	res, err := Rotate(ctx, dir, RotateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, mv := range [][2]string{{l.IntermediateCert(), l.IntermediateCert() + newSuffix}, {l.IntermediateKey(), l.IntermediateKey() + newSuffix}} {
		if err := os.Rename(mv[0], mv[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(l.IntermediateCert(), g0cert, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.IntermediateKey(), g0key, 0o600); err != nil {
		t.Fatal(err)
	}
	a = openRotateTest(t, dir, st)
	if a.issuing.gen != 1 || !a.issuing.cert.Equal(res.Cert) || len(a.retired) != 1 {
		t.Fatalf("interrupted rotation not finished: generation %d, %q", a.issuing.gen, a.issuing.cert.Subject.CommonName)
	}
}

// TestIssuerOfOldRecords: certificates stored before the issuer was kept
// with them are attributed by the authority key ID in their DER.
func TestIssuerOfOldRecords(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := Init(ctx, dir, InitOptions{Hostnames: []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	st := storetest.OpenTemp(t)
	a := openRotateTest(t, dir, st)
	leaf := issueOperational(t, a, "GW-LEGACY")
	serial := leaf.SerialNumber.String()
	// Rewrite its record as an older gwpki wrote it: no issuer.
	err := a.db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(certDataBucket)
		var m map[string]any
		if err := json.Unmarshal(b.Get([]byte(serial)), &m); err != nil {
			return err
		}
		if m["issuer"] != KeyID(a.issuing.cert) {
			t.Errorf("stored issuer %v; want %s", m["issuer"], KeyID(a.issuing.cert))
		}
		delete(m, "issuer")
		v, _ := json.Marshal(m)
		return b.Put([]byte(serial), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	v := issuerView{db: a.db, keyID: KeyID(a.issuing.cert)}
	if e, err := v.Lookup(ctx, leaf.SerialNumber); err != nil || e.Status != ocsp.Good {
		t.Errorf("Lookup of a legacy record under its issuer: %v, %v", e, err)
	}
	other := issuerView{db: a.db, keyID: "00"}
	if e, err := other.Lookup(ctx, leaf.SerialNumber); err != nil || e.Status != ocsp.Unknown {
		t.Errorf("Lookup of a legacy record under another issuer: %v, %v", e, err)
	}
	ev, err := a.db.RevokeCertificate(ctx, leaf.SerialNumber, ReasonUnspecified, "test", "")
	if err != nil || ev.Certificates[0].Issuer != KeyID(a.issuing.cert) {
		t.Fatalf("revoke a legacy record: %v, %+v", err, ev)
	}
	count := func(v issuerView) (n int) {
		if err := v.Revocations(ctx, func(crl.Revoked) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n, m := count(v), count(other); n != 1 || m != 0 {
		t.Errorf("revocations: %d under its issuer, %d under another; want 1, 0", n, m)
	}
}
