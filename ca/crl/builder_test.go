package crl

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// t0 is a fixed clock reading, on a whole second.
var t0 = time.Date(2030, 5, 1, 12, 0, 0, 0, time.UTC)

func fixedClock(t *time.Time) func() time.Time { return func() time.Time { return *t } }

func TestNewBuildsEveryShard(t *testing.T) {
	ca := newTestCA(t, t0)
	const shards = 8
	var records []Revoked
	for i := range 40 {
		records = append(records, Revoked{
			Serial:    randomSerial(t),
			RevokedAt: t0.Add(-time.Duration(i) * time.Minute).Add(300 * time.Millisecond),
			Reason:    i % 4, // 0 unspecified, 1 keyCompromise, 2 cACompromise, 3 affiliationChanged
			NotAfter:  t0.Add(time.Hour),
		})
	}
	now := t0
	cfg := ca.config(shards)
	cfg.Clock = fixedClock(&now)
	b, err := New(context.Background(), cfg, newMemSource(records...))
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for s := range shards {
		l := parse(t, b.CRL(s), ca.inter)
		if !bytes.Equal(l.RawIssuer, ca.inter.RawSubject) {
			t.Errorf("shard %d: issuer %x; want the issuing CA's subject", s, l.RawIssuer)
		}
		if !bytes.Equal(l.AuthorityKeyId, ca.inter.SubjectKeyId) {
			t.Errorf("shard %d: authority key id %x; want %x", s, l.AuthorityKeyId, ca.inter.SubjectKeyId)
		}
		if l.Number.Cmp(big.NewInt(1)) != 0 {
			t.Errorf("shard %d: CRL number %v; want 1", s, l.Number)
		}
		if !l.ThisUpdate.Equal(t0) || !l.NextUpdate.Equal(t0.Add(DefaultValidity)) {
			t.Errorf("shard %d: thisUpdate %v, nextUpdate %v; want %v, %v", s, l.ThisUpdate, l.NextUpdate, t0, t0.Add(DefaultValidity))
		}
		idp := findExtension(t, l, oidIssuingDistributionPoint)
		if !idp.Critical {
			t.Errorf("shard %d: issuing distribution point is not critical", s)
		}
		if want := issuingDistributionPoint(b.URL(s)).Value; !bytes.Equal(idp.Value, want) {
			t.Errorf("shard %d: issuing distribution point %x; want %x", s, idp.Value, want)
		}
		for i, e := range l.RevokedCertificateEntries {
			if i > 0 && e.SerialNumber.Cmp(l.RevokedCertificateEntries[i-1].SerialNumber) <= 0 {
				t.Errorf("shard %d: entries not sorted by serial", s)
			}
			if Shard(e.SerialNumber, shards) != s {
				t.Errorf("shard %d lists serial %v of shard %d", s, e.SerialNumber, Shard(e.SerialNumber, shards))
			}
		}
		seen += len(l.RevokedCertificateEntries)
	}
	if seen != len(records) {
		t.Errorf("CRLs list %d entries; want %d", seen, len(records))
	}
	for _, r := range records {
		l := parse(t, b.CRL(Shard(r.Serial, shards)), ca.inter)
		e := listed(l, r.Serial)
		if e == nil {
			t.Errorf("serial %v missing from shard %d", r.Serial, Shard(r.Serial, shards))
			continue
		}
		if want := r.RevokedAt.Truncate(time.Second); !e.RevocationTime.Equal(want) {
			t.Errorf("serial %v: revocation time %v; want %v", r.Serial, e.RevocationTime, want)
		}
		if e.ReasonCode != r.Reason {
			t.Errorf("serial %v: reason %d; want %d", r.Serial, e.ReasonCode, r.Reason)
		}
		hasExt := len(e.Extensions) > 0
		if hasExt != (r.Reason != 0) {
			t.Errorf("serial %v, reason %d: entry has extensions %v; want a reason code extension only for a reason other than unspecified", r.Serial, r.Reason, e.Extensions)
		}
	}
	if b.CRL(shards) != nil || b.CRL(-1) != nil {
		t.Error("CRL of a shard out of range is not nil")
	}
}

func findExtension(t *testing.T, l *x509.RevocationList, oid asn1.ObjectIdentifier) *struct {
	Critical bool
	Value    []byte
} {
	t.Helper()
	for _, ext := range l.Extensions {
		if ext.Id.Equal(oid) {
			return &struct {
				Critical bool
				Value    []byte
			}{ext.Critical, ext.Value}
		}
	}
	t.Fatalf("CRL has no extension %v", oid)
	return nil
}

// TestIssuingDistributionPointEncoding checks the DER byte for byte against
// RFC 5280 §5.2.5, written out by hand.
func TestIssuingDistributionPointEncoding(t *testing.T) {
	const uri = "http://crl.example/0001.crl" // 27 octets
	want := "3024" +                          // IssuingDistributionPoint SEQUENCE, 36 octets
		"a01f" + // distributionPoint [0], constructed: explicit around the CHOICE
		"a01d" + // fullName [0], constructed: implicit GeneralNames
		"861b" + hex.EncodeToString([]byte(uri)) + // uniformResourceIdentifier [6] IA5String
		"8101ff" // onlyContainsUserCerts [1] BOOLEAN TRUE
	ext := issuingDistributionPoint(uri)
	if got := hex.EncodeToString(ext.Value); got != want {
		t.Errorf("issuingDistributionPoint(%q) = %s; want %s", uri, got, want)
	}
	if !ext.Critical || !ext.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 28}) {
		t.Errorf("extension %v, critical %v; want 2.5.29.28, critical", ext.Id, ext.Critical)
	}
}

// TestDistributionPointMatchesLeaf checks that the distribution point name
// in a shard's CRL is, byte for byte, the one Go's x509 writes into a leaf
// that names the shard: what RFC 5280 §6.3.3 and openssl compare.
func TestDistributionPointMatchesLeaf(t *testing.T) {
	ca := newTestCA(t, t0)
	b, err := New(context.Background(), ca.config(16), newMemSource())
	if err != nil {
		t.Fatal(err)
	}
	sn := randomSerial(t)
	s := Shard(sn, 16)
	leaf := ca.leaf(t, sn, testBaseURL+ShardName(s)+".crl", t0)
	var leafDP []byte
	for _, ext := range leaf.Extensions {
		if ext.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 31}) {
			in := cryptobyte.String(ext.Value)
			var dps, dp cryptobyte.String
			if !in.ReadASN1(&dps, cbasn1.SEQUENCE) || !dps.ReadASN1(&dp, cbasn1.SEQUENCE) ||
				!dp.ReadASN1Element((*cryptobyte.String)(&leafDP), cbasn1.Tag(0).ContextSpecific().Constructed()) {
				t.Fatalf("leaf CRL distribution points %x: cannot read", ext.Value)
			}
		}
	}
	l := parse(t, b.CRL(s), ca.inter)
	in := cryptobyte.String(findExtension(t, l, oidIssuingDistributionPoint).Value)
	var idp cryptobyte.String
	var crlDP []byte
	if !in.ReadASN1(&idp, cbasn1.SEQUENCE) ||
		!idp.ReadASN1Element((*cryptobyte.String)(&crlDP), cbasn1.Tag(0).ContextSpecific().Constructed()) {
		t.Fatal("CRL issuing distribution point: cannot read")
	}
	if leafDP == nil || !bytes.Equal(crlDP, leafDP) {
		t.Errorf("CRL distribution point %x; want the leaf's %x", crlDP, leafDP)
	}
}

func TestCRLNumberIncreases(t *testing.T) {
	ca := newTestCA(t, t0)
	ctx := context.Background()
	src := newMemSource(Revoked{Serial: big.NewInt(5), RevokedAt: t0})
	number := func(b *Builder, s int) int64 { return parse(t, b.CRL(s), ca.inter).Number.Int64() }

	b, err := New(ctx, ca.config(4), src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.rebuild(ctx, []int{1, 3}, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.rebuild(ctx, b.all(), "test"); err != nil {
		t.Fatal(err)
	}
	for s, want := range []int64{2, 3, 2, 3} {
		if got := number(b, s); got != want {
			t.Errorf("shard %d after two rebuilds: CRL number %d; want %d", s, got, want)
		}
	}
	// A restart on the same store goes on from the persisted numbers.
	b2, err := New(ctx, ca.config(4), src)
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range []int64{3, 4, 3, 4} {
		if got := number(b2, s); got != want {
			t.Errorf("shard %d after a restart: CRL number %d; want %d", s, got, want)
		}
	}
	if got := len(src.callLog()); got != 4 {
		t.Errorf("NextCRLNumbers called %d times for 4 batches; want 4", got)
	}
}

// TestCRLNumberMustIncrease: a store that hands out a number again gets no
// CRL signed with it; the previous CRL stays.
func TestCRLNumberMustIncrease(t *testing.T) {
	ca := newTestCA(t, t0)
	ctx := context.Background()
	src := newMemSource()
	src.stuck = true
	b, err := New(ctx, ca.config(2), src)
	if err != nil {
		t.Fatal(err)
	}
	before := b.CRL(0)
	failed, err := b.rebuild(ctx, b.all(), "test")
	if err == nil || len(failed) != 2 {
		t.Fatalf("rebuild with repeated CRL numbers: failed %v, err %v; want both shards failed", failed, err)
	}
	if !bytes.Equal(b.CRL(0), before) {
		t.Error("CRL replaced after a failed rebuild")
	}
	if _, err := New(ctx, ca.config(2), src); err != nil {
		t.Errorf("a fresh builder refused CRL number 1: %v", err)
	}
}

// TestExpiredEntriesDrop: an entry stays until a CRL issued after its
// certificate expired has listed it, then goes (RFC 5280 §3.3).
func TestExpiredEntriesDrop(t *testing.T) {
	ca := newTestCA(t, t0)
	ctx := context.Background()
	expiring := Revoked{Serial: big.NewInt(1), RevokedAt: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour)}
	expired := Revoked{Serial: big.NewInt(2), RevokedAt: t0.Add(-2 * time.Hour), NotAfter: t0.Add(-time.Hour)}
	forever := Revoked{Serial: big.NewInt(3), RevokedAt: t0.Add(-time.Hour)}
	now := t0
	cfg := ca.config(1)
	cfg.Clock = fixedClock(&now)
	b, err := New(ctx, cfg, newMemSource(expiring, expired, forever))
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		at   time.Time
		want []int64
	}{
		{t0, []int64{1, 2, 3}},                 // New: the expired one is listed once
		{t0.Add(time.Minute), []int64{1, 3}},   // listed after its expiry, so dropped
		{t0.Add(2 * time.Hour), []int64{1, 3}}, // expired, but not yet listed since
		{t0.Add(3 * time.Hour), []int64{3}},    // now it has been
		{t0.Add(1000 * time.Hour), []int64{3}}, // no NotAfter: kept
	} {
		if step.at != t0 {
			now = step.at
			if _, err := b.rebuild(ctx, b.all(), "test"); err != nil {
				t.Fatal(err)
			}
		}
		l := parse(t, b.CRL(0), ca.inter)
		var got []int64
		for _, e := range l.RevokedCertificateEntries {
			got = append(got, e.SerialNumber.Int64())
		}
		if !equalInts(got, step.want) {
			t.Errorf("CRL at %v lists %v; want %v", step.at, got, step.want)
		}
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRevokedTwice: a serial recorded twice is listed once, as last recorded;
// reasons outside RFC 5280's list become unspecified; bad serials are
// ignored.
func TestRevokedTwice(t *testing.T) {
	ca := newTestCA(t, t0)
	ctx := context.Background()
	var logs logBuffer
	now := t0.Add(time.Minute)
	cfg := ca.config(2)
	cfg.Logger = logs.logger()
	cfg.Clock = fixedClock(&now)
	b, err := New(ctx, cfg, newMemSource(
		Revoked{Serial: big.NewInt(10), RevokedAt: t0, Reason: 4},
		Revoked{Serial: big.NewInt(10), RevokedAt: t0, Reason: 5},
	))
	if err != nil {
		t.Fatal(err)
	}
	b.Revoked(Revoked{Serial: big.NewInt(12), RevokedAt: t0, Reason: 1})
	b.Revoked(Revoked{Serial: big.NewInt(12), RevokedAt: t0.Add(time.Second), Reason: 3})
	b.Revoked(Revoked{Serial: big.NewInt(14), RevokedAt: t0, Reason: 7})
	b.Revoked(Revoked{Serial: big.NewInt(16), RevokedAt: t0, Reason: 11})
	b.Revoked(Revoked{Serial: big.NewInt(-16), RevokedAt: t0})
	b.Revoked(Revoked{Serial: new(big.Int).Lsh(big.NewInt(1), 160), RevokedAt: t0})
	b.Revoked(Revoked{})
	b.Revoked(Revoked{Serial: big.NewInt(18)}) // no revocation time: the clock's
	if _, err := b.rebuild(ctx, b.takeDirty(), "test"); err != nil {
		t.Fatal(err)
	}
	l := parse(t, b.CRL(0), ca.inter)
	want := map[int64]int{10: 5, 12: 3, 14: 0, 16: 0, 18: 0}
	if len(l.RevokedCertificateEntries) != len(want) {
		t.Errorf("CRL lists %d entries; want %d", len(l.RevokedCertificateEntries), len(want))
	}
	for sn, reason := range want {
		e := listed(l, big.NewInt(sn))
		if e == nil {
			t.Errorf("serial %d not listed", sn)
			continue
		}
		if e.ReasonCode != reason {
			t.Errorf("serial %d: reason %d; want %d", sn, e.ReasonCode, reason)
		}
	}
	if e := listed(l, big.NewInt(12)); e != nil && !e.RevocationTime.Equal(t0.Add(time.Second)) {
		t.Errorf("serial 12: revoked at %v; want the later record's %v", e.RevocationTime, t0.Add(time.Second))
	}
	if e := listed(l, big.NewInt(18)); e != nil && !e.RevocationTime.Equal(now) {
		t.Errorf("serial 18 without a revocation time: revoked at %v; want the clock's %v", e.RevocationTime, now)
	}
	if n := strings.Count(logs.String(), "ignore revocation"); n != 3 {
		t.Errorf("logged %d ignored revocations; want 3 (negative, too long, nil):\n%s", n, logs.String())
	}
}

// TestEntrySize keeps the promise of doc.go: 40 bytes a revoked certificate.
func TestEntrySize(t *testing.T) {
	if got := unsafe.Sizeof(entry{}); got != 40 {
		t.Errorf("entry takes %d bytes; want 40", got)
	}
}

func TestNewRefuses(t *testing.T) {
	ca := newTestCA(t, t0)
	noCRLSign := newTestCA(t, t0)
	noCRLSign.inter.KeyUsage = x509.KeyUsageCertSign
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"no issuer", func(c *Config) { c.Issuer = nil }},
		{"no signer", func(c *Config) { c.Signer = nil }},
		{"issuer without cRLSign", func(c *Config) { c.Issuer = noCRLSign.inter }},
		{"too many shards", func(c *Config) { c.Shards = MaxShards + 1 }},
		{"negative shards", func(c *Config) { c.Shards = -1 }},
		{"no base URL", func(c *Config) { c.BaseURL = "" }},
		{"base URL without slash", func(c *Config) { c.BaseURL = "http://localhost/crl" }},
		{"relative base URL", func(c *Config) { c.BaseURL = "/crl/" }},
		{"non-ASCII base URL", func(c *Config) { c.BaseURL = "http://bücher.example/crl/" }},
		{"base URL with query", func(c *Config) { c.BaseURL = "http://localhost/crl/?x=/" }},
		{"validity not above interval", func(c *Config) { c.Interval, c.Validity = time.Hour, time.Hour }},
		{"coalesce too long", func(c *Config) { c.Coalesce = 6 * time.Second }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ca.config(4)
			tc.edit(&cfg)
			if _, err := New(context.Background(), cfg, newMemSource()); err == nil {
				t.Error("New accepted the configuration")
			}
		})
	}
}

type failingSource struct{ *memSource }

func (failingSource) Revocations(context.Context, func(Revoked) error) error { return errStore }

func TestNewFailsWithTheStore(t *testing.T) {
	ca := newTestCA(t, t0)
	if _, err := New(context.Background(), ca.config(4), failingSource{newMemSource()}); !errors.Is(err, errStore) {
		t.Errorf("New with a failing Revocations: %v; want %v", err, errStore)
	}
	src := newMemSource()
	src.setFailing(1)
	if _, err := New(context.Background(), ca.config(4), src); !errors.Is(err, errStore) {
		t.Errorf("New with a failing NextCRLNumbers: %v; want %v", err, errStore)
	}
}

// TestMetricsRegistered: a failed New leaves the registry alone, and a second
// builder on one registry is refused.
func TestMetricsRegistered(t *testing.T) {
	ca := newTestCA(t, t0)
	reg := prometheus.NewRegistry()
	cfg := ca.config(2)
	cfg.Registerer = reg
	if _, err := New(context.Background(), cfg, failingSource{newMemSource()}); err == nil {
		t.Fatal("New with a failing source succeeded")
	}
	if _, err := New(context.Background(), cfg, newMemSource(Revoked{Serial: big.NewInt(3)})); err != nil {
		t.Fatalf("New after a failed New on the same registry: %v", err)
	}
	if got := metricValue(t, reg, "gwpki_crl_rebuilds_total", "trigger=start", "result=ok"); got != 2 {
		t.Errorf("rebuilds_total{start,ok} = %v; want 2", got)
	}
	if got := metricValue(t, reg, "gwpki_crl_entries"); got != 1 {
		t.Errorf("crl_entries = %v; want 1", got)
	}
	if _, err := New(context.Background(), cfg, newMemSource()); err == nil {
		t.Error("a second builder registered its metrics on the same registry")
	}
}
