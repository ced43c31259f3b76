package crl

import (
	"context"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The tests of Run use testing/synctest: time is fake, a Sleep returns once
// every goroutine of the test is blocked, so a rebuild that a timer started
// has finished when the Sleep that crossed the timer returns.

// run starts b.Run and stops it at the end of the test, checking that it
// returns nil.
func run(t *testing.T, b *Builder) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func TestCoalesce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ca := newTestCA(t, time.Now())
		src := newMemSource()
		b, err := New(t.Context(), ca.config(DefaultShards), src)
		if err != nil {
			t.Fatal(err)
		}
		run(t, b)
		// A thousand revocations within 0.9 s: the first one starts the
		// one-second coalescing delay.
		serials := make([]*big.Int, 1000)
		var affected []int
		for i := range serials {
			serials[i] = randomSerial(t)
			b.Revoked(Revoked{Serial: serials[i], Reason: 1})
			affected = append(affected, Shard(serials[i], DefaultShards))
			time.Sleep(900 * time.Microsecond)
		}
		slices.Sort(affected)
		affected = slices.Compact(affected)
		time.Sleep(DefaultCoalesce - 900*time.Millisecond - time.Millisecond)
		if n := len(src.callLog()); n != 1 {
			t.Fatalf("%d CRL number reservations before the coalescing delay ran out; want 1 (New's)", n)
		}
		time.Sleep(2 * time.Millisecond)
		calls := src.callLog()
		if len(calls) != 2 {
			t.Fatalf("%d CRL number reservations after 1000 revocations; want 2 (New's, then one for the burst)", len(calls))
		}
		if !slices.Equal(calls[1], affected) {
			t.Errorf("burst rebuilt shards %v; want the %d affected shards %v", calls[1], len(affected), affected)
		}
		numbers := map[int]int64{}
		for s := range DefaultShards {
			numbers[s] = parse(t, b.CRL(s), ca.inter).Number.Int64()
			want := int64(1)
			if _, ok := slices.BinarySearch(affected, s); ok {
				want = 2
			}
			if numbers[s] != want {
				t.Errorf("shard %d: CRL number %d; want %d", s, numbers[s], want)
			}
		}
		for _, sn := range serials {
			if listed(parse(t, b.CRL(Shard(sn, DefaultShards)), ca.inter), sn) == nil {
				t.Errorf("serial %v not listed after the coalescing delay", sn)
			}
		}

		// Nothing more until the schedule, which rebuilds every shard.
		time.Sleep(DefaultInterval - 2*time.Second)
		if n := len(src.callLog()); n != 2 {
			t.Errorf("%d CRL number reservations before the scheduled rebuild; want 2", n)
		}
		time.Sleep(2 * time.Second)
		calls = src.callLog()
		if len(calls) != 3 || !slices.Equal(calls[2], b.all()) {
			t.Fatalf("after an interval: reservations %d, last for %d shards; want 3, the last for all %d", len(calls), len(calls[len(calls)-1]), DefaultShards)
		}
		for s := range DefaultShards {
			if got := parse(t, b.CRL(s), ca.inter).Number.Int64(); got != numbers[s]+1 {
				t.Errorf("shard %d after the scheduled rebuild: CRL number %d; want %d", s, got, numbers[s]+1)
			}
		}
	})
}

func TestRevokedListedAfterCoalesce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ca := newTestCA(t, time.Now())
		b, err := New(t.Context(), ca.config(4), newMemSource())
		if err != nil {
			t.Fatal(err)
		}
		run(t, b)
		sn := randomSerial(t)
		revokedAt := time.Now()
		b.Revoked(Revoked{Serial: sn, RevokedAt: revokedAt, Reason: 1, NotAfter: revokedAt.Add(time.Hour)})
		time.Sleep(DefaultCoalesce - time.Millisecond)
		if listed(parse(t, b.CRL(Shard(sn, 4)), ca.inter), sn) != nil {
			t.Error("listed before the coalescing delay ran out")
		}
		time.Sleep(2 * time.Millisecond)
		l := parse(t, b.CRL(Shard(sn, 4)), ca.inter)
		e := listed(l, sn)
		if e == nil {
			t.Fatalf("not listed %v after the revocation", DefaultCoalesce)
		}
		if !e.RevocationTime.Equal(revokedAt) || e.ReasonCode != 1 {
			t.Errorf("entry revoked at %v for reason %d; want %v, 1", e.RevocationTime, e.ReasonCode, revokedAt)
		}
		if !l.ThisUpdate.Equal(revokedAt.Add(DefaultCoalesce).Truncate(time.Second)) {
			t.Errorf("thisUpdate %v; want %v", l.ThisUpdate, revokedAt.Add(DefaultCoalesce))
		}
	})
}

func TestRetryAfterFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ca := newTestCA(t, time.Now())
		var logs logBuffer
		reg := prometheus.NewRegistry()
		cfg := ca.config(4)
		cfg.Logger = logs.logger()
		cfg.Registerer = reg
		src := newMemSource()
		b, err := New(t.Context(), cfg, src)
		if err != nil {
			t.Fatal(err)
		}
		run(t, b)
		src.setFailing(3)
		sn := randomSerial(t)
		s := Shard(sn, 4)
		before := b.CRL(s)
		b.Revoked(Revoked{Serial: sn})
		// Fails after 1 s, then retries after 1, 2 and 4 s.
		for i, wait := range []time.Duration{time.Second, time.Second, 2 * time.Second, 4*time.Second - time.Millisecond} {
			time.Sleep(wait)
			if !slices.Equal(b.CRL(s), before) {
				t.Fatalf("CRL replaced at step %d, while the store fails", i)
			}
		}
		time.Sleep(2 * time.Millisecond)
		l := parse(t, b.CRL(s), ca.inter)
		if listed(l, sn) == nil || l.Number.Int64() != 2 {
			t.Errorf("after the store recovered: listed %v, CRL number %v; want listed, 2", listed(l, sn) != nil, l.Number)
		}
		if n := strings.Count(logs.String(), "msg=\"rebuild CRLs\""); n != 3 {
			t.Errorf("logged %d failed rebuilds; want 3:\n%s", n, logs.String())
		}
		if got := metricValue(t, reg, "gwpki_crl_rebuilds_total", "trigger=retry", "result=error"); got != 2 {
			t.Errorf("rebuilds_total{retry,error} = %v; want 2", got)
		}
		if got := metricValue(t, reg, "gwpki_crl_rebuilds_total", "trigger=retry", "result=ok"); got != 1 {
			t.Errorf("rebuilds_total{retry,ok} = %v; want 1", got)
		}
		if got := metricValue(t, reg, "gwpki_crl_entries"); got != 1 {
			t.Errorf("crl_entries = %v; want 1", got)
		}
	})
}

// TestStaleCRLIsLoud: when rebuilds keep failing, the previous CRLs are
// served past their nextUpdate, and the log and the metrics say so.
func TestStaleCRLIsLoud(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ca := newTestCA(t, time.Now())
		var logs logBuffer
		reg := prometheus.NewRegistry()
		cfg := ca.config(2)
		cfg.Logger = logs.logger()
		cfg.Registerer = reg
		cfg.Interval, cfg.Validity = time.Hour, 2*time.Hour
		src := newMemSource()
		b, err := New(t.Context(), cfg, src)
		if err != nil {
			t.Fatal(err)
		}
		run(t, b)
		src.setFailing(-1)
		time.Sleep(time.Hour + time.Second)
		if !strings.Contains(logs.String(), "msg=\"rebuild CRLs\"") || strings.Contains(logs.String(), "past their nextUpdate") {
			t.Errorf("an hour in, log:\n%s\nwant a failed rebuild, no CRL past its nextUpdate yet", logs.String())
		}
		time.Sleep(time.Hour)
		if !strings.Contains(logs.String(), "CRLs past their nextUpdate") {
			t.Errorf("CRLs expired without an error in the log:\n%s", logs.String())
		}
		if got := metricValue(t, reg, "gwpki_crl_expired_shards"); got != 2 {
			t.Errorf("expired_shards = %v; want 2", got)
		}
		rec := httptest.NewRecorder()
		b.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/crl/0000.crl", nil))
		if cc := rec.Header().Get("Cache-Control"); rec.Code != http.StatusOK || !strings.Contains(cc, "max-age=0") {
			t.Errorf("stale CRL served with %d, Cache-Control %q; want 200, max-age=0", rec.Code, cc)
		}
		if !strings.Contains(logs.String(), "serving a CRL past its nextUpdate") {
			t.Error("served a stale CRL without logging it")
		}

		src.setFailing(0)
		time.Sleep(maxRetry)
		if got := metricValue(t, reg, "gwpki_crl_expired_shards"); got != 0 {
			t.Errorf("expired_shards = %v after the store recovered; want 0", got)
		}
		if l := parse(t, b.CRL(1), ca.inter); !l.NextUpdate.After(time.Now()) {
			t.Errorf("after the store recovered, nextUpdate %v is not after %v", l.NextUpdate, time.Now())
		}
	})
}

func TestRunOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ca := newTestCA(t, time.Now())
		b, err := New(t.Context(), ca.config(1), newMemSource())
		if err != nil {
			t.Fatal(err)
		}
		run(t, b)
		synctest.Wait()
		if err := b.Run(t.Context()); !errors.Is(err, ErrRunning) {
			t.Errorf("second Run: %v; want %v", err, ErrRunning)
		}
	})
}

// TestConcurrentUse revokes, serves and rebuilds at once, in real time, for
// the race detector; every revocation must end up listed.
func TestConcurrentUse(t *testing.T) {
	ca := newTestCA(t, time.Now())
	cfg := ca.config(16)
	cfg.Coalesce = 5 * time.Millisecond
	b, err := New(t.Context(), cfg, newMemSource())
	if err != nil {
		t.Fatal(err)
	}
	run(t, b)
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for r := range 2 {
		readers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				rec := httptest.NewRecorder()
				b.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/crl/"+ShardName((i+r)%16)+".crl", nil))
				if rec.Code != http.StatusOK {
					t.Errorf("GET shard %d: %d", (i+r)%16, rec.Code)
					return
				}
			}
		})
	}
	var serials []*big.Int
	var mu sync.Mutex
	var writers sync.WaitGroup
	for range 4 {
		writers.Go(func() {
			for range 100 {
				sn := randomSerial(t)
				b.Revoked(Revoked{Serial: sn, Reason: 4})
				mu.Lock()
				serials = append(serials, sn)
				mu.Unlock()
			}
		})
	}
	writers.Wait()
	defer func() { close(stop); readers.Wait() }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		missing := 0
		for _, sn := range serials {
			if listed(parse(t, b.CRL(Shard(sn, 16)), ca.inter), sn) == nil {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d revocations not listed after 10s", missing, len(serials))
		}
	}
}

// metricValue returns the value of the metric name with labels, each
// "name=value".
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, want := range labels {
				found := false
				for _, l := range m.GetLabel() {
					found = found || l.GetName()+"="+l.GetValue() == want
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
		return 0
	}
	t.Fatalf("no metric %s", name)
	return 0
}
