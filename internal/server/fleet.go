package server

import (
	"cmp"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gwpki/gwpki/broker"
	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/telemetry"
)

// lastSeen knows when each gateway's newest stored message arrived. It is
// the broker's sink: every message the broker stores passes through
// Append, which notes its time once the store has it, so the fleet list
// answers last_seen from a map instead of a walk of the telemetry index per
// row (the TUI refreshes the list every few seconds). A gateway it has not
// seen since the server started is looked up once with [telemetry.Store.Latest]
// and remembered, "none" included; the map is a cache rebuilt from the
// store, which stays the truth.
type lastSeen struct {
	store *telemetry.Store
	mu    sync.Mutex
	// at maps a gateway to the unix nanoseconds of its newest message; 0
	// means it has none.
	at map[string]int64
}

func newLastSeen(st *telemetry.Store) *lastSeen {
	return &lastSeen{store: st, at: map[string]int64{}}
}

// Append stores m and, once it is durable, notes its time. It implements
// [telemetry.Sink].
func (l *lastSeen) Append(ctx context.Context, m telemetry.Message) error {
	if err := l.store.Append(ctx, m); err != nil {
		return err
	}
	t := m.Time
	if t.IsZero() {
		t = time.Now() // the store's clock stamps such a message about now
	}
	l.note(m.Gateway, t.UnixNano())
	return nil
}

// note records n for gateway unless a newer time is known.
func (l *lastSeen) note(gateway string, n int64) {
	l.mu.Lock()
	if old, ok := l.at[gateway]; !ok || n > old {
		l.at[gateway] = n
	}
	l.mu.Unlock()
}

// get returns when gateway's newest message arrived, zero for none.
func (l *lastSeen) get(ctx context.Context, gateway string) (time.Time, error) {
	l.mu.Lock()
	n, ok := l.at[gateway]
	l.mu.Unlock()
	if !ok {
		rec, found, err := l.store.Latest(ctx, gateway, "")
		if err != nil {
			return time.Time{}, fmt.Errorf("last message of %s: %w", gateway, err)
		}
		if found {
			n = rec.Time.UnixNano()
		}
		l.note(gateway, n)
		l.mu.Lock()
		n = l.at[gateway] // a message may have arrived meanwhile
		l.mu.Unlock()
	}
	if n == 0 {
		return time.Time{}, nil
	}
	return time.Unix(0, n).UTC(), nil
}

// fleetSources wires the fleet view's columns and detail page to the
// broker, the telemetry store (through seen), the CA and the claim attempt
// limits (read only: the lock and back-off of each gateway).
func fleetSources(auth *ca.Authority, b *broker.Broker, tel *telemetry.Store, seen *lastSeen, attempts *claim.Attempts, now func() time.Time) claim.FleetSources {
	return claim.FleetSources{
		Online:        b.Online,
		LastSeen:      seen.get,
		Revoked:       auth.Decommissioned,
		ClaimAttempts: attempts.Gateway,
		CertNotAfter: func(_ context.Context, gateway string) (time.Time, error) {
			recs, err := auth.GatewayCertificates(gateway)
			if err != nil {
				return time.Time{}, err
			}
			return newestOperational(recs), nil
		},
		Certificates: func(_ context.Context, gateway string) ([]claim.DeviceCertificate, error) {
			recs, err := auth.GatewayCertificates(gateway)
			if err != nil {
				return nil, err
			}
			return deviceCertificates(recs, now()), nil
		},
		Telemetry: func(ctx context.Context, gateway, metric string, n int) (claim.TelemetrySummary, error) {
			return telemetrySummary(ctx, tel, gateway, metric, n)
		},
	}
}

// newestOperational returns the latest expiry of recs' unrevoked
// operational certificates (expired ones included), zero for none.
func newestOperational(recs []ca.CertRecord) time.Time {
	var t time.Time
	for _, r := range recs {
		if !r.Birth && r.Revoked == nil && r.NotAfter.After(t) {
			t = r.NotAfter
		}
	}
	return t
}

// deviceCertificates describes recs, newest first, with their status at
// now.
func deviceCertificates(recs []ca.CertRecord, now time.Time) []claim.DeviceCertificate {
	out := make([]claim.DeviceCertificate, 0, len(recs))
	for _, r := range recs {
		c := claim.DeviceCertificate{Serial: r.Serial, Kind: claim.CertKindOperational, NotAfter: r.NotAfter.UTC(), Status: claim.CertStatusGood}
		if n, ok := new(big.Int).SetString(r.Serial, 10); ok {
			c.Serial = n.Text(16)
		}
		if r.Birth {
			c.Kind = claim.CertKindBirth
		}
		if cert, err := x509.ParseCertificate(r.DER); err == nil {
			c.NotBefore = cert.NotBefore.UTC()
		}
		switch {
		case r.Revoked != nil:
			c.Status, c.RevocationReason, c.RevokedAt = claim.CertStatusRevoked, r.Revoked.Reason, r.Revoked.RevokedAt.UTC()
		case !now.Before(r.NotAfter):
			c.Status = claim.CertStatusExpired
		}
		out = append(out, c)
	}
	slices.SortStableFunc(out, func(a, b claim.DeviceCertificate) int {
		// Issued in the same second (NotBefore is backdated and
		// truncated): a birth certificate comes first in a gateway's
		// life, so last here.
		birth := func(c claim.DeviceCertificate) bool { return c.Kind == claim.CertKindBirth }
		return cmp.Or(b.NotBefore.Compare(a.NotBefore), compareBool(birth(a), birth(b)), b.NotAfter.Compare(a.NotAfter))
	})
	return out
}

// compareBool orders false before true.
func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// Bounds on the telemetry read for one detail page: the series looks back
// from the latest message over a window that grows fourfold until it holds
// n values, at most seriesMaxSpan, reading at most seriesMaxPages pages.
const (
	seriesFirstSpan = 10 * time.Minute
	seriesMaxSpan   = 40 * 24 * time.Hour
	seriesMaxPages  = 20
)

// telemetrySummary returns the gateway's latest telemetry message and the
// last n values of the numeric field metric (a dotted path; a plain name
// not at the top of the payload is also looked for one object down, so
// flow_m3h finds pump.flow_m3h).
func telemetrySummary(ctx context.Context, tel *telemetry.Store, gateway, metric string, n int) (claim.TelemetrySummary, error) {
	out := claim.TelemetrySummary{Metric: metric, Series: []claim.MetricPoint{}}
	prefix := "gw/" + gateway + "/telemetry"
	latest, ok, err := tel.Latest(ctx, gateway, prefix)
	if err != nil {
		return out, fmt.Errorf("latest telemetry of %s: %w", gateway, err)
	}
	if !ok {
		return out, nil
	}
	out.Latest = &claim.TelemetryMessage{Topic: latest.Topic, Time: latest.Time, Payload: latest.Payload, PayloadBase64: latest.PayloadBase64}
	until := latest.Time.Add(time.Nanosecond)
	pages := 0
	for span := seriesFirstSpan; ; span *= 4 {
		var pts []claim.MetricPoint
		q := telemetry.Query{Gateway: gateway, Since: until.Add(-span), Until: until, Limit: telemetry.MaxLimit}
		for {
			page, err := tel.Query(ctx, q)
			if err != nil {
				return out, fmt.Errorf("telemetry of %s: %w", gateway, err)
			}
			pages++
			for _, r := range page.Messages {
				if !strings.HasPrefix(r.Topic, prefix) || r.Payload == nil {
					continue
				}
				if v, ok := metricValue(r.Payload, metric); ok {
					pts = append(pts, claim.MetricPoint{Time: r.Time, Value: v})
				}
			}
			if len(pts) > n {
				pts = slices.Clone(pts[len(pts)-n:])
			}
			if page.Next == "" || pages >= seriesMaxPages {
				break
			}
			q.After = page.Next
		}
		out.Series = pts
		if len(pts) >= n || span >= seriesMaxSpan || pages >= seriesMaxPages {
			break
		}
	}
	if out.Series == nil {
		out.Series = []claim.MetricPoint{}
	}
	return out, nil
}

// metricValue returns the number at path in the JSON payload.
func metricValue(payload []byte, path string) (float64, bool) {
	var doc map[string]any
	if json.Unmarshal(payload, &doc) != nil {
		return 0, false
	}
	names := strings.Split(path, ".")
	if v, ok := lookup(doc, names); ok {
		return v, true
	}
	if len(names) == 1 {
		for _, k := range slices.Sorted(maps.Keys(doc)) {
			if m, ok := doc[k].(map[string]any); ok {
				if v, ok := lookup(m, names); ok {
					return v, true
				}
			}
		}
	}
	return 0, false
}

func lookup(doc map[string]any, names []string) (float64, bool) {
	var cur any = doc
	for _, name := range names {
		m, ok := cur.(map[string]any)
		if !ok {
			return 0, false
		}
		if cur, ok = m[name]; !ok {
			return 0, false
		}
	}
	v, ok := cur.(float64)
	return v, ok
}
