package telemetry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAppendParallel appends from 64 goroutines (32 per core on the
// 2-core reference machine), as a broker with many publishing gateways
// does, each Append waiting for its group commit's fsync. It reports
// messages per second and how many shared a commit.
func BenchmarkAppendParallel(b *testing.B) {
	var commits, committed atomic.Int64
	s, _ := openTemp(b, Options{OnCommit: func(n int, _ time.Duration) {
		commits.Add(1)
		committed.Add(int64(n))
	}})
	payload := []byte(`{"temp":21.5,"flow":3.25,"pressure":1.013,"state":"running"}`)
	var gwN atomic.Int64
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	commits.Store(0)
	committed.Store(0)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		gw := fmt.Sprintf("BENCH-%04d", gwN.Add(1))
		m := Message{Gateway: gw, Topic: "gw/" + gw + "/telemetry", Payload: payload}
		for pb.Next() {
			if err := s.Append(context.Background(), m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if c := commits.Load(); c > 0 {
		b.ReportMetric(float64(committed.Load())/float64(c), "msgs/commit")
	}
}

// BenchmarkQuery reads pages of 100 from a store of 200 gateways x 500
// messages spread over 24 hourly partitions, each query one gateway over a
// random six-hour window.
func BenchmarkQuery(b *testing.B) {
	const gateways, each = 200, 500
	s, _ := openTemp(b, Options{Partition: time.Hour})
	ctx := context.Background()
	payload := []byte(`{"temp":21.5,"flow":3.25,"pressure":1.013,"state":"running"}`)
	// Filled through Append, concurrently so that group commit keeps the
	// setup short.
	step := 24 * time.Hour / each
	errs := make(chan error, gateways)
	for g := range gateways {
		go func() {
			gw := fmt.Sprintf("Q-%03d", g)
			for i := range each {
				m := Message{Gateway: gw, Topic: "gw/" + gw + "/telemetry", Time: base.Add(time.Duration(i) * step), Payload: payload}
				if err := s.Append(ctx, m); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range gateways {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	got := 0
	for b.Loop() {
		since := base.Add(time.Duration(rng.IntN(18)) * time.Hour)
		page, err := s.Query(ctx, Query{Gateway: fmt.Sprintf("Q-%03d", rng.IntN(gateways)), Since: since, Until: since.Add(6 * time.Hour), Limit: 100})
		if err != nil {
			b.Fatal(err)
		}
		got += len(page.Messages)
	}
	if got != 100*b.N {
		b.Fatalf("%d messages over %d queries; want 100 each", got, b.N)
	}
}
