package telemetry

import (
	"bytes"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecodeRecord feeds decodeRecord arbitrary bytes (what a damaged file
// could hold): it must not panic, must refuse with ErrCorrupt, and what it
// accepts must encode back to a record that decodes to the same message.
// Seeds: testdata/fuzz/FuzzDecodeRecord and the records below.
func FuzzDecodeRecord(f *testing.F) {
	for _, m := range []Message{
		msg("GW1", "telemetry", base, `{"t":21.5}`),
		msg("A", "s", time.Unix(0, 0), ""),
		msg("SER-0001.x_y", "telemetry/a/b", base.Add(123456789), "\x00\x01\xff"),
	} {
		f.Add(encodeRecord(m))
	}
	f.Add([]byte{})
	f.Add([]byte{recordVersion, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeRecord(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeRecord(%x): error %v is not ErrCorrupt", b, err)
			}
			return
		}
		again := encodeRecord(m)
		m2, err := decodeRecord(again)
		if err != nil {
			t.Fatalf("re-encoded record %x does not decode: %v", again, err)
		}
		if diff := cmp.Diff(m, m2); diff != "" {
			t.Fatalf("round trip of %x (-first +second):\n%s", b, diff)
		}
		// Canonical input (minimal uvarints) re-encodes byte for byte.
		if len(again) == len(b) && !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %x gave %x", b, again)
		}
	})
}

// FuzzParseQuery feeds the HTTP parameter parser and the cursor decoder
// arbitrary query strings: no panic, and an accepted query is one Query
// accepts too.
func FuzzParseQuery(f *testing.F) {
	f.Add("GW1", "since=2026-11-26T00:00:00Z&until=2026-11-27T00:00:00Z&limit=10")
	f.Add("GW1", "topic=gw/GW1/telemetry&after="+encodeCursor(position{nanos: 1, seq: 2}))
	f.Add("GW1", "after=AQ")
	f.Add("x/y", "limit=1001")
	f.Fuzz(func(t *testing.T, gateway, rawQuery string) {
		v, err := url.ParseQuery(rawQuery)
		if err != nil {
			return
		}
		q, err := parseQuery(gateway, v)
		if err != nil {
			return
		}
		if err := validGateway(q.Gateway); err != nil {
			t.Fatalf("parseQuery accepted gateway %q: %v", q.Gateway, err)
		}
		if q.Limit < 0 || q.Limit > MaxLimit {
			t.Fatalf("parseQuery accepted limit %d", q.Limit)
		}
		if q.After != "" {
			p, err := decodeCursor(q.After)
			if err != nil {
				t.Fatalf("parseQuery accepted cursor %q: %v", q.After, err)
			}
			if got := encodeCursor(p); got != q.After {
				t.Fatalf("cursor %q re-encodes as %q", q.After, got)
			}
		}
	})
}
