package telemetry

import (
	"context"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestIndexFollowsTheLog: a query sees every message whether the index has
// caught up or not, in the same order, and the index pass moves the
// watermark to the end of the log; what a crash leaves unindexed is indexed
// after the reopen.
func TestIndexFollowsTheLog(t *testing.T) {
	clock := newClock(base)
	clock.step = time.Millisecond
	s, path := openTemp(t, Options{Clock: clock.Now, IndexInterval: time.Hour})
	ctx := context.Background()
	for i := range 300 {
		gw := fmt.Sprintf("GW-%d", i%3)
		if err := s.Append(ctx, msg(gw, "t", time.Time{}, fmt.Sprintf(`{"i":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	read := func() []string {
		var out []string
		q := Query{Gateway: "GW-1", Limit: 7}
		for {
			page, err := s.Query(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range page.Messages {
				out = append(out, string(m.Payload))
			}
			if page.Next == "" {
				return out
			}
			q.After = page.Next
		}
	}
	unindexedPages := read()
	if len(unindexedPages) != 100 {
		t.Fatalf("before the index pass a query found %d of GW-1's 100 messages", len(unindexedPages))
	}
	latest, ok, err := s.Latest(ctx, "GW-1", "")
	if err != nil || !ok || string(latest.Payload) != `{"i":298}` {
		t.Fatalf("Latest before the index pass = %s, %v, %v; want i 298", latest.Payload, ok, err)
	}
	// Half indexed: a pass over the first records only, by hand.
	if err := s.index(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 300; i < 330; i++ {
		if err := s.Append(ctx, msg("GW-1", "t", time.Time{}, fmt.Sprintf(`{"i":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	mixed := read()
	if len(mixed) != 130 || mixed[0] != `{"i":1}` || mixed[99] != `{"i":298}` || mixed[129] != `{"i":329}` {
		t.Fatalf("indexed and unindexed together: %d messages, %v ... %v", len(mixed), mixed[:2], mixed[len(mixed)-2:])
	}
	for i := 1; i < 100; i++ {
		if mixed[i] != unindexedPages[i] {
			t.Fatalf("message %d: %s unindexed, %s indexed", i, unindexedPages[i], mixed[i])
		}
	}
	// A "crash" with records past the watermark: reopen without Close's
	// final pass; the reopened store answers with them and indexes them.
	s.db.Close()
	s2, err := Open(path, Options{Clock: clock.Now, IndexInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	s = s2
	if got := read(); len(got) != 130 {
		t.Fatalf("after reopen: %d messages; want 130", len(got))
	}
	eventually(t, 5*time.Second, func() bool {
		var behind bool
		_ = s2.db.View(func(tx *bolt.Tx) error {
			for _, start := range s2.partitions {
				part := tx.Bucket(partitionKey(start))
				log := part.Bucket(logBucket)
				behind = behind || watermark(part, log) != log.Sequence()
			}
			return nil
		})
		return !behind
	})
	if got := read(); len(got) != 130 || got[129] != `{"i":329}` {
		t.Fatalf("after the index caught up: %d messages", len(got))
	}
}

func eventually(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
