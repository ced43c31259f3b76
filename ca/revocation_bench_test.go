package ca

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math/big"
	"runtime"
	"testing"
	"time"

	"github.com/smallstep/certificates/db"
	bolt "go.etcd.io/bbolt"

	"github.com/gwpki/gwpki/ca/crl"
	"github.com/gwpki/gwpki/internal/store/storetest"
	"github.com/gwpki/gwpki/internal/testpki"
)

// BenchmarkCRLsFromStore1M is what a server with a million revoked
// certificates does at start: read every revocation record from the store
// and build all 256 CRL shards. Run it alone, it takes a minute:
//
//	go test -run '^$' -bench CRLsFromStore1M -benchtime 1x ./ca
func BenchmarkCRLsFromStore1M(b *testing.B) {
	const n = 1_000_000
	s := storetest.OpenTemp(b)
	d, err := NewDB(s)
	if err != nil {
		b.Fatal(err)
	}
	fillStart := time.Now()
	now := time.Now().UTC().Truncate(time.Second)
	var buf [16]byte
	for done := 0; done < n; {
		err := s.Update(context.Background(), func(tx *bolt.Tx) error {
			bk := tx.Bucket(revokedBucket)
			for i := 0; i < 100_000 && done < n; i++ {
				binary.BigEndian.PutUint64(buf[:8], uint64(now.UnixNano())+uint64(done))
				binary.BigEndian.PutUint64(buf[8:], uint64(done)*0x9e3779b97f4a7c15)
				serial := new(big.Int).SetBytes(buf[:]).String()
				v, err := json.Marshal(&db.RevokedCertificateInfo{
					Serial: serial, ReasonCode: done % 6, Reason: Reason(done % 6).String(),
					RevokedAt: now, ExpiresAt: now.Add(20 * 365 * 24 * time.Hour),
				})
				if err != nil {
					return err
				}
				if err := bk.Put([]byte(serial), v); err != nil {
					return err
				}
				done++
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("filled the store with %d revocation records in %v", n, time.Since(fillStart).Round(time.Millisecond))
	issuer := testpki.NewCA(b, "Bench Issuing CA")
	for b.Loop() {
		start := time.Now()
		builder, err := crl.New(context.Background(), crl.Config{
			Issuer: issuer.Cert, Signer: issuer.Key, Shards: 256, BaseURL: "http://ca.example:8080/crl/",
		}, d)
		if err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		largest := 0
		for i := range 256 {
			largest = max(largest, len(builder.CRL(i)))
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(took.Seconds(), "s-load+build")
		b.ReportMetric(float64(largest), "B-largest-shard")
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "MiB-heap")
		runtime.KeepAlive(builder)
	}
}
