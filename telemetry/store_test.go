package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
)

// stored is what a test appended, to compute expected answers independently
// of the store.
type stored []Message

// want returns the records of gateway in [since, until) (zero = open) with
// the given topic ("" for any), ordered by time and then by append order.
func (s stored) want(gateway string, since, until time.Time, topic string) []Record {
	var out []Record
	idx := make([]int, 0, len(s))
	for i, m := range s {
		if m.Gateway != gateway || (topic != "" && m.Topic != topic) {
			continue
		}
		if !since.IsZero() && m.Time.Before(since) || !until.IsZero() && !m.Time.Before(until) {
			continue
		}
		idx = append(idx, i)
	}
	slices.SortStableFunc(idx, func(a, b int) int { return s[a].Time.Compare(s[b].Time) })
	for _, i := range idx {
		out = append(out, newRecord(s[i]))
	}
	return out
}

// appendAll appends ms in order and records them with the time stored.
func appendAll(t *testing.T, s *Store, clock *fakeClock, ms []Message) stored {
	t.Helper()
	var st stored
	for _, m := range ms {
		if m.Time.IsZero() {
			m.Time = clock.t
		}
		if err := s.Append(context.Background(), m); err != nil {
			t.Fatalf("Append(%s %s): %v", m.Topic, m.Time, err)
		}
		st = append(st, m)
	}
	return st
}

// fixture spreads messages of three gateways over five hourly partitions,
// some appended out of time order, with JSON and binary payloads.
func fixture(t *testing.T) (*Store, *fakeClock, stored) {
	t.Helper()
	clock := newClock(base.Add(5 * time.Hour))
	s, _ := openTemp(t, Options{Partition: time.Hour, Clock: clock.Now})
	var ms []Message
	for i := range 50 {
		at := base.Add(time.Duration(i) * 6 * time.Minute)
		ms = append(ms,
			msg("GW-A", "telemetry", at, fmt.Sprintf(`{"i":%d}`, i)),
			msg("GW-B", "telemetry", at, fmt.Sprintf(`{"b":%d}`, i)),
			msg("GW-A-1", "telemetry", at, `{}`), // GW-A's prefix, another gateway
		)
		if i%5 == 0 {
			ms = append(ms, msg("GW-A", "state", at.Add(time.Second), "\x00\xffnot json"))
		}
	}
	// Late arrivals with earlier times, and two messages at the same instant.
	ms = append(ms,
		msg("GW-A", "telemetry/late", base.Add(90*time.Minute+time.Millisecond), `[1,2]`),
		msg("GW-A", "telemetry/late", base.Add(10*time.Second), `"x"`),
		msg("GW-A", "telemetry/tie", base.Add(3*time.Hour), `1`),
		msg("GW-A", "telemetry/tie", base.Add(3*time.Hour), `2`),
		Message{Gateway: "GW-A", Topic: "gw/GW-A/telemetry/now", Payload: []byte(`true`)}, // clock time
	)
	return s, clock, appendAll(t, s, clock, ms)
}

func TestAppendQueryRoundTrip(t *testing.T) {
	s, _, st := fixture(t)
	ctx := context.Background()
	if got := len(s.partitions); got != 6 {
		t.Errorf("partitions after appends over 5h plus one at 05:00: got %d; want 6", got)
	}
	cases := []struct {
		name         string
		gw           string
		since, until time.Time
		topic        string
	}{
		{name: "all of GW-A", gw: "GW-A"},
		{name: "all of GW-B", gw: "GW-B"},
		{name: "prefix gateway not mixed in", gw: "GW-A-1"},
		{name: "window across partitions", gw: "GW-A", since: base.Add(90 * time.Minute), until: base.Add(3*time.Hour + 30*time.Minute)},
		{name: "since only", gw: "GW-A", since: base.Add(4 * time.Hour)},
		{name: "until only", gw: "GW-A", until: base.Add(30 * time.Minute)},
		{name: "until on a partition boundary", gw: "GW-B", since: base.Add(time.Hour), until: base.Add(2 * time.Hour)},
		{name: "topic filter", gw: "GW-A", topic: "gw/GW-A/state"},
		{name: "topic and window", gw: "GW-A", topic: "gw/GW-A/telemetry/tie", since: base.Add(3 * time.Hour), until: base.Add(3*time.Hour + 1)},
		{name: "no such gateway", gw: "GW-Z"},
		{name: "window before all data", gw: "GW-A", since: base.Add(-48 * time.Hour), until: base.Add(-47 * time.Hour)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			page, err := s.Query(ctx, Query{Gateway: tc.gw, Since: tc.since, Until: tc.until, Topic: tc.topic, Limit: MaxLimit})
			if err != nil {
				t.Fatal(err)
			}
			if page.Next != "" {
				t.Errorf("Next = %q; want none with everything on one page", page.Next)
			}
			want := st.want(tc.gw, tc.since, tc.until, tc.topic)
			if diff := cmp.Diff(want, page.Messages); diff != "" {
				t.Errorf("Query(%s) mismatch (-want +got):\n%s", tc.name, diff)
			}
		})
	}
	// The order is by time, including the late arrivals.
	page, err := s.Query(ctx, Query{Gateway: "GW-A", Limit: MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSortedFunc(page.Messages, func(a, b Record) int { return a.Time.Compare(b.Time) }) {
		t.Error("GW-A's messages are not in time order")
	}
	// Binary payloads come back base64, JSON ones as JSON, both round-trip.
	for _, r := range page.Messages {
		isState := r.Topic == "gw/GW-A/state"
		if isState != (r.Payload == nil) || isState != (r.PayloadBase64 != "") {
			t.Errorf("%s: Payload %q, PayloadBase64 %q; want base64 only for the binary state payload", r.Topic, r.Payload, r.PayloadBase64)
		}
		if isState && string(r.Message().Payload) != "\x00\xffnot json" {
			t.Errorf("binary payload round trip: got %q", r.Message().Payload)
		}
	}
}

func TestQueryPaging(t *testing.T) {
	s, _, st := fixture(t)
	ctx := context.Background()
	for _, tc := range []struct {
		limit        int
		since, until time.Time
		topic        string
	}{
		{limit: 1},
		{limit: 7},
		{limit: 7, since: base.Add(70 * time.Minute), until: base.Add(4 * time.Hour)},
		{limit: 2, topic: "gw/GW-A/telemetry/tie"},
		{limit: 3, topic: "gw/GW-A/state"},
	} {
		t.Run(fmt.Sprintf("limit=%d,topic=%q", tc.limit, tc.topic), func(t *testing.T) {
			want := st.want("GW-A", tc.since, tc.until, tc.topic)
			var got []Record
			q := Query{Gateway: "GW-A", Since: tc.since, Until: tc.until, Topic: tc.topic, Limit: tc.limit}
			for pages := 0; ; pages++ {
				if pages > len(want)+1 {
					t.Fatalf("paging does not end after %d pages", pages)
				}
				page, err := s.Query(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if len(page.Messages) > tc.limit {
					t.Fatalf("page of %d messages; limit %d", len(page.Messages), tc.limit)
				}
				if page.Next != "" && len(page.Messages) != tc.limit {
					t.Errorf("short page of %d with a Next cursor", len(page.Messages))
				}
				got = append(got, page.Messages...)
				if page.Next == "" {
					break
				}
				q.After = page.Next
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("pages joined mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestQueryLimits(t *testing.T) {
	clock := newClock(base)
	clock.step = time.Second
	s, _ := openTemp(t, Options{Clock: clock.Now})
	ctx := context.Background()
	for i := range 150 {
		if err := s.Append(ctx, Message{Gateway: "G1", Topic: "gw/G1/telemetry", Payload: fmt.Appendf(nil, "%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	page, err := s.Query(ctx, Query{Gateway: "G1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != DefaultLimit || page.Next == "" {
		t.Errorf("Limit 0: got %d messages, next %q; want %d and a cursor", len(page.Messages), page.Next, DefaultLimit)
	}
	page, err = s.Query(ctx, Query{Gateway: "G1", Limit: 150})
	if err != nil || len(page.Messages) != 150 || page.Next != "" {
		t.Errorf("Limit 150 of 150: got %d messages, next %q, err %v; want all and no cursor", len(page.Messages), page.Next, err)
	}
	for _, q := range []Query{
		{Gateway: "G1", Limit: -1},
		{Gateway: "G1", Limit: MaxLimit + 1},
		{Gateway: "G1", Since: base.Add(time.Hour), Until: base.Add(time.Hour)},
		{Gateway: "G1", Since: base.Add(time.Hour), Until: base},
		{Gateway: "G1", After: "not-a-cursor"},
		{Gateway: "G1", After: encodeCursor(position{})[:5]},
	} {
		if _, err := s.Query(ctx, q); !errors.Is(err, ErrInvalidQuery) {
			t.Errorf("Query(%+v): got %v; want ErrInvalidQuery", q, err)
		}
	}
	for _, gw := range []string{"", "a/b", strings.Repeat("x", 65), "G1\x00"} {
		if _, err := s.Query(ctx, Query{Gateway: gw}); !errors.Is(err, ErrInvalidGateway) {
			t.Errorf("Query(gateway %q): got %v; want ErrInvalidGateway", gw, err)
		}
		if _, _, err := s.Latest(ctx, gw, ""); !errors.Is(err, ErrInvalidGateway) {
			t.Errorf("Latest(gateway %q): got %v; want ErrInvalidGateway", gw, err)
		}
	}
}

func TestLatest(t *testing.T) {
	s, _, st := fixture(t)
	ctx := context.Background()
	for _, tc := range []struct{ gw, prefix string }{
		{"GW-A", ""},
		{"GW-A", "gw/GW-A/state"},
		{"GW-A", "gw/GW-A/telemetry/late"},
		{"GW-A", "gw/GW-A/telemetry/tie"},
		{"GW-B", "gw/GW-B/"},
		{"GW-A-1", ""},
		{"GW-A", "gw/GW-A/nothing"},
		{"GW-Z", ""},
	} {
		var want *Record
		for _, r := range st.want(tc.gw, time.Time{}, time.Time{}, "") {
			if strings.HasPrefix(r.Topic, tc.prefix) {
				want = &r
			}
		}
		got, ok, err := s.Latest(ctx, tc.gw, tc.prefix)
		if err != nil {
			t.Fatal(err)
		}
		if (want != nil) != ok {
			t.Errorf("Latest(%s, %q): found %v; want %v", tc.gw, tc.prefix, ok, want != nil)
			continue
		}
		if want != nil {
			if diff := cmp.Diff(*want, got); diff != "" {
				t.Errorf("Latest(%s, %q) mismatch (-want +got):\n%s", tc.gw, tc.prefix, diff)
			}
		}
	}
}

func TestAppendRejects(t *testing.T) {
	clock := newClock(base)
	s, _ := openTemp(t, Options{Clock: clock.Now, MaxPayload: 1024})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		m    Message
		want error
	}{
		{"empty gateway", Message{Topic: "gw//telemetry"}, ErrInvalidGateway},
		{"gateway too long", msg(strings.Repeat("a", 65), "t", time.Time{}, ""), ErrInvalidGateway},
		{"slash in gateway", Message{Gateway: "a/b", Topic: "gw/a/b/telemetry"}, ErrInvalidGateway},
		{"space in gateway", msg("a b", "t", time.Time{}, ""), ErrInvalidGateway},
		{"NUL in gateway", msg("a\x00", "t", time.Time{}, ""), ErrInvalidGateway},
		{"non-ASCII gateway", msg("gä", "t", time.Time{}, ""), ErrInvalidGateway},
		{"topic of another gateway", Message{Gateway: "GW1", Topic: "gw/GW2/telemetry"}, ErrInvalidTopic},
		{"topic of a gateway with this prefix", Message{Gateway: "GW1", Topic: "gw/GW1x/telemetry"}, ErrInvalidTopic},
		{"topic without the gw root", Message{Gateway: "GW1", Topic: "GW1/telemetry"}, ErrInvalidTopic},
		{"topic is just the gateway", Message{Gateway: "GW1", Topic: "gw/GW1/"}, ErrInvalidTopic},
		{"wildcard", Message{Gateway: "GW1", Topic: "gw/GW1/#"}, ErrInvalidTopic},
		{"plus wildcard", Message{Gateway: "GW1", Topic: "gw/GW1/+/x"}, ErrInvalidTopic},
		{"NUL in topic", Message{Gateway: "GW1", Topic: "gw/GW1/a\x00"}, ErrInvalidTopic},
		{"invalid UTF-8", Message{Gateway: "GW1", Topic: "gw/GW1/\xff"}, ErrInvalidTopic},
		{"topic too long", Message{Gateway: "GW1", Topic: "gw/GW1/" + strings.Repeat("t", MaxTopic)}, ErrInvalidTopic},
		{"payload too large", Message{Gateway: "GW1", Topic: "gw/GW1/telemetry", Payload: make([]byte, 1025)}, ErrTooLarge},
		{"before 1970", Message{Gateway: "GW1", Topic: "gw/GW1/telemetry", Time: time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC)}, ErrInvalidTime},
		{"after 2199", Message{Gateway: "GW1", Topic: "gw/GW1/telemetry", Time: time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)}, ErrInvalidTime},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Append(ctx, tc.m)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Append: got %v; want %v", err, tc.want)
			}
			if !Permanent(err) {
				t.Errorf("Permanent(%v) = false; want true", err)
			}
		})
	}
	// The largest allowed payload and a 64-character serial are fine.
	gw := strings.Repeat("Z", 64)
	if err := s.Append(ctx, Message{Gateway: gw, Topic: "gw/" + gw + "/t", Payload: make([]byte, 1024)}); err != nil {
		t.Errorf("Append at the limits: %v", err)
	}
	// Nothing refused was stored.
	var keys int
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if _, ok := parsePartitionKey(name); ok {
				keys += b.Bucket(logBucket).Stats().KeyN
			}
			return nil
		})
	})
	if err != nil || keys != 1 {
		t.Errorf("records stored: %d (err %v); want only the one accepted", keys, err)
	}
	// A cancelled context is not an error about the message.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Append(cctx, msg("GW1", "t", time.Time{}, "")); !errors.Is(err, context.Canceled) || Permanent(err) {
		t.Errorf("Append with a cancelled context: got %v; want a non-permanent context.Canceled", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, msg("GW1", "t", time.Time{}, "")); err == nil || Permanent(err) {
		t.Errorf("Append after Close: got %v; want a non-permanent error", err)
	}
}

func TestConcurrentAppendsGroupCommit(t *testing.T) {
	const writers, each = 64, 200
	clock := newClock(base)
	clock.step = time.Millisecond // strictly increasing times: per-writer order is time order
	var commits, committed atomic.Int64
	var counting atomic.Bool
	// The index pass is an update of its own: kept out of the count.
	s, _ := openTemp(t, Options{Clock: clock.Now, Partition: time.Second, IndexInterval: time.Hour, OnCommit: func(n int, _ time.Duration) {
		if counting.Load() {
			commits.Add(1)
			committed.Add(int64(n))
		}
	}})
	counting.Store(true)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			gw := fmt.Sprintf("GW-%02d", w%16)
			for i := range each {
				p := fmt.Appendf(nil, `{"w":%d,"i":%d}`, w, i)
				if err := s.Append(ctx, Message{Gateway: gw, Topic: "gw/" + gw + "/telemetry", Payload: p}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Append: %v", err)
	}
	n, c := committed.Load(), commits.Load()
	t.Logf("%d appends in %d commits (%.1f per commit), %d partitions", n, c, float64(n)/float64(c), len(s.partitions))
	if n != writers*each {
		t.Errorf("updates committed: got %d; want %d", n, writers*each)
	}
	if c > writers*each/8 {
		t.Errorf("commits: got %d for %d appends; want them grouped (at most %d)", c, writers*each, writers*each/8)
	}
	// Every append is there once, and each writer's appends in its order.
	next := make(map[int]int)
	for g := range 16 {
		gw := fmt.Sprintf("GW-%02d", g)
		q := Query{Gateway: gw, Limit: MaxLimit}
		for {
			page, err := s.Query(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Messages {
				var p struct{ W, I int }
				if err := json.Unmarshal(r.Payload, &p); err != nil {
					t.Fatalf("payload %q: %v", r.Payload, err)
				}
				if p.W%16 != g || next[p.W] != p.I {
					t.Fatalf("%s: got writer %d message %d; want writer's message %d", gw, p.W, p.I, next[p.W])
				}
				next[p.W]++
			}
			if page.Next == "" {
				break
			}
			q.After = page.Next
		}
	}
	for w := range writers {
		if next[w] != each {
			t.Errorf("writer %d: %d messages found; want %d", w, next[w], each)
		}
	}
}

func TestReopen(t *testing.T) {
	clock := newClock(base)
	clock.step = 17 * time.Minute
	opts := Options{Clock: clock.Now, Partition: time.Hour}
	s, path := openTemp(t, opts)
	ctx := context.Background()
	var st stored
	for i := range 40 {
		m := Message{Gateway: "GW1", Topic: "gw/GW1/telemetry", Payload: fmt.Appendf(nil, `{"i":%d}`, i)}
		if err := s.Append(ctx, m); err != nil {
			t.Fatal(err)
		}
		m.Time = base.Add(time.Duration(i) * 17 * time.Minute)
		st = append(st, m)
	}
	parts := slices.Clone(s.partitions)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened with another span: the file's is kept, so the old partitions
	// are still found.
	opts.Partition = 24 * time.Hour
	s2, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.span != 3600 {
		t.Errorf("span after reopen with another option: got %ds; want the file's 3600s", s2.span)
	}
	if diff := cmp.Diff(parts, s2.partitions); diff != "" {
		t.Errorf("partitions rebuilt on Open (-before +after):\n%s", diff)
	}
	page, err := s2.Query(ctx, Query{Gateway: "GW1", Limit: MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(st.want("GW1", time.Time{}, time.Time{}, ""), page.Messages); diff != "" {
		t.Errorf("after reopen (-want +got):\n%s", diff)
	}
	if _, err := Open(path, Options{Partition: 1500 * time.Millisecond}); err == nil {
		t.Error("Open with a span of 1.5s: want an error")
	}
}
