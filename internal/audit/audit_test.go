package audit_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/gwpki/gwpki/internal/audit"
	"github.com/gwpki/gwpki/internal/store"
	"github.com/gwpki/gwpki/internal/store/storetest"
)

var t0 = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

// stepClock returns a clock that starts at t0 and moves one second on
// each call.
func stepClock() func() time.Time {
	var n atomic.Int64
	return func() time.Time { return t0.Add(time.Duration(n.Add(1)-1) * time.Second) }
}

var quiet = audit.WithLogger(slog.New(slog.DiscardHandler))

func newLog(t testing.TB, db *store.DB, opts ...audit.Option) *audit.Log {
	t.Helper()
	l, err := audit.New(db, append([]audit.Option{quiet}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return l
}

func mustRecord(t testing.TB, l *audit.Log, e audit.Entry) audit.Entry {
	t.Helper()
	got, err := l.Record(context.Background(), e)
	if err != nil {
		t.Fatalf("Record(%+v): %v", e, err)
	}
	return got
}

func mustList(t testing.TB, l *audit.Log, q audit.Query) audit.Page {
	t.Helper()
	p, err := l.List(context.Background(), q)
	if err != nil {
		t.Fatalf("List(%+v): %v", q, err)
	}
	return p
}

func seqs(p audit.Page) []uint64 {
	out := []uint64{}
	for _, e := range p.Entries {
		out = append(out, e.Seq)
	}
	return out
}

// seqRange returns from, from-1, ..., to.
func seqRange(from, to uint64) []uint64 {
	out := []uint64{}
	for s := from; s >= to && s > 0; s-- {
		out = append(out, s)
	}
	return out
}

func TestRecordAssignsSeqAndTime(t *testing.T) {
	l := newLog(t, storetest.OpenTemp(t), audit.WithClock(stepClock()))
	berlin := time.FixedZone("CEST", 2*60*60)
	given := time.Date(2026, 4, 30, 12, 0, 0, 5, berlin)

	a := mustRecord(t, l, audit.Entry{Seq: 99, Actor: "user:olga", Action: "revoke", Target: "GW-1", Result: audit.ResultOK})
	b := mustRecord(t, l, audit.Entry{Actor: "system", Action: "login", Result: audit.ResultRefused})
	c := mustRecord(t, l, audit.Entry{Time: given, Actor: "step-ca", Action: "revoke", Result: audit.ResultFailed})

	for _, tc := range []struct {
		got      audit.Entry
		seq      uint64
		wantTime time.Time
	}{
		{a, 1, t0},
		{b, 2, t0.Add(time.Second)},
		// A time the caller gives is kept, in UTC.
		{c, 3, given.UTC()},
	} {
		if tc.got.Seq != tc.seq || !tc.got.Time.Equal(tc.wantTime) || tc.got.Time.Location() != time.UTC {
			t.Errorf("Record(%s) = seq %d time %v; want seq %d time %v in UTC", tc.got.Action, tc.got.Seq, tc.got.Time, tc.seq, tc.wantTime)
		}
	}
	// What Record returned is what the log holds.
	p := mustList(t, l, audit.Query{})
	if diff := cmp.Diff([]audit.Entry{c, b, a}, p.Entries); diff != "" || p.Next != 0 {
		t.Errorf("List() after three Records (-want +got):\n%s next %d", diff, p.Next)
	}
}

func TestRecordAllOneCommitConsecutiveSeqs(t *testing.T) {
	var commits atomic.Int64
	db := storetest.OpenTempWith(t, store.Options{OnCommit: func(int, time.Duration) { commits.Add(1) }})
	l := newLog(t, db, audit.WithClock(stepClock()))
	mustRecord(t, l, audit.Entry{Action: "login", Result: audit.ResultOK})
	before := commits.Load()

	in := make([]audit.Entry, 5)
	for i := range in {
		in[i] = audit.Entry{Actor: "user:olga", Action: "revoke", Target: fmt.Sprintf("cert:%d", i), Result: audit.ResultOK,
			Detail: map[string]string{"reason": "unclaim"}}
	}
	got, err := l.RecordAll(context.Background(), in)
	if err != nil {
		t.Fatalf("RecordAll: %v", err)
	}
	if n := commits.Load() - before; n != 1 {
		t.Errorf("RecordAll of 5 entries took %d commits; want 1", n)
	}
	for i, e := range got {
		if e.Seq != uint64(i+2) || e.Target != in[i].Target || !e.Time.Equal(t0.Add(time.Second)) {
			t.Errorf("RecordAll entry %d = seq %d target %s time %v; want seq %d target %s and one time for all, %v",
				i, e.Seq, e.Target, e.Time, i+2, in[i].Target, t0.Add(time.Second))
		}
	}
	p := mustList(t, l, audit.Query{Limit: 5})
	want := []audit.Entry{got[4], got[3], got[2], got[1], got[0]}
	if diff := cmp.Diff(want, p.Entries); diff != "" {
		t.Errorf("List after RecordAll (-want +got):\n%s", diff)
	}
	// The caller's map is not the stored one.
	in[0].Detail["reason"] = "changed"
	if got[0].Detail["reason"] != "unclaim" {
		t.Error("RecordAll's result shares the caller's Detail map")
	}

	if got, err := l.RecordAll(context.Background(), nil); err != nil || len(got) != 0 {
		t.Errorf("RecordAll(nil) = %v, %v; want no entries and no error", got, err)
	}
}

func TestRecordAllIsAllOrNone(t *testing.T) {
	l := newLog(t, storetest.OpenTemp(t))
	_, err := l.RecordAll(context.Background(), []audit.Entry{
		{Action: "revoke", Result: audit.ResultOK},
		{Action: "revoke", Result: "maybe"},
	})
	if !errors.Is(err, audit.ErrInvalidEntry) || !strings.Contains(err.Error(), "entry 1") {
		t.Errorf("RecordAll with an invalid second entry: %v; want ErrInvalidEntry naming entry 1", err)
	}
	if n, err := l.Len(context.Background()); err != nil || n != 0 {
		t.Errorf("Len after a refused RecordAll = %d, %v; want 0", n, err)
	}
}

func TestRecordSurvivesReopen(t *testing.T) {
	db := storetest.OpenTemp(t)
	l := newLog(t, db, audit.WithClock(stepClock()))
	ctx := context.Background()
	var want []audit.Entry
	want = append(want, mustRecord(t, l, audit.Entry{Actor: "user:olga", Action: "revoke", Target: "GW-1", Result: audit.ResultOK,
		Source: "192.0.2.7:41234", Detail: map[string]string{"reason": "key compromise"}}))
	more, err := l.RecordAll(ctx, []audit.Entry{
		{Actor: "user:olga", Action: "revoke", Target: "cert:1", Result: audit.ResultOK},
		{Actor: "user:olga", Action: "revoke", Target: "cert:2", Result: audit.ResultOK},
	})
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, more...)

	// Record returned, so the entries are on disk: closing and opening the
	// file again must find them.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Record(ctx, audit.Entry{Action: "login", Result: audit.ResultOK}); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Record on a closed store: %v; want store.ErrClosed", err)
	}
	db2, err := store.Open(db.Path(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Before storetest's own cleanup, which opens the file to check it.
	t.Cleanup(func() { db2.Close() })
	l2 := newLog(t, db2, audit.WithClock(stepClock()))

	p := mustList(t, l2, audit.Query{})
	if diff := cmp.Diff([]audit.Entry{want[2], want[1], want[0]}, p.Entries); diff != "" {
		t.Errorf("List after reopening (-want +got):\n%s", diff)
	}
	// Sequence numbers go on where they stopped.
	if e := mustRecord(t, l2, audit.Entry{Action: "login", Result: audit.ResultOK}); e.Seq != 4 {
		t.Errorf("first Record after reopening got seq %d; want 4", e.Seq)
	}
}

func TestListPages(t *testing.T) {
	l := newLog(t, storetest.OpenTemp(t))
	ctx := context.Background()
	if p := mustList(t, l, audit.Query{}); p.Entries == nil || len(p.Entries) != 0 || p.Next != 0 {
		t.Errorf("List of an empty log = %+v; want an empty, non-nil page and next 0", p)
	}
	es := make([]audit.Entry, 250)
	for i := range es {
		es[i] = audit.Entry{Action: "login", Result: audit.ResultOK}
	}
	if _, err := l.RecordAll(ctx, es); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		q        audit.Query
		want     []uint64
		wantNext uint64
	}{
		{audit.Query{}, seqRange(250, 151), 151}, // the default limit
		{audit.Query{Limit: 10}, seqRange(250, 241), 241},
		{audit.Query{Before: 241, Limit: 10}, seqRange(240, 231), 231},
		{audit.Query{Before: 11, Limit: 10}, seqRange(10, 1), 0}, // exactly the rest: no next
		{audit.Query{Before: 5, Limit: 10}, seqRange(4, 1), 0},
		{audit.Query{Before: 1}, []uint64{}, 0},
		{audit.Query{Before: 1000, Limit: 2}, []uint64{250, 249}, 249}, // past the newest
		{audit.Query{Limit: audit.MaxLimit}, seqRange(250, 1), 0},
	}
	for _, tc := range tests {
		p := mustList(t, l, tc.q)
		if diff := cmp.Diff(tc.want, seqs(p)); diff != "" || p.Next != tc.wantNext {
			t.Errorf("List(%+v): seqs (-want +got):\n%s next %d; want next %d", tc.q, diff, p.Next, tc.wantNext)
		}
	}
	// Following Next visits every entry once, newest first.
	var all []uint64
	q := audit.Query{Limit: 7}
	for {
		p := mustList(t, l, q)
		all = append(all, seqs(p)...)
		if p.Next == 0 {
			break
		}
		q.Before = p.Next
	}
	if diff := cmp.Diff(seqRange(250, 1), all); diff != "" {
		t.Errorf("paging with Limit 7 (-want +got):\n%s", diff)
	}
}

func TestListFilters(t *testing.T) {
	l := newLog(t, storetest.OpenTemp(t))
	for _, e := range []audit.Entry{
		{Actor: "user:olga", Org: "acme", Action: "revoke", Target: "GW-1"},        // 1
		{Actor: "user:ivy", Org: "acme", Action: "claim", Target: "GW-1"},          // 2
		{Actor: "user:olga", Org: "acme", Action: "revoke", Target: "GW-2"},        // 3
		{Actor: "step-ca", Action: "revoke", Target: "cert:77"},                    // 4: no organisation
		{Actor: "user:ivy", Org: "acme", Action: "login", Target: "ivy"},           // 5
		{Actor: "user:olga", Org: "acme", Action: "revoke", Target: "GW-1"},        // 6
		{Actor: "user:olga-2", Org: "acme-2", Action: "revoke-all", Target: "GW-"}, // 7: no prefix matches
		{Actor: "user:gus", Org: "globex", Action: "revoke", Target: "GW-9"},       // 8
	} {
		e.Result = audit.ResultOK
		mustRecord(t, l, e)
	}
	tests := []struct {
		q    audit.Query
		want []uint64
	}{
		{audit.Query{Action: "revoke"}, []uint64{8, 6, 4, 3, 1}},
		{audit.Query{Target: "GW-1"}, []uint64{6, 2, 1}},
		{audit.Query{Actor: "user:olga"}, []uint64{6, 3, 1}},
		{audit.Query{Actor: "user:olga", Target: "GW-1"}, []uint64{6, 1}},
		{audit.Query{Action: "revoke", Target: "GW-1", Actor: "user:olga"}, []uint64{6, 1}},
		{audit.Query{Action: "claim", Actor: "user:olga"}, []uint64{}},
		{audit.Query{Action: "REVOKE"}, []uint64{}},
		{audit.Query{Action: "revoke", Before: 6}, []uint64{4, 3, 1}},
		{audit.Query{Org: "acme"}, []uint64{6, 5, 3, 2, 1}},
		{audit.Query{Org: "globex"}, []uint64{8}},
		{audit.Query{Org: "ACME"}, []uint64{}},
		{audit.Query{Org: "acme", Action: "revoke", Target: "GW-1"}, []uint64{6, 1}},
		{audit.Query{Org: "globex", Actor: "user:olga"}, []uint64{}},
		{audit.Query{Org: "acme", Before: 5}, []uint64{3, 2, 1}},
	}
	for _, tc := range tests {
		p := mustList(t, l, tc.q)
		if diff := cmp.Diff(tc.want, seqs(p)); diff != "" || p.Next != 0 {
			t.Errorf("List(%+v) (-want +got):\n%s next %d; want 0", tc.q, diff, p.Next)
		}
	}
	// A filtered page that fills up says where to go on.
	p := mustList(t, l, audit.Query{Action: "revoke", Limit: 2})
	if diff := cmp.Diff([]uint64{8, 6}, seqs(p)); diff != "" || p.Next != 6 {
		t.Errorf("List(revoke, limit 2) (-want +got):\n%s next %d; want 6", diff, p.Next)
	}
	p = mustList(t, l, audit.Query{Org: "acme", Limit: 2})
	if diff := cmp.Diff([]uint64{6, 5}, seqs(p)); diff != "" || p.Next != 5 {
		t.Errorf("List(org acme, limit 2) (-want +got):\n%s next %d; want 5", diff, p.Next)
	}
	// The organisation is stored and read back.
	if p := mustList(t, l, audit.Query{Before: 2, Limit: 1}); len(p.Entries) != 1 || p.Entries[0].Org != "acme" {
		t.Errorf("List(before 2, limit 1) = %+v; want entry 1 of org acme", p.Entries)
	}
}

func TestListFilteredScanIsBounded(t *testing.T) {
	l := newLog(t, storetest.OpenTemp(t))
	ctx := context.Background()
	mustRecord(t, l, audit.Entry{Action: "claim", Target: "GW-1", Result: audit.ResultOK}) // seq 1
	noise := make([]audit.Entry, audit.MaxScan+50)
	for i := range noise {
		noise[i] = audit.Entry{Action: "login", Result: audit.ResultRefused}
	}
	if _, err := l.RecordAll(ctx, noise); err != nil {
		t.Fatal(err)
	}
	last := uint64(audit.MaxScan + 51)

	// The first page examines MaxScan entries, finds nothing, and says
	// where to continue.
	p := mustList(t, l, audit.Query{Action: "claim"})
	if len(p.Entries) != 0 || p.Next != last-audit.MaxScan+1 {
		t.Fatalf("first filtered page = %d entries, next %d; want none and next %d", len(p.Entries), p.Next, last-audit.MaxScan+1)
	}
	p = mustList(t, l, audit.Query{Action: "claim", Before: p.Next})
	if diff := cmp.Diff([]uint64{1}, seqs(p)); diff != "" || p.Next != 0 {
		t.Errorf("second filtered page (-want +got):\n%s next %d; want 0", diff, p.Next)
	}
	// Unfiltered pages are never cut short by the scan bound.
	if p := mustList(t, l, audit.Query{Limit: audit.MaxLimit}); len(p.Entries) != audit.MaxLimit {
		t.Errorf("unfiltered page of %d = %d entries", audit.MaxLimit, len(p.Entries))
	}
	if n, err := l.Len(ctx); err != nil || n != int(last) {
		t.Errorf("Len = %d, %v; want %d", n, err, last)
	}
}

func TestListRefusesBadQueries(t *testing.T) {
	l := newLog(t, storetest.OpenTemp(t))
	for _, q := range []audit.Query{
		{Limit: -1},
		{Limit: audit.MaxLimit + 1},
		{Action: strings.Repeat("a", 1025)},
		{Target: strings.Repeat("a", 1025)},
		{Actor: strings.Repeat("a", 1025)},
		{Org: strings.Repeat("a", 1025)},
	} {
		if _, err := l.List(context.Background(), q); !errors.Is(err, audit.ErrInvalidQuery) {
			t.Errorf("List(limit %d, filters of %d/%d/%d/%d bytes): %v; want ErrInvalidQuery",
				q.Limit, len(q.Action), len(q.Target), len(q.Actor), len(q.Org), err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	mustRecord(t, l, audit.Entry{Action: "login", Result: audit.ResultOK})
	if _, err := l.List(ctx, audit.Query{Action: "x"}); !errors.Is(err, context.Canceled) {
		t.Errorf("List with a cancelled context: %v; want context.Canceled", err)
	}
}

func TestRecordRefusesInvalidEntries(t *testing.T) {
	l := newLog(t, storetest.OpenTemp(t))
	details := func(n int) map[string]string {
		d := map[string]string{}
		for i := range n {
			d[fmt.Sprintf("k%d", i)] = "v"
		}
		return d
	}
	tests := []struct {
		name string
		e    audit.Entry
	}{
		{"no action", audit.Entry{Result: audit.ResultOK}},
		{"no result", audit.Entry{Action: "revoke"}},
		{"unknown result", audit.Entry{Action: "revoke", Result: "OK"}},
		{"upper-case action", audit.Entry{Action: "Revoke", Result: audit.ResultOK}},
		{"action with a space", audit.Entry{Action: "re voke", Result: audit.ResultOK}},
		{"long action", audit.Entry{Action: strings.Repeat("a", 65), Result: audit.ResultOK}},
		{"17 details", audit.Entry{Action: "revoke", Result: audit.ResultOK, Detail: details(17)}},
		{"empty detail key", audit.Entry{Action: "revoke", Result: audit.ResultOK, Detail: map[string]string{"": "v"}}},
		{"detail key with a newline", audit.Entry{Action: "revoke", Result: audit.ResultOK, Detail: map[string]string{"a\nb": "v"}}},
		{"long detail key", audit.Entry{Action: "revoke", Result: audit.ResultOK, Detail: map[string]string{strings.Repeat("k", 65): "v"}}},
		{"year 10000", audit.Entry{Action: "revoke", Result: audit.ResultOK, Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
	}
	for _, tc := range tests {
		if got, err := l.Record(context.Background(), tc.e); !errors.Is(err, audit.ErrInvalidEntry) {
			t.Errorf("Record(%s) = %+v, %v; want ErrInvalidEntry", tc.name, got, err)
		}
	}
	if n, _ := l.Len(context.Background()); n != 0 {
		t.Errorf("Len after refused entries = %d; want 0", n)
	}
	// The limits themselves are fine.
	ok := audit.Entry{Action: "cert.revoke:all_" + strings.Repeat("x", 48), Result: audit.ResultOK, Detail: details(16)}
	if _, err := l.Record(context.Background(), ok); err != nil {
		t.Errorf("Record with a 64-byte action and 16 details: %v", err)
	}
}

func TestRecordBoundsUntrustedFields(t *testing.T) {
	l := newLog(t, storetest.OpenTemp(t))
	long := strings.Repeat("é", 600) // 1200 bytes, two per rune
	got := mustRecord(t, l, audit.Entry{
		Actor:  "user:" + long,
		Org:    long,
		Action: "login",
		Target: long,
		Result: audit.ResultRefused,
		Source: long,
		Detail: map[string]string{"note": long + long, "bad_utf8": "a\xffb", "empty": ""},
	})
	for _, f := range []struct {
		name string
		s    string
		max  int
	}{
		{"actor", got.Actor, 128},
		{"org", got.Org, 64},
		{"target", got.Target, 256},
		{"source", got.Source, 128},
		{"detail note", got.Detail["note"], 1024},
	} {
		if len(f.s) > f.max || !utf8.ValidString(f.s) || !strings.HasSuffix(f.s, "…") {
			t.Errorf("%s of %d bytes valid=%v: want at most %d bytes of valid UTF-8 ending in …", f.name, len(f.s), utf8.ValidString(f.s), f.max)
		}
	}
	if !strings.HasPrefix(got.Actor, "user:éé") {
		t.Errorf("actor cut to %q; want its beginning kept", got.Actor)
	}
	if got.Detail["bad_utf8"] != "a\uFFFDb" {
		t.Errorf("detail with invalid UTF-8 stored as %q; want %q", got.Detail["bad_utf8"], "a\uFFFDb")
	}
	if v, ok := got.Detail["empty"]; !ok || v != "" {
		t.Errorf("empty detail value: %q, %v; want kept as empty", v, ok)
	}
	p := mustList(t, l, audit.Query{})
	if diff := cmp.Diff([]audit.Entry{got}, p.Entries); diff != "" {
		t.Errorf("stored entry differs from the one Record returned (-want +got):\n%s", diff)
	}
	// An empty Detail map is stored as none.
	if e := mustRecord(t, l, audit.Entry{Action: "login", Result: audit.ResultOK, Detail: map[string]string{}}); e.Detail != nil {
		t.Errorf("Record with an empty Detail returned %#v; want nil", e.Detail)
	}
}

func TestRecordRedactsSecretDetails(t *testing.T) {
	l := newLog(t, storetest.OpenTemp(t))
	in := map[string]string{
		"password": "hunter2", "claim_code": "ABCD-EFGH-J", "code": "x", "api_key": "k", "private_key_pem": "p",
		"session_token": "t", "client_secret": "s", "pin": "1234", "otp.value": "5",
		// Not secrets.
		"reason": "keyCompromise", "key_type": "ecdsa", "code_kind": "label", "status": "403",
	}
	got := mustRecord(t, l, audit.Entry{Action: "claim", Result: audit.ResultRefused, Detail: in})
	want := map[string]string{
		"password": audit.Redacted, "claim_code": audit.Redacted, "code": audit.Redacted, "api_key": audit.Redacted,
		"private_key_pem": audit.Redacted, "session_token": audit.Redacted, "client_secret": audit.Redacted,
		"pin": audit.Redacted, "otp.value": audit.Redacted,
		"reason": "keyCompromise", "key_type": "ecdsa", "code_kind": "label", "status": "403",
	}
	if diff := cmp.Diff(want, got.Detail); diff != "" {
		t.Errorf("details (-want +got):\n%s", diff)
	}
	stored := mustList(t, l, audit.Query{}).Entries[0]
	for _, secret := range []string{"hunter2", "ABCD-EFGH-J", "1234"} {
		if strings.Contains(fmt.Sprint(stored.Detail), secret) {
			t.Errorf("stored details %v contain %q", stored.Detail, secret)
		}
	}
}

func TestRecordConcurrently(t *testing.T) {
	l := newLog(t, storetest.OpenTemp(t))
	const writers, each = 50, 40
	var mu sync.Mutex
	seen := map[uint64]string{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				target := fmt.Sprintf("GW-%d-%d", w, i)
				e, err := l.Record(context.Background(), audit.Entry{Action: "claim", Target: target, Result: audit.ResultOK})
				if err != nil {
					t.Errorf("Record %s: %v", target, err)
					return
				}
				mu.Lock()
				if prev, dup := seen[e.Seq]; dup {
					t.Errorf("seq %d given to both %s and %s", e.Seq, prev, target)
				}
				seen[e.Seq] = target
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	const total = writers * each
	if len(seen) != total {
		t.Fatalf("%d distinct seqs; want %d", len(seen), total)
	}
	for s := uint64(1); s <= total; s++ {
		if _, ok := seen[s]; !ok {
			t.Errorf("seq %d never given out; want 1 to %d without gaps", s, total)
		}
	}
	// Every entry is stored under the seq its caller was told.
	p := mustList(t, l, audit.Query{Limit: audit.MaxLimit})
	for p.Next != 0 {
		more := mustList(t, l, audit.Query{Limit: audit.MaxLimit, Before: p.Next})
		p.Entries, p.Next = append(p.Entries, more.Entries...), more.Next
	}
	if len(p.Entries) != total {
		t.Fatalf("listed %d entries; want %d", len(p.Entries), total)
	}
	for i, e := range p.Entries {
		if want := uint64(total - i); e.Seq != want || e.Target != seen[e.Seq] {
			t.Errorf("entry %d = seq %d target %s; want seq %d target %s", i, e.Seq, e.Target, want, seen[e.Seq])
		}
	}
}

func TestRecordWithCancelledContextWritesNothing(t *testing.T) {
	l := newLog(t, storetest.OpenTemp(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Record(ctx, audit.Entry{Action: "login", Result: audit.ResultOK}); !errors.Is(err, context.Canceled) {
		t.Errorf("Record with a cancelled context: %v; want context.Canceled", err)
	}
	if n, _ := l.Len(context.Background()); n != 0 {
		t.Errorf("Len = %d; want 0", n)
	}
}

func TestHelpers(t *testing.T) {
	for got, want := range map[string]string{
		audit.UserActor("olga"):      "user:olga",
		audit.StationActor("line1"):  "station:line1",
		audit.GatewayActor("GW-001"): "gateway:GW-001",
		audit.CertTarget("12345"):    "cert:12345",
	} {
		if got != want {
			t.Errorf("got %q; want %q", got, want)
		}
	}
}
