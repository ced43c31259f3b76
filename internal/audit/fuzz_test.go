package audit

import (
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// FuzzParseQuery feeds GET /v1/audit query strings, which come from any
// logged-in operator: parsing must not panic, what it accepts must be within
// bounds, and encoding what it accepts must parse back to the same query.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"", "limit=10", "before=42&limit=1000", "action=revoke&target=GW-1&actor=user%3Aolga",
		"limit=0", "limit=1001", "before=-1", "before=18446744073709551615", "acton=x", "action=a&action=b",
		"target=%zz", "action=%E2%80%A6", "target=a+b", "actor=;", "&&=&", "limit=+5", "limit=0x10",
		"org=acme&action=login", "org=acme&org=globex", "org=acme+%26+co",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseQuery(raw)
		if err != nil {
			return
		}
		if q.Limit < 0 || q.Limit > MaxLimit || len(q.Action) > maxFilterLen || len(q.Target) > maxFilterLen || len(q.Actor) > maxFilterLen ||
			len(q.Org) > maxFilterLen {
			t.Fatalf("parseQuery(%q) accepted %+v, out of bounds", raw, q)
		}
		again, err := parseQuery(q.Encode())
		if err != nil {
			t.Fatalf("parseQuery(%q) = %+v, whose encoding %q does not parse: %v", raw, q, q.Encode(), err)
		}
		if again != q {
			t.Fatalf("parseQuery(%q) = %+v; encoded and parsed again: %+v", raw, q, again)
		}
	})
}

// FuzzClean feeds entries whose fields a remote caller may choose (a
// username that failed to log in, a source address, a detail): clean must
// not panic, and an entry it accepts is bounded, valid UTF-8, and reads back
// from its stored form unchanged.
func FuzzClean(f *testing.F) {
	f.Add("user:olga", "revoke", "GW-1", "ok", "192.0.2.7:1234", "reason", "key compromise")
	f.Add("user:\xff\xfe", "login", strings.Repeat("é", 200), "refused", "", "claim_code", "ABCD-EFGH-J")
	f.Add("", "", "", "", "", "", "")
	f.Add("system", "cert.revoke:all", "cert:1", "failed", strings.Repeat("x", 200), "Bad Key", "v")
	l := &Log{now: time.Now, log: slog.New(slog.DiscardHandler)}
	f.Fuzz(func(t *testing.T, actor, action, target, result, source, key, value string) {
		e := Entry{Actor: actor, Action: action, Target: target, Result: result, Source: source}
		if key != "" || value != "" {
			e.Detail = map[string]string{key: value}
		}
		c, err := l.clean(e, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
		if err != nil {
			if !errors.Is(err, ErrInvalidEntry) {
				t.Fatalf("clean: %v; want ErrInvalidEntry", err)
			}
			return
		}
		for _, f := range []struct {
			s   string
			max int
		}{{c.Actor, maxActorLen}, {c.Action, maxActionLen}, {c.Target, maxTargetLen}, {c.Source, maxSourceLen}} {
			if len(f.s) > f.max || !utf8.ValidString(f.s) {
				t.Fatalf("clean kept %q: over %d bytes or invalid UTF-8", f.s, f.max)
			}
		}
		for k, v := range c.Detail {
			if len(v) > maxDetailValueLen || !utf8.ValidString(v) || secretKey(k) && v != "" && v != Redacted {
				t.Fatalf("clean kept detail %q=%q", k, v)
			}
		}
		b, err := json.Marshal(record{Time: c.Time, Actor: c.Actor, Action: c.Action, Target: c.Target,
			Result: c.Result, Source: c.Source, Detail: c.Detail})
		if err != nil {
			t.Fatalf("encode %+v: %v", c, err)
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		back := Entry{Time: r.Time, Actor: r.Actor, Action: r.Action, Target: r.Target, Result: r.Result, Source: r.Source, Detail: r.Detail}
		if diff := cmp.Diff(c, back); diff != "" {
			t.Fatalf("entry changed through its stored form (-cleaned +read back):\n%s", diff)
		}
	})
}
