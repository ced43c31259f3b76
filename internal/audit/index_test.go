package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/gwpki/gwpki/internal/store"
	"github.com/gwpki/gwpki/internal/store/storetest"
)

var indexT0 = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

func newIndexLog(tb testing.TB, db *store.DB) *Log {
	tb.Helper()
	l, err := New(db, WithLogger(slog.New(slog.DiscardHandler)), WithClock(func() time.Time { return indexT0 }))
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return l
}

// reads returns how many entries l's List calls have decoded so far.
func reads(l *Log) int64 { return l.store.(*boltStore).reads.Load() }

// recordMany records n entries, in batches, made by mk from their index.
func recordMany(tb testing.TB, l *Log, n int, mk func(i int) Entry) {
	tb.Helper()
	const batch = 5000
	for i := 0; i < n; i += batch {
		es := make([]Entry, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			es = append(es, mk(j))
		}
		if _, err := l.RecordAll(context.Background(), es); err != nil {
			tb.Fatalf("RecordAll: %v", err)
		}
	}
}

func listSeqs(tb testing.TB, l *Log, q Query) ([]uint64, uint64) {
	tb.Helper()
	p, err := l.List(context.Background(), q)
	if err != nil {
		tb.Fatalf("List(%+v): %v", q, err)
	}
	out := []uint64{}
	for _, e := range p.Entries {
		out = append(out, e.Seq)
	}
	return out, p.Next
}

func TestTargetIndexFindsOldEntryWithFewReads(t *testing.T) {
	l := newIndexLog(t, storetest.OpenTemp(t))
	old := mustRecordEntry(t, l, Entry{Actor: "user:ivy", Org: "acme", Action: "claim", Target: "GW-OLD", Result: ResultOK})
	recordMany(t, l, 50000, func(i int) Entry {
		return Entry{Actor: "system", Action: "renew", Target: fmt.Sprintf("GW-%06d", i), Result: ResultOK}
	})

	before := reads(l)
	got, next := listSeqs(t, l, Query{Target: "GW-OLD"})
	if diff := cmp.Diff([]uint64{old.Seq}, got); diff != "" || next != 0 {
		t.Errorf("List(Target GW-OLD) = %v, next %d; want [%d], next 0 (-want +got):\n%s", got, next, old.Seq, diff)
	}
	if n := reads(l) - before; n != 1 {
		t.Errorf("List(Target GW-OLD) decoded %d entries; want 1", n)
	}

	// Without the index the same entry is beyond MaxScan: an Action filter
	// alone stops with nothing and a Next.
	got, next = listSeqs(t, l, Query{Action: "claim"})
	if len(got) != 0 || next == 0 {
		t.Errorf("List(Action claim) = %v, next %d; want none and a next (MaxScan)", got, next)
	}

	// A target nobody wrote reads nothing.
	before = reads(l)
	if got, next := listSeqs(t, l, Query{Target: "GW-NONE"}); len(got) != 0 || next != 0 {
		t.Errorf("List(Target GW-NONE) = %v, next %d; want none", got, next)
	}
	if n := reads(l) - before; n != 0 {
		t.Errorf("List(Target GW-NONE) decoded %d entries; want 0", n)
	}
}

func mustRecordEntry(tb testing.TB, l *Log, e Entry) Entry {
	tb.Helper()
	got, err := l.Record(context.Background(), e)
	if err != nil {
		tb.Fatalf("Record(%+v): %v", e, err)
	}
	return got
}

func TestTargetIndexCombinedFilters(t *testing.T) {
	l := newIndexLog(t, storetest.OpenTemp(t))
	var claimsOK []uint64 // acme's ok claims of GW-1, oldest first
	recordMany(t, l, 3000, func(i int) Entry {
		e := Entry{Actor: "user:ivy", Org: "acme", Action: "claim", Target: "GW-1", Result: ResultOK}
		switch i % 5 {
		case 1:
			e.Org = "globex"
		case 2:
			e.Action = "unclaim"
		case 3:
			e.Target = "GW-2"
		case 4:
			e.Actor = "user:olga"
		}
		return e
	})
	// Sequence numbers start at 1 and follow i.
	for i := 0; i < 3000; i++ {
		if i%5 == 0 || i%5 == 4 {
			claimsOK = append(claimsOK, uint64(i+1))
		}
	}
	want := func(keep func(seq uint64) bool) []uint64 {
		out := []uint64{}
		for i := len(claimsOK) - 1; i >= 0; i-- {
			if keep(claimsOK[i]) {
				out = append(out, claimsOK[i])
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		q    Query
		want []uint64
	}{
		{"target+action+org", Query{Target: "GW-1", Action: "claim", Org: "acme", Limit: MaxLimit}, want(func(uint64) bool { return true })[:MaxLimit]},
		{"target+actor", Query{Target: "GW-1", Actor: "user:olga", Action: "claim", Org: "acme", Limit: 5},
			want(func(s uint64) bool { return (s-1)%5 == 4 })[:5]},
		{"target+before", Query{Target: "GW-1", Action: "claim", Org: "acme", Before: 11, Limit: 10}, []uint64{10, 6, 5, 1}},
		{"target other org", Query{Target: "GW-2", Org: "globex"}, []uint64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := listSeqs(t, l, tc.q)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("List(%+v): -want +got:\n%s", tc.q, diff)
			}
		})
	}
}

func TestTargetIndexPaging(t *testing.T) {
	l := newIndexLog(t, storetest.OpenTemp(t))
	var want []uint64
	recordMany(t, l, 2500, func(i int) Entry {
		target := "GW-A"
		if i%2 == 1 {
			target = "GW-A2" // shares a prefix, is not GW-A
		}
		return Entry{Actor: "system", Action: "renew", Target: target, Result: ResultOK}
	})
	for s := 2499; s >= 1; s -= 2 {
		want = append(want, uint64(s))
	}
	var got []uint64
	q := Query{Target: "GW-A", Limit: 100}
	pages := 0
	for {
		page, next := listSeqs(t, l, q)
		got = append(got, page...)
		pages++
		if next == 0 {
			break
		}
		if pages > 20 {
			t.Fatalf("more than 20 pages for %d entries", len(want))
		}
		q.Before = next
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("paging GW-A by 100: -want +got:\n%s", diff)
	}
	if pages != 13 {
		t.Errorf("paging 1,250 entries by 100 took %d pages; want 13", pages)
	}

	// MaxScan still bounds a filtered target page: GW-A's 1,250 entries
	// hold no "claim", and a scan of 1,000 (2499, 2497, ..., 501) stops
	// with a Next.
	p, err := l.store.list(context.Background(), Query{Target: "GW-A", Action: "claim", Limit: 10}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 0 || p.Next != 501 {
		t.Errorf("list(GW-A, claim, maxScan 1000) = %d entries, next %d; want 0, next 501", len(p.Entries), p.Next)
	}
}

// TestTargetIndexBackfill opens a file written before the index existed:
// entries and no index. Opening indexes them, once.
func TestTargetIndexBackfill(t *testing.T) {
	db := storetest.OpenTemp(t)
	const n = 2*backfillBatch + 123
	err := db.Update(context.Background(), func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketEntries)
		if err != nil {
			return err
		}
		for i := range n {
			seq, _ := b.NextSequence()
			target := fmt.Sprintf("GW-%d", i%7)
			switch i % 100 {
			case 50:
				target = ""
			case 51:
				target = "bad\x00target"
			}
			v, _ := json.Marshal(record{Time: indexT0, Actor: "system", Action: "renew", Target: target, Result: ResultOK})
			if err := b.Put(seqKey(seq), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	l := newIndexLog(t, db)
	wantIndexed := 0
	for i := range n {
		if i%100 != 50 && i%100 != 51 {
			wantIndexed++
		}
	}
	var indexed int
	var mark []byte
	db.View(func(tx *bolt.Tx) error {
		indexed = tx.Bucket(bucketByTarget).Stats().KeyN
		mark = append([]byte(nil), tx.Bucket(bucketMeta).Get(keyTargetIndexed)...)
		return nil
	})
	if indexed != wantIndexed {
		t.Errorf("after backfill: %d index keys; want %d", indexed, wantIndexed)
	}
	if want := seqKey(n); !cmp.Equal(mark, want) {
		t.Errorf("backfill mark = %x; want %x", mark, want)
	}

	// GW-3's newest entries, through the index, and one written now.
	e := mustRecordEntry(t, l, Entry{Actor: "system", Action: "renew", Target: "GW-3", Result: ResultOK})
	got, _ := listSeqs(t, l, Query{Target: "GW-3", Limit: 3})
	var want []uint64
	want = append(want, e.Seq)
	for i := n - 1; len(want) < 3; i-- {
		if i%7 == 3 && i%100 != 50 && i%100 != 51 {
			want = append(want, uint64(i+1))
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("List(GW-3) after backfill: -want +got:\n%s", diff)
	}
	// The oldest GW-3 entry is found too, beyond any scan bound.
	got, _ = listSeqs(t, l, Query{Target: "GW-3", Before: 100, Limit: MaxLimit})
	if len(got) == 0 || got[len(got)-1] != 4 {
		t.Errorf("List(GW-3, before 100) = %v; want it to end at seq 4", got)
	}
	// A target with a 0x00 byte is not indexed, but still found by a scan.
	newestBad := n - 1
	for newestBad%100 != 51 {
		newestBad--
	}
	got, _ = listSeqs(t, l, Query{Target: "bad\x00target", Limit: 1})
	if diff := cmp.Diff([]uint64{uint64(newestBad + 1)}, got); diff != "" {
		t.Errorf("List(bad\\x00target): -want +got:\n%s", diff)
	}

	// Reopening does not backfill again: drop an index key; it stays gone.
	db.Update(context.Background(), func(tx *bolt.Tx) error {
		return tx.Bucket(bucketByTarget).Delete(targetKey("GW-0", 1))
	})
	l = newIndexLog(t, db)
	db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketByTarget).Get(targetKey("GW-0", 1)) != nil {
			t.Errorf("reopening ran the backfill again")
		}
		return nil
	})

	// An older gwpki writes entries without indexing them (a downgrade and
	// back): the next open indexes those, and only those.
	writeUnindexed(t, db, 3)
	newest := uint64(n + 1 + 3)
	if got, _ := listSeqs(t, l, Query{Target: "GW-2", Limit: 1}); cmp.Equal(got, []uint64{newest}) {
		t.Fatalf("entries written around the index are already indexed: %v", got)
	}
	l = newIndexLog(t, db)
	if got, _ := listSeqs(t, l, Query{Target: "GW-2", Limit: 1}); !cmp.Equal(got, []uint64{newest}) {
		t.Errorf("List(GW-2) after reopening = %v; want [%d], written without the index", got, newest)
	}
	db.View(func(tx *bolt.Tx) error {
		if got := indexedThrough(tx); got != newest {
			t.Errorf("indexed through %d; want %d", got, newest)
		}
		if tx.Bucket(bucketByTarget).Get(targetKey("GW-0", 1)) != nil {
			t.Errorf("reopening after a downgrade indexed from the start again")
		}
		return nil
	})
}

// TestTargetIndexMarkFollowsAppends checks that a new log needs no
// backfill: appends keep the mark at the newest entry.
func TestTargetIndexMarkFollowsAppends(t *testing.T) {
	db := storetest.OpenTemp(t)
	l := newIndexLog(t, db)
	recordMany(t, l, 10, func(i int) Entry {
		return Entry{Actor: "system", Action: "renew", Target: fmt.Sprintf("GW-%d", i%3), Result: ResultOK}
	})
	db.View(func(tx *bolt.Tx) error {
		if got := indexedThrough(tx); got != 10 {
			t.Errorf("indexed through %d after 10 appends; want 10", got)
		}
		if got := tx.Bucket(bucketByTarget).Stats().KeyN; got != 10 {
			t.Errorf("%d index keys after 10 appends; want 10", got)
		}
		return nil
	})
}

// writeUnindexed writes n entries straight into the entries bucket, as a
// file from before the index holds them, targets GW-0 to GW-999.
func writeUnindexed(tb testing.TB, db *store.DB, n int) {
	tb.Helper()
	for i := 0; i < n; i += 10000 {
		err := db.Update(context.Background(), func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucketEntries)
			if err != nil {
				return err
			}
			for j := i; j < min(i+10000, n); j++ {
				seq, _ := b.NextSequence()
				v, _ := json.Marshal(record{Time: indexT0, Actor: "system", Action: "renew", Target: fmt.Sprintf("GW-%d", j%1000), Result: ResultOK})
				if err := b.Put(seqKey(seq), v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkTargetIndexBackfill times opening a file of 100,000 entries
// written before the index: the one-time backfill.
func BenchmarkTargetIndexBackfill(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		db := storetest.OpenTemp(b)
		writeUnindexed(b, db, 100000)
		b.StartTimer()
		newIndexLog(b, db)
	}
}

// BenchmarkListTarget times a page of one target's entries (the newest 100
// of its 100, among 100,000) through the index, against a filter that scans
// (MaxScan entries, matching none) over the same log.
func BenchmarkListTarget(b *testing.B) {
	db := storetest.OpenTemp(b)
	writeUnindexed(b, db, 100000)
	l := newIndexLog(b, db)
	for _, bc := range []struct {
		name string
		q    Query
	}{
		{"index/target", Query{Target: "GW-7"}},
		{"scan/actor-none", Query{Actor: "user:nobody"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := l.List(context.Background(), bc.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
