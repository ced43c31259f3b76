package ca_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/smallstep/certificates/authority/provisioner"
	"github.com/smallstep/certificates/db"
	"github.com/smallstep/nosql/database"
	bolt "go.etcd.io/bbolt"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/internal/store"
	"github.com/gwpki/gwpki/internal/store/storetest"
)

// dbTestIssuer is a throwaway CA that signs the test leaves.
var dbTestIssuer = sync.OnceValues(func() (*x509.Certificate, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "db test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, key.Public(), key)
	if err != nil {
		panic(err)
	}
	crt, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return crt, key
})

// dbTestLeaf describes a leaf for dbTestCert.
type dbTestLeaf struct {
	serial        int64
	gateway       string // URI SAN urn:gwpki:gateway:<gateway> when set
	subjectSerial string // subject serialNumber attribute when set
	notAfter      time.Time
}

// dbTestCert signs a leaf with dbTestIssuer.
func dbTestCert(tb testing.TB, l dbTestLeaf) *x509.Certificate {
	tb.Helper()
	issuer, key := dbTestIssuer()
	if l.notAfter.IsZero() {
		l.notAfter = time.Now().Add(time.Hour).Truncate(time.Second)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(l.serial),
		Subject:      pkix.Name{CommonName: "leaf", SerialNumber: l.subjectSerial},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     l.notAfter,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if l.gateway != "" {
		tpl.URIs = []*url.URL{ca.GatewayURI(l.gateway)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, issuer, key.Public(), key)
	if err != nil {
		tb.Fatalf("create certificate %d: %v", l.serial, err)
	}
	crt, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("parse certificate %d: %v", l.serial, err)
	}
	return crt
}

func dbTestProvisioner(name string) *provisioner.JWK {
	return &provisioner.JWK{ID: name + "-id", Name: name, Type: "JWK"}
}

// raJWK is a provisioner carrying RA data, as step-ca's RA wrapper does.
type raJWK struct {
	*provisioner.JWK
	ra *provisioner.RAInfo
}

func (p raJWK) RAInfo() *provisioner.RAInfo { return p.ra }

func newTestDB(tb testing.TB) (*ca.DB, *store.DB) {
	tb.Helper()
	s := storetest.OpenTemp(tb)
	d, err := ca.NewDB(s)
	if err != nil {
		tb.Fatalf("NewDB: %v", err)
	}
	return d, s
}

func serials(recs []ca.CertRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Serial
	}
	return out
}

func TestDBStoreAndQuery(t *testing.T) {
	expiry := time.Now().Add(48 * time.Hour).Truncate(time.Second).UTC()
	tests := []struct {
		name        string
		leaf        dbTestLeaf
		prov        provisioner.Interface // nil: StoreCertificate
		wantGateway string
		wantProv    *db.ProvisionerData
	}{
		{
			name:        "gateway URI with provisioner",
			leaf:        dbTestLeaf{serial: 1001, gateway: "GW-1", subjectSerial: "ignored", notAfter: expiry},
			prov:        dbTestProvisioner("line-1"),
			wantGateway: "GW-1",
			wantProv:    &db.ProvisionerData{ID: "line-1-id", Name: "line-1", Type: "JWK"},
		},
		{
			name:        "subject serialNumber fallback",
			leaf:        dbTestLeaf{serial: 1002, subjectSerial: "GW-2", notAfter: expiry},
			prov:        dbTestProvisioner("line-2"),
			wantGateway: "GW-2",
			wantProv:    &db.ProvisionerData{ID: "line-2-id", Name: "line-2", Type: "JWK"},
		},
		{
			name: "no gateway",
			leaf: dbTestLeaf{serial: 1003, notAfter: expiry},
			prov: dbTestProvisioner("line-1"),
			wantProv: &db.ProvisionerData{
				ID: "line-1-id", Name: "line-1", Type: "JWK",
			},
		},
		{
			name:        "no provisioner",
			leaf:        dbTestLeaf{serial: 1004, gateway: "GW-4", notAfter: expiry},
			wantGateway: "GW-4",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := newTestDB(t)
			crt := dbTestCert(t, tt.leaf)
			var err error
			if tt.prov != nil {
				issuer, _ := dbTestIssuer()
				err = d.StoreCertificateChain(tt.prov, crt, issuer)
			} else {
				err = d.StoreCertificate(crt)
			}
			if err != nil {
				t.Fatalf("store: %v", err)
			}
			serial := fmt.Sprint(tt.leaf.serial)

			got, err := d.Certificate(serial)
			if err != nil {
				t.Fatalf("Certificate(%s): %v", serial, err)
			}
			want := &ca.CertRecord{
				Serial:      serial,
				DER:         crt.Raw,
				Provisioner: tt.wantProv,
				Gateway:     tt.wantGateway,
				NotAfter:    expiry,
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Certificate(%s) mismatch (-want +got):\n%s", serial, diff)
			}

			parsed, err := d.GetCertificate(serial)
			if err != nil || !bytes.Equal(parsed.Raw, crt.Raw) {
				t.Errorf("GetCertificate(%s) = %v; want the stored leaf", serial, err)
			}

			if tt.wantGateway != "" {
				recs, err := d.CertificatesByGateway(tt.wantGateway)
				if err != nil || !slices.Equal(serials(recs), []string{serial}) {
					t.Errorf("CertificatesByGateway(%s) = %v, %v; want [%s]", tt.wantGateway, serials(recs), err, serial)
				}
			}
			if tt.wantProv != nil {
				recs, err := d.CertificatesByProvisioner(tt.wantProv.Name)
				if err != nil || !slices.Equal(serials(recs), []string{serial}) {
					t.Errorf("CertificatesByProvisioner(%s) = %v, %v; want [%s]", tt.wantProv.Name, serials(recs), err, serial)
				}
				data, err := d.GetCertificateData(serial)
				if err != nil || !cmp.Equal(data.Provisioner, tt.wantProv) {
					t.Errorf("GetCertificateData(%s) = %+v, %v; want provisioner %+v", serial, data, err, tt.wantProv)
				}
			}
			if certs, revoked, err := d.Stats(); err != nil || certs != 1 || revoked != 0 {
				t.Errorf("Stats() = %d, %d, %v; want 1, 0, nil", certs, revoked, err)
			}
		})
	}
}

func TestDBNotFound(t *testing.T) {
	d, _ := newTestDB(t)
	if _, err := d.GetCertificate("42"); !errors.Is(err, ca.ErrCertificateNotFound) || !database.IsErrNotFound(err) {
		t.Errorf("GetCertificate(unknown) = %v; want ErrCertificateNotFound matching database.ErrNotFound", err)
	}
	if _, err := d.Certificate("42"); !errors.Is(err, ca.ErrCertificateNotFound) {
		t.Errorf("Certificate(unknown) = %v; want ErrCertificateNotFound", err)
	}
	if _, err := d.GetCertificateData("42"); !errors.Is(err, ca.ErrCertificateNotFound) {
		t.Errorf("GetCertificateData(unknown) = %v; want ErrCertificateNotFound", err)
	}
	if _, err := d.RevokedCertificate("42"); !errors.Is(err, ca.ErrNotRevoked) {
		t.Errorf("RevokedCertificate(unknown) = %v; want ErrNotRevoked", err)
	}
	if recs, err := d.CertificatesByGateway("nobody"); err != nil || len(recs) != 0 {
		t.Errorf("CertificatesByGateway(nobody) = %v, %v; want none, nil", recs, err)
	}
	if err := d.StoreCertificateChain(nil); err == nil {
		t.Error("StoreCertificateChain with no certificate: got nil; want error")
	}
	if err := d.Revoke(&db.RevokedCertificateInfo{}); err == nil {
		t.Error("Revoke with empty serial: got nil; want error")
	}
}

func TestDBIndexesKeepNamesApart(t *testing.T) {
	d, _ := newTestDB(t)
	// Names that prefix each other must not share index entries.
	stored := []struct {
		serial        int64
		gateway, prov string
	}{
		{1, "a", "st"},
		{2, "ab", "st2"},
		{3, "a", "st2"},
		{4, "abc", "s"},
	}
	for _, s := range stored {
		crt := dbTestCert(t, dbTestLeaf{serial: s.serial, gateway: s.gateway})
		if err := d.StoreCertificateChain(dbTestProvisioner(s.prov), crt); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		query func(string) ([]ca.CertRecord, error)
		kind  string
		name  string
		want  []string
	}{
		{d.CertificatesByGateway, "gateway", "a", []string{"1", "3"}},
		{d.CertificatesByGateway, "gateway", "ab", []string{"2"}},
		{d.CertificatesByGateway, "gateway", "abc", []string{"4"}},
		{d.CertificatesByProvisioner, "provisioner", "st", []string{"1"}},
		{d.CertificatesByProvisioner, "provisioner", "st2", []string{"2", "3"}},
		{d.CertificatesByProvisioner, "provisioner", "s", []string{"4"}},
	} {
		recs, err := tt.query(tt.name)
		got := serials(recs)
		slices.Sort(got)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("certificates of %s %q = %v, %v; want %v", tt.kind, tt.name, got, err, tt.want)
		}
	}
}

func TestDBStoreSameSerialAgainMovesIndexes(t *testing.T) {
	d, _ := newTestDB(t)
	first := dbTestCert(t, dbTestLeaf{serial: 7, gateway: "OLD"})
	second := dbTestCert(t, dbTestLeaf{serial: 7, gateway: "NEW"})
	if err := d.StoreCertificateChain(dbTestProvisioner("p1"), first); err != nil {
		t.Fatal(err)
	}
	if err := d.StoreCertificateChain(dbTestProvisioner("p2"), second); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		query func(string) ([]ca.CertRecord, error)
		name  string
		want  int
	}{
		{d.CertificatesByGateway, "OLD", 0},
		{d.CertificatesByGateway, "NEW", 1},
		{d.CertificatesByProvisioner, "p1", 0},
		{d.CertificatesByProvisioner, "p2", 1},
	} {
		if recs, err := tt.query(tt.name); err != nil || len(recs) != tt.want {
			t.Errorf("certificates of %q = %v, %v; want %d", tt.name, serials(recs), err, tt.want)
		}
	}
	if certs, _, _ := d.Stats(); certs != 1 {
		t.Errorf("Stats certs = %d after storing one serial twice; want 1", certs)
	}
}

func TestDBUseToken(t *testing.T) {
	d, s := newTestDB(t)
	const token = "eyJhbGciOiJFUzI1NiJ9.secret-token-payload.signature"
	for i, tt := range []struct {
		id, tok string
		want    bool
	}{
		{"jti-1", token, true},
		{"jti-1", token, false},           // replay
		{"jti-1", "another token", false}, // same id, other token
		{"jti-2", token, true},
	} {
		got, err := d.UseToken(tt.id, tt.tok)
		if err != nil || got != tt.want {
			t.Errorf("call %d: UseToken(%s) = %v, %v; want %v, nil", i, tt.id, got, err, tt.want)
		}
	}
	// The token itself must not reach the file, only its hash.
	err := s.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				if bytes.Contains(k, []byte("secret-token")) || bytes.Contains(v, []byte("secret-token")) {
					t.Errorf("bucket %s key %q holds the plaintext token", name, k)
				}
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDBUseStationToken(t *testing.T) {
	d, s := newTestDB(t)
	now := time.Now()
	old, fresh := now.Add(-10*time.Minute), now.Add(5*time.Minute)
	const token = "eyJhbGciOiJFUzI1NiJ9.secret-station-token.signature"
	for i, tt := range []struct {
		exp  time.Time
		tok  string
		want bool
	}{
		{fresh, token, true},
		{fresh, token, false}, // replay
		{fresh, "other", true},
		{old, "expired long ago", true},
		{old, "expired too", true},
	} {
		if got, err := d.UseStationToken(tt.exp, tt.tok); err != nil || got != tt.want {
			t.Errorf("call %d: UseStationToken(%q) = %v, %v; want %v, nil", i, tt.tok, got, err, tt.want)
		}
	}
	if n, err := d.PruneStationTokens(now.Add(-2*time.Minute), 1); n != 1 || err != nil {
		t.Errorf("PruneStationTokens(limit 1) = %d, %v; want 1, nil", n, err)
	}
	if n, err := d.PruneStationTokens(now.Add(-2*time.Minute), 100); n != 1 || err != nil {
		t.Errorf("second PruneStationTokens = %d, %v; want the 1 expired token left, nil", n, err)
	}
	// Unexpired uses survive pruning: the replay is still refused.
	if got, err := d.UseStationToken(fresh, token); got || err != nil {
		t.Errorf("replay after pruning = %v, %v; want false, nil", got, err)
	}
	err := s.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				if bytes.Contains(k, []byte("secret-station")) || bytes.Contains(v, []byte("secret-station")) {
					t.Errorf("bucket %s key %q holds the plaintext token", name, k)
				}
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDBStoreBirthCertificate(t *testing.T) {
	d, _ := newTestDB(t)
	exp := time.Now().Add(5 * time.Minute)
	first := dbTestCert(t, dbTestLeaf{serial: 700, gateway: "GW-T"})
	if err := d.StoreBirthCertificate(dbTestProvisioner("line1"), exp, "tok-1", "", "station:line1", first); err != nil {
		t.Fatalf("first use: %v", err)
	}
	// The same token again: refused, and the second certificate not stored.
	second := dbTestCert(t, dbTestLeaf{serial: 701, gateway: "GW-T"})
	if err := d.StoreBirthCertificate(dbTestProvisioner("line1"), exp, "tok-1", "", "station:line1", second); !errors.Is(err, ca.ErrTokenUsed) {
		t.Errorf("replay: %v; want ErrTokenUsed", err)
	}
	if _, err := d.Certificate("701"); !errors.Is(err, ca.ErrCertificateNotFound) {
		t.Errorf("certificate of the replay: %v; want not stored", err)
	}
	if recs, err := d.CertificatesByProvisioner("line1"); err != nil || len(recs) != 1 {
		t.Errorf("certificates of line1 = %v, %v; want the first only", serials(recs), err)
	}
	// The two ways of spending a token see each other.
	if ok, err := d.UseStationToken(exp, "tok-1"); ok || err != nil {
		t.Errorf("UseStationToken after StoreBirthCertificate = %v, %v; want false, nil", ok, err)
	}
	if ok, err := d.UseStationToken(exp, "tok-2"); !ok || err != nil {
		t.Fatalf("UseStationToken(tok-2) = %v, %v; want true, nil", ok, err)
	}
	if err := d.StoreBirthCertificate(dbTestProvisioner("line1"), exp, "tok-2", "", "station:line1", second); !errors.Is(err, ca.ErrTokenUsed) {
		t.Errorf("certificate for a token spent on a refusal: %v; want ErrTokenUsed", err)
	}

	// One birth certificate per gateway: a second is refused unless it
	// replaces the first, which is then revoked as superseded.
	if err := d.StoreBirthCertificate(dbTestProvisioner("line1"), exp, "tok-3", "", "station:line1", second); !errors.Is(err, ca.ErrBirthCertificateExists) {
		t.Errorf("second birth certificate: %v; want ErrBirthCertificateExists", err)
	}
	if rec, err := d.BirthCertificate("GW-T"); err != nil || rec.Serial != "700" {
		t.Fatalf("BirthCertificate(GW-T) = %v, %v; want serial 700", rec, err)
	}
	if err := d.StoreBirthCertificate(dbTestProvisioner("line1"), exp, "tok-4", "700", "station:line1", second); err != nil {
		t.Fatalf("replacing birth certificate: %v", err)
	}
	if rec, err := d.BirthCertificate("GW-T"); err != nil || rec.Serial != "701" {
		t.Errorf("BirthCertificate(GW-T) after the reissue = %v, %v; want serial 701", rec, err)
	}
	if info, err := d.RevokedCertificate("700"); err != nil || info.ReasonCode != int(ca.ReasonSuperseded) {
		t.Errorf("the replaced certificate: %+v, %v; want revoked as superseded", info, err)
	}
	if _, err := d.BirthCertificate("GW-NONE"); !errors.Is(err, ca.ErrCertificateNotFound) {
		t.Errorf("BirthCertificate of an unknown gateway: %v; want ErrCertificateNotFound", err)
	}

	// Decommissioned (every birth certificate revoked, here after the
	// caller looked up 701 as the one to replace): no new one, in the
	// same write that would have stored it.
	if _, _, err := d.RevokeGateway(context.Background(), "GW-T", ca.ReasonCessationOfOperation, "user:admin", ""); err != nil {
		t.Fatal(err)
	}
	third := dbTestCert(t, dbTestLeaf{serial: 702, gateway: "GW-T"})
	for _, replaces := range []string{"701", ""} {
		if err := d.StoreBirthCertificate(dbTestProvisioner("line1"), exp, "tok-5"+replaces, replaces, "station:line1", third); !errors.Is(err, ca.ErrGatewayDecommissioned) {
			t.Errorf("birth certificate of a decommissioned gateway (replacing %q): %v; want ErrGatewayDecommissioned", replaces, err)
		}
	}
	if _, err := d.Certificate("702"); !errors.Is(err, ca.ErrCertificateNotFound) {
		t.Errorf("certificate for a decommissioned gateway: %v; want not stored", err)
	}
}

func TestDBRevoke(t *testing.T) {
	d, _ := newTestDB(t)
	notAfter := time.Now().Add(time.Hour).Truncate(time.Second).UTC()
	crt := dbTestCert(t, dbTestLeaf{serial: 500, gateway: "GW-R", notAfter: notAfter})
	if err := d.StoreCertificateChain(dbTestProvisioner("p"), crt); err != nil {
		t.Fatal(err)
	}
	if revoked, err := d.IsRevoked("500"); err != nil || revoked {
		t.Fatalf("IsRevoked before Revoke = %v, %v; want false, nil", revoked, err)
	}
	revokedAt := time.Now().UTC().Truncate(time.Second)
	first := &db.RevokedCertificateInfo{Serial: "500", ReasonCode: 1, Reason: "key compromise", RevokedAt: revokedAt}
	if err := d.Revoke(first); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	again := &db.RevokedCertificateInfo{Serial: "500", ReasonCode: 4, Reason: "superseded"}
	if err := d.Revoke(again); !errors.Is(err, db.ErrAlreadyExists) {
		t.Errorf("second Revoke = %v; want db.ErrAlreadyExists", err)
	}
	if revoked, err := d.IsRevoked("500"); err != nil || !revoked {
		t.Errorf("IsRevoked after Revoke = %v, %v; want true, nil", revoked, err)
	}
	// The first record is kept, with the expiry taken from the stored leaf.
	want := *first
	want.ExpiresAt = notAfter
	got, err := d.RevokedCertificate("500")
	if err != nil {
		t.Fatalf("RevokedCertificate: %v", err)
	}
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("RevokedCertificate mismatch (-want +got):\n%s", diff)
	}
	rec, err := d.Certificate("500")
	if err != nil || rec.Revoked == nil || rec.Revoked.Reason != "key compromise" {
		t.Errorf("Certificate(500).Revoked = %+v, %v; want the revocation", rec, err)
	}
	// A serial that was never stored can be revoked too (step-ca allows it).
	if err := d.Revoke(&db.RevokedCertificateInfo{Serial: "999"}); err != nil {
		t.Errorf("Revoke(unknown serial): %v", err)
	}
	list, err := d.GetRevokedCertificates()
	if err != nil {
		t.Fatal(err)
	}
	var got2 []string
	for _, r := range *list {
		got2 = append(got2, r.Serial)
	}
	slices.Sort(got2)
	if !slices.Equal(got2, []string{"500", "999"}) {
		t.Errorf("GetRevokedCertificates serials = %v; want [500 999]", got2)
	}
	if certs, revoked, err := d.Stats(); err != nil || certs != 1 || revoked != 2 {
		t.Errorf("Stats() = %d, %d, %v; want 1, 2, nil", certs, revoked, err)
	}
}

func TestDBRenewedKeepsProvisioner(t *testing.T) {
	d, _ := newTestDB(t)
	ra := &provisioner.RAInfo{ProvisionerName: "upstream", AuthorityID: "auth-1"}
	prov := raJWK{JWK: dbTestProvisioner("line-7"), ra: ra}
	orig := dbTestCert(t, dbTestLeaf{serial: 70, gateway: "GW-7"})
	if err := d.StoreCertificateChain(prov, orig); err != nil {
		t.Fatal(err)
	}
	renewed := dbTestCert(t, dbTestLeaf{serial: 71, gateway: "GW-7"})
	issuer, _ := dbTestIssuer()
	if err := d.StoreRenewedCertificate(orig, renewed, issuer); err != nil {
		t.Fatalf("StoreRenewedCertificate: %v", err)
	}
	rec, err := d.Certificate("71")
	if err != nil {
		t.Fatal(err)
	}
	wantProv := &db.ProvisionerData{ID: "line-7-id", Name: "line-7", Type: "JWK"}
	if !cmp.Equal(rec.Provisioner, wantProv) || rec.RenewedFrom != "70" {
		t.Errorf("renewed record: provisioner %+v, renewed from %q; want %+v, \"70\"", rec.Provisioner, rec.RenewedFrom, wantProv)
	}
	data, err := d.GetCertificateData("71")
	if err != nil || !cmp.Equal(data.RaInfo, ra) {
		t.Errorf("GetCertificateData(71).RaInfo = %+v, %v; want %+v", data, err, ra)
	}
	for _, q := range []struct {
		kind  string
		query func(string) ([]ca.CertRecord, error)
		name  string
	}{{"gateway", d.CertificatesByGateway, "GW-7"}, {"provisioner", d.CertificatesByProvisioner, "line-7"}} {
		recs, err := q.query(q.name)
		got := serials(recs)
		slices.Sort(got)
		if err != nil || !slices.Equal(got, []string{"70", "71"}) {
			t.Errorf("certificates of %s %s = %v, %v; want [70 71]", q.kind, q.name, got, err)
		}
	}

	// Renewing a certificate the store never saw still stores the new one.
	unknownOld := dbTestCert(t, dbTestLeaf{serial: 80})
	renewed2 := dbTestCert(t, dbTestLeaf{serial: 81, gateway: "GW-8"})
	if err := d.StoreRenewedCertificate(unknownOld, renewed2); err != nil {
		t.Fatalf("StoreRenewedCertificate(unknown old): %v", err)
	}
	if rec, err := d.Certificate("81"); err != nil || rec.Provisioner != nil || rec.Gateway != "GW-8" {
		t.Errorf("Certificate(81) = %+v, %v; want no provisioner, gateway GW-8", rec, err)
	}
}

func TestDBCRL(t *testing.T) {
	d, _ := newTestDB(t)
	_, err := d.GetCRL()
	if !errors.Is(err, ca.ErrCRLNotFound) || !database.IsErrNotFound(err) {
		t.Fatalf("GetCRL before StoreCRL = %v; want ErrCRLNotFound matching database.ErrNotFound (step-ca builds the first CRL on it)", err)
	}
	for n := int64(1); n <= 2; n++ {
		info := &db.CertificateRevocationListInfo{
			Number:    n,
			ExpiresAt: time.Now().Add(time.Hour).UTC().Truncate(time.Second),
			Duration:  time.Hour,
			DER:       []byte{0x30, byte(n)},
		}
		if err := d.StoreCRL(info); err != nil {
			t.Fatalf("StoreCRL: %v", err)
		}
		got, err := d.GetCRL()
		if err != nil {
			t.Fatalf("GetCRL: %v", err)
		}
		if diff := cmp.Diff(info, got); diff != "" {
			t.Errorf("GetCRL after storing number %d (-want +got):\n%s", n, diff)
		}
	}
}

func TestDBSSHIsNotSupported(t *testing.T) {
	d, _ := newTestDB(t)
	if revoked, err := d.IsSSHRevoked("1"); revoked || err != nil {
		t.Errorf("IsSSHRevoked = %v, %v; want false, nil", revoked, err)
	}
	if err := d.RevokeSSH(&db.RevokedCertificateInfo{Serial: "1"}); !errors.Is(err, db.ErrNotImplemented) {
		t.Errorf("RevokeSSH = %v; want db.ErrNotImplemented", err)
	}
	if err := d.StoreSSHCertificate(nil); !errors.Is(err, db.ErrNotImplemented) {
		t.Errorf("StoreSSHCertificate = %v; want db.ErrNotImplemented", err)
	}
	if ok, err := d.IsSSHHost("host"); ok || !errors.Is(err, db.ErrNotImplemented) {
		t.Errorf("IsSSHHost = %v, %v; want false, db.ErrNotImplemented", ok, err)
	}
	if hosts, err := d.GetSSHHostPrincipals(); len(hosts) != 0 || err != nil {
		t.Errorf("GetSSHHostPrincipals = %v, %v; want none, nil", hosts, err)
	}
}

func TestDBWritesAreOneUpdateEach(t *testing.T) {
	var updates atomic.Int64
	s := storetest.OpenTempWith(t, store.Options{OnCommit: func(n int, _ time.Duration) { updates.Add(int64(n)) }})
	d, err := ca.NewDB(s)
	if err != nil {
		t.Fatal(err)
	}
	old := dbTestCert(t, dbTestLeaf{serial: 1, gateway: "G"})
	renewed := dbTestCert(t, dbTestLeaf{serial: 2, gateway: "G"})
	for _, tt := range []struct {
		name  string
		write func() error
	}{
		{"StoreCertificateChain", func() error { return d.StoreCertificateChain(dbTestProvisioner("p"), old) }},
		{"StoreRenewedCertificate", func() error { return d.StoreRenewedCertificate(old, renewed) }},
		{"StoreCertificate", func() error { return d.StoreCertificate(old) }},
		{"UseToken", func() error { _, err := d.UseToken("id", "tok"); return err }},
		{"Revoke", func() error { return d.Revoke(&db.RevokedCertificateInfo{Serial: "1"}) }},
		{"StoreCRL", func() error { return d.StoreCRL(&db.CertificateRevocationListInfo{Number: 1}) }},
	} {
		before := updates.Load()
		if err := tt.write(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		// UseToken answers before its batch commits (store.Apply): wait
		// for the commit it is part of.
		for deadline := time.Now().Add(5 * time.Second); updates.Load() == before && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		if got := updates.Load() - before; got != 1 {
			t.Errorf("%s committed %d store updates; want exactly 1 (all-or-nothing)", tt.name, got)
		}
	}
}

func TestDBSurvivesReopenAndShutdown(t *testing.T) {
	d, s := newTestDB(t)
	crt := dbTestCert(t, dbTestLeaf{serial: 300, gateway: "GW-P"})
	if err := d.StoreCertificateChain(dbTestProvisioner("line-p"), crt); err != nil {
		t.Fatal(err)
	}
	if _, err := d.UseToken("tok-id", "tok"); err != nil {
		t.Fatal(err)
	}
	if err := d.Revoke(&db.RevokedCertificateInfo{Serial: "300", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if err := d.StoreCRL(&db.CertificateRevocationListInfo{Number: 9, DER: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	// Shutdown is what step-ca calls when an authority is replaced: the
	// shared store must stay usable.
	if err := d.Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, err := d.UseToken("after-shutdown", "tok"); err != nil {
		t.Errorf("UseToken after Shutdown: %v; want the shared store still open", err)
	}

	path := s.Path()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	d2, err := ca.NewDB(s2)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := d2.Certificate("300")
	if err != nil || !bytes.Equal(rec.DER, crt.Raw) || rec.Gateway != "GW-P" || rec.Provisioner == nil || rec.Revoked == nil {
		t.Errorf("after reopen, Certificate(300) = %+v, %v; want the stored, revoked leaf", rec, err)
	}
	if recs, err := d2.CertificatesByProvisioner("line-p"); err != nil || len(recs) != 1 {
		t.Errorf("after reopen, CertificatesByProvisioner = %v, %v; want 1", serials(recs), err)
	}
	if ok, err := d2.UseToken("tok-id", "tok"); ok || err != nil {
		t.Errorf("after reopen, replayed UseToken = %v, %v; want false, nil", ok, err)
	}
	if crl, err := d2.GetCRL(); err != nil || crl.Number != 9 {
		t.Errorf("after reopen, GetCRL = %+v, %v; want number 9", crl, err)
	}
	if certs, revoked, err := d2.Stats(); err != nil || certs != 1 || revoked != 1 {
		t.Errorf("after reopen, Stats = %d, %d, %v; want 1, 1, nil", certs, revoked, err)
	}
}

func TestDBConcurrent(t *testing.T) {
	const workers, perWorker = 64, 8
	d, _ := newTestDB(t)
	certs := make([][]*x509.Certificate, workers)
	for w := range workers {
		for i := range perWorker {
			serial := int64(w*perWorker + i + 1)
			certs[w] = append(certs[w], dbTestCert(t, dbTestLeaf{serial: serial, gateway: fmt.Sprint("GW-", w)}))
		}
	}
	var sharedWins atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			prov := dbTestProvisioner(fmt.Sprint("station-", w%4))
			for i, crt := range certs[w] {
				id := fmt.Sprintf("tok-%d-%d", w, i)
				if ok, err := d.UseToken(id, id); err != nil || !ok {
					t.Errorf("UseToken(%s) = %v, %v; want true on first use", id, ok, err)
				}
				if ok, err := d.UseToken("shared", "shared"); err != nil {
					t.Errorf("UseToken(shared): %v", err)
				} else if ok {
					sharedWins.Add(1)
				}
				if err := d.StoreCertificateChain(prov, crt); err != nil {
					t.Errorf("StoreCertificateChain(%s): %v", crt.SerialNumber, err)
				}
			}
		})
	}
	wg.Wait()
	if got := sharedWins.Load(); got != 1 {
		t.Errorf("a token used by %d goroutines was accepted %d times; want 1", workers*perWorker, got)
	}
	if n, _, err := d.Stats(); err != nil || n != workers*perWorker {
		t.Errorf("Stats certs = %d, %v; want %d", n, err, workers*perWorker)
	}
	for w := range workers {
		recs, err := d.CertificatesByGateway(fmt.Sprint("GW-", w))
		if err != nil || len(recs) != perWorker {
			t.Errorf("CertificatesByGateway(GW-%d) = %d records, %v; want %d", w, len(recs), err, perWorker)
		}
	}
	for st := range 4 {
		recs, err := d.CertificatesByProvisioner(fmt.Sprint("station-", st))
		if err != nil || len(recs) != workers/4*perWorker {
			t.Errorf("CertificatesByProvisioner(station-%d) = %d records, %v; want %d", st, len(recs), err, workers/4*perWorker)
		}
	}
}

// BenchmarkStoreCertificateChainParallel measures durable certificate
// writes from many concurrent requests, as step-ca makes them on /sign.
func BenchmarkStoreCertificateChainParallel(b *testing.B) {
	var commits atomic.Int64
	s := storetest.OpenTempWith(b, store.Options{OnCommit: func(int, time.Duration) { commits.Add(1) }})
	d, err := ca.NewDB(s)
	if err != nil {
		b.Fatal(err)
	}
	certs := make([]*x509.Certificate, b.N)
	for i := range certs {
		certs[i] = dbTestCert(b, dbTestLeaf{serial: int64(i + 1), gateway: fmt.Sprint("GW-", i)})
	}
	prov := dbTestProvisioner("bench")
	var next atomic.Int64
	b.SetParallelism(16) // 32 goroutines on 2 cores, like the load
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			crt := certs[next.Add(1)-1]
			if err := d.StoreCertificateChain(prov, crt); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/float64(commits.Load()-1), "writes/commit") // -1: NewDB's
}

// TestDBRevokeOperational revokes a gateway's certificates except its birth
// certificate: what an unclaim does.
func TestDBRevokeOperational(t *testing.T) {
	d, _ := newTestDB(t)
	ctx := context.Background()
	exp := time.Now().Add(5 * time.Minute)
	birth := dbTestCert(t, dbTestLeaf{serial: 800, gateway: "GW-U"})
	if err := d.StoreBirthCertificate(dbTestProvisioner("line1"), exp, "tok-u", "", "station:line1", birth); err != nil {
		t.Fatal(err)
	}
	if ev, err := d.RevokeOperational(ctx, "GW-U", ca.ReasonAffiliationChanged, "user:olga", ""); err != nil || len(ev.Certificates) != 0 {
		t.Fatalf("RevokeOperational with only a birth certificate = %+v, %v; want nothing revoked", ev, err)
	}
	for _, serial := range []int64{801, 802} {
		if err := d.StoreCertificateChain(dbTestProvisioner("bootstrap"), dbTestCert(t, dbTestLeaf{serial: serial, gateway: "GW-U"})); err != nil {
			t.Fatal(err)
		}
	}
	ev, err := d.RevokeOperational(ctx, "GW-U", ca.ReasonAffiliationChanged, "user:olga", "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range ev.Certificates {
		got = append(got, c.Serial.String())
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"801", "802"}) || ev.Actor != "user:olga" {
		t.Errorf("RevokeOperational revoked %v by %s; want 801 and 802 by user:olga", got, ev.Actor)
	}
	if revoked, err := d.IsRevoked("800"); err != nil || revoked {
		t.Errorf("the birth certificate: revoked %v, %v; want still good", revoked, err)
	}
	if info, err := d.RevokedCertificate("801"); err != nil || info.ReasonCode != int(ca.ReasonAffiliationChanged) {
		t.Errorf("801: %+v, %v; want revoked affiliationChanged", info, err)
	}
	if _, err := d.RevokeOperational(ctx, "GW-NONE", ca.ReasonAffiliationChanged, "user:olga", ""); !errors.Is(err, ca.ErrGatewayNotFound) {
		t.Errorf("RevokeOperational of an unknown gateway: %v; want ErrGatewayNotFound", err)
	}
}
