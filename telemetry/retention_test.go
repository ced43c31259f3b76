package telemetry

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
)

func TestPrune(t *testing.T) {
	clock := newClock(base)
	opts := Options{Clock: clock.Now, Partition: time.Hour, Retention: 48 * time.Hour}
	s, path := openTemp(t, opts)
	ctx := context.Background()
	// Three messages in each of 100 hourly partitions, the last one a
	// second before the partition ends.
	var st stored
	for h := range 100 {
		for _, off := range []time.Duration{0, 30 * time.Minute, time.Hour - time.Second} {
			m := msg("GW1", "telemetry", base.Add(time.Duration(h)*time.Hour+off), fmt.Sprintf(`{"h":%d}`, h))
			if err := s.Append(ctx, m); err != nil {
				t.Fatal(err)
			}
			st = append(st, m)
		}
	}
	// Now is 100h: the cutoff is 52h. Partitions 0..51 ended at or before
	// it; partition 52 starts exactly at it and stays.
	clock.Set(base.Add(100 * time.Hour))
	dropped, err := s.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if dropped != 52 {
		t.Errorf("Prune dropped %d partitions; want 52", dropped)
	}
	page, err := s.Query(ctx, Query{Gateway: "GW1", Limit: MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(st.want("GW1", base.Add(52*time.Hour), time.Time{}, ""), page.Messages); diff != "" {
		t.Errorf("after Prune (-want +got):\n%s", diff)
	}
	var names int
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if start, ok := parsePartitionKey(name); ok {
				names++
				if start < base.Add(52*time.Hour).Unix() {
					t.Errorf("partition %s survived Prune", time.Unix(start, 0).UTC())
				}
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if names != 48 || len(s.partitions) != 48 {
		t.Errorf("partitions left: %d buckets, %d in memory; want 48", names, len(s.partitions))
	}
	// A second later nothing more is due; half an hour later still nothing
	// (partition 52 holds a message 47.5h old); an hour later one more.
	for _, tc := range []struct {
		now  time.Duration
		want int
	}{{100*time.Hour + time.Second, 0}, {100*time.Hour + 30*time.Minute, 0}, {101 * time.Hour, 1}} {
		clock.Set(base.Add(tc.now))
		if n, err := s.Prune(ctx); err != nil || n != tc.want {
			t.Errorf("Prune at %v: dropped %d (err %v); want %d", tc.now, n, err, tc.want)
		}
	}
	// The list rebuilt on Open drives Prune just the same.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	clock.Set(base.Add(150 * time.Hour))
	s2, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if n, err := s2.Prune(ctx); err != nil || n != 47 {
		t.Errorf("Prune after reopen at 150h: dropped %d (err %v); want 47", n, err)
	}
	// Appending into a dropped partition's span recreates it.
	old := msg("GW1", "telemetry", base.Add(time.Hour), `{}`)
	if err := s2.Append(ctx, old); err != nil {
		t.Fatal(err)
	}
	if r, ok, err := s2.Latest(ctx, "GW1", ""); err != nil || !ok || !r.Time.Equal(old.Time) {
		t.Errorf("Latest after re-append: %v %v %v; want the re-appended message", r, ok, err)
	}
	if n, err := s2.Prune(ctx); err != nil || n != 1 {
		t.Errorf("Prune of the recreated partition: dropped %d (err %v); want 1", n, err)
	}
}

func TestRunPrunesAtOnceAndStops(t *testing.T) {
	clock := newClock(base)
	commits := make(chan struct{}, 16)
	var armed atomic.Bool
	s, _ := openTemp(t, Options{Clock: clock.Now, Partition: time.Hour, Retention: time.Hour, OnCommit: func(int, time.Duration) {
		if armed.Load() {
			commits <- struct{}{}
		}
	}})
	if err := s.Append(context.Background(), msg("GW1", "telemetry", base, `{}`)); err != nil {
		t.Fatal(err)
	}
	clock.Set(base.Add(3 * time.Hour))
	armed.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	// Run prunes at once: its commit is the only one after arming, and
	// OnCommit runs once the commit is durable and visible.
	select {
	case <-commits:
	case <-done:
		t.Fatal("Run returned before its context ended")
	}
	if _, ok, err := s.Latest(context.Background(), "GW1", ""); err != nil || ok {
		t.Errorf("Latest after Run's first prune: found %v, err %v; want the partition dropped", ok, err)
	}
	cancel()
	<-done
}

func TestAppendAfterPruneKeepsTheList(t *testing.T) {
	clock := newClock(base.Add(10 * time.Hour))
	s, _ := openTemp(t, Options{Clock: clock.Now, Partition: time.Hour, Retention: time.Hour})
	ctx := context.Background()
	old := msg("GW1", "telemetry", base, `{}`)
	for range 2 {
		if err := s.Append(ctx, old); err != nil {
			t.Fatal(err)
		}
		if n, err := s.Prune(ctx); err != nil || n != 1 {
			t.Fatalf("Prune: dropped %d (err %v); want 1", n, err)
		}
	}
	// A partition dropped without the list knowing is recreated by Append,
	// and the list still names it for Prune.
	if err := s.Append(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(ctx, func(tx *bolt.Tx) error { return tx.DeleteBucket(partitionKey(base.Unix())) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, old); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Prune(ctx); err != nil || n != 1 {
		t.Errorf("Prune of a recreated partition: dropped %d (err %v); want 1", n, err)
	}
}
