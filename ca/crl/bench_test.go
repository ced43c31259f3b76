package crl

import (
	"context"
	"encoding/binary"
	"math/big"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// genSource is a store of n revocations of random 128-bit serials, made up
// as they are read. It passes one big.Int for every record, as Source allows.
type genSource struct {
	n       int
	numbers map[int]int64
	took    time.Duration // the last Revocations call, fn included
}

func (g *genSource) Revocations(ctx context.Context, fn func(Revoked) error) error {
	start := time.Now()
	defer func() { g.took = time.Since(start) }()
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	var buf [16]byte
	sn := new(big.Int)
	now := time.Now()
	for i := range g.n {
		binary.BigEndian.PutUint64(buf[:8], rng.Uint64())
		binary.BigEndian.PutUint64(buf[8:], rng.Uint64())
		sn.SetBytes(buf[:])
		err := fn(Revoked{
			Serial:    sn,
			RevokedAt: now.Add(-time.Duration(i) * time.Second),
			Reason:    []int{0, 1, 4, 5}[i%4], // unspecified, keyCompromise, superseded, cessationOfOperation
			NotAfter:  now.Add(20 * 365 * 24 * time.Hour),
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (g *genSource) NextCRLNumbers(ctx context.Context, shards []int) ([]*big.Int, error) {
	out := make([]*big.Int, len(shards))
	for i, s := range shards {
		g.numbers[s]++
		out[i] = big.NewInt(g.numbers[s])
	}
	return out, nil
}

// BenchmarkRebuild1M loads a million revoked certificates into 256 shards
// through Source, then rebuilds every shard, and one. Run it alone:
//
//	go test -run '^$' -bench Rebuild1M -benchtime 1x ./ca/crl
func BenchmarkRebuild1M(b *testing.B) {
	const n = 1_000_000
	ctx := context.Background()
	ca := newTestCA(b, time.Now())
	cfg := ca.config(DefaultShards)
	for b.Loop() {
		src := &genSource{n: n, numbers: map[int]int64{}}
		start := time.Now()
		bld, err := New(ctx, cfg, src)
		if err != nil {
			b.Fatal(err)
		}
		newTook := time.Since(start)

		start = time.Now()
		if _, err := bld.rebuild(ctx, bld.all(), "bench"); err != nil {
			b.Fatal(err)
		}
		rebuildAll := time.Since(start)

		start = time.Now()
		if _, err := bld.rebuild(ctx, []int{7}, "bench"); err != nil {
			b.Fatal(err)
		}
		rebuildOne := time.Since(start)

		largest, total, entries := 0, 0, 0
		for s := range bld.shards {
			c := bld.shards[s].cur.Load()
			largest = max(largest, len(c.der))
			total += len(c.der)
			entries += c.entries
		}
		if entries != n {
			b.Fatalf("CRLs list %d entries; want %d", entries, n)
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		runtime.KeepAlive(bld)

		b.ReportMetric(src.took.Seconds(), "load-s")
		b.ReportMetric((newTook - src.took).Seconds(), "first-build-s")
		b.ReportMetric(rebuildAll.Seconds(), "rebuild-all-s")
		b.ReportMetric(float64(rebuildOne.Microseconds())/1000, "rebuild-one-ms")
		b.ReportMetric(float64(largest), "largest-shard-B")
		b.ReportMetric(float64(total)/(1<<20), "all-CRLs-MB")
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-inuse-MB")
	}
}
