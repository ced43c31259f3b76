package claim

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/gwpki/gwpki/internal/audit"
	"github.com/gwpki/gwpki/internal/httpapi"
)

// FleetSources supply what the fleet view shows beside the registry: live
// sessions, telemetry and certificates. gwpki serve wires the broker, the
// telemetry store and the CA ([Registry.SetFleetSources]), so that this
// package imports none of them. A nil function leaves its fields empty.
type FleetSources struct {
	// Online reports whether the gateway has a live MQTT session. It is
	// called for every device of a page, so it must be cheap.
	Online func(gateway string) bool
	// LastSeen returns when the gateway's newest stored message arrived,
	// zero for none. It is called for every device of a page.
	LastSeen func(ctx context.Context, gateway string) (time.Time, error)
	// CertNotAfter returns the expiry of the gateway's newest unrevoked
	// operational certificate, zero for none. It is called for every
	// device of a page.
	CertNotAfter func(ctx context.Context, gateway string) (time.Time, error)
	// Revoked reports whether the gateway is revoked: its birth certificate
	// is (gwpki revoke of the gateway revokes all its certificates), so it
	// can never bootstrap again. It is called for every device of a page.
	Revoked func(gateway string) (bool, error)
	// ClaimAttempts returns the state of the gateway's claim attempt limit
	// ([Attempts.Gateway]: it only reads). It is called for every device of
	// a page, and for the device of GET /v1/devices/{serial}.
	ClaimAttempts func(ctx context.Context, gateway string) (GatewayAttempts, error)
	// Certificates returns the gateway's certificates, newest first.
	Certificates func(ctx context.Context, gateway string) ([]DeviceCertificate, error)
	// Telemetry returns the gateway's latest telemetry message and the
	// last n values of the numeric field metric.
	Telemetry func(ctx context.Context, gateway, metric string, n int) (TelemetrySummary, error)
}

// DeviceCertificate is a certificate of a gateway as the detail page shows
// it.
type DeviceCertificate struct {
	// Serial is the certificate's serial number in hexadecimal.
	Serial string `json:"serial"`
	// Kind is "birth" (IDevID) or "operational".
	Kind      string    `json:"kind"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// Status is "good", "revoked" or "expired" (revoked wins).
	Status           string    `json:"status"`
	RevocationReason string    `json:"revocation_reason,omitempty"`
	RevokedAt        time.Time `json:"revoked_at,omitzero"`
}

// Certificate kinds and statuses of [DeviceCertificate].
const (
	CertKindBirth       = "birth"
	CertKindOperational = "operational"
	CertStatusGood      = "good"
	CertStatusRevoked   = "revoked"
	CertStatusExpired   = "expired"
)

// TelemetryMessage is a stored message as the detail page shows it.
type TelemetryMessage struct {
	Topic string    `json:"topic"`
	Time  time.Time `json:"time"`
	// Payload is the payload when it is JSON; PayloadBase64 otherwise.
	Payload       json.RawMessage `json:"payload"`
	PayloadBase64 string          `json:"payload_base64,omitempty"`
}

// MetricPoint is one value of a numeric telemetry field.
type MetricPoint struct {
	Time  time.Time `json:"time"`
	Value float64   `json:"value"`
}

// TelemetrySummary is the telemetry part of a [DeviceDetail].
type TelemetrySummary struct {
	// Latest is the newest telemetry message, absent when there is none.
	Latest *TelemetryMessage `json:"latest,omitempty"`
	// Metric names the field of Series.
	Metric string `json:"metric"`
	// Series holds the field's last values, oldest first (at most
	// [DetailSeriesLen]); messages without the field are skipped.
	Series []MetricPoint `json:"series"`
}

// DeviceDetail answers GET /v1/devices/{serial}/detail.
type DeviceDetail struct {
	// Device carries the fleet fields (online, last_seen, cert_not_after,
	// revoked, claim_lock...).
	Device Device `json:"device"`
	// Certificates are the gateway's certificates, newest first.
	Certificates []DeviceCertificate `json:"certificates"`
	// History holds the audit entries of the gateway's claims (result
	// ok), unclaims and unlocks, newest first, at most
	// [DetailHistoryLen]; operators see their organisation's entries.
	History   []audit.Entry    `json:"history"`
	Telemetry TelemetrySummary `json:"telemetry"`
}

// Sizes of a [DeviceDetail].
const (
	DetailHistoryLen = 20
	DetailSeriesLen  = 60
	// DefaultMetric is the field of the series when ?metric= is absent.
	DefaultMetric = "flow_m3h"
)

// historyActions are the audit actions of a device's claim history.
var historyActions = map[string]bool{"claim": true, "unclaim": true, "unlock": true}

// SetFleetSources sets where the fleet fields of GET /v1/devices and the
// detail page come from. Call it before the server serves requests.
func (r *Registry) SetFleetSources(s FleetSources) { r.fleet = s }

// addFleetFields sets the fleet fields of devs. A source that fails leaves
// its field empty and is logged: the list is still worth showing.
func (r *Registry) addFleetFields(ctx context.Context, devs []Device) {
	for i := range devs {
		d := &devs[i]
		if f := r.fleet.Online; f != nil {
			d.Online = f(d.Serial)
		}
		if f := r.fleet.LastSeen; f != nil {
			t, err := f(ctx, d.Serial)
			if err != nil {
				r.log.Warn("fleet: last seen", "serial", d.Serial, "err", err)
			}
			d.LastSeen = t
		}
		if f := r.fleet.CertNotAfter; f != nil {
			t, err := f(ctx, d.Serial)
			if err != nil {
				r.log.Warn("fleet: certificate expiry", "serial", d.Serial, "err", err)
			}
			d.CertNotAfter = t
		}
		if f := r.fleet.Revoked; f != nil {
			revoked, err := f(d.Serial)
			if err != nil {
				r.log.Warn("fleet: revoked", "serial", d.Serial, "err", err)
			}
			d.Revoked = revoked
		}
		r.addClaimAttempts(ctx, d)
	}
}

// addClaimAttempts sets d's claim lock fields. A failure leaves them empty
// and is logged.
func (r *Registry) addClaimAttempts(ctx context.Context, d *Device) {
	f := r.fleet.ClaimAttempts
	if f == nil {
		return
	}
	a, err := f(ctx, d.Serial)
	if err != nil {
		r.log.Warn("fleet: claim attempts", "serial", d.Serial, "err", err)
		return
	}
	d.setClaimAttempts(a)
}

// validMetric accepts 1 to 64 of A-Z a-z 0-9 _ - and dots between names
// (a dotted path into the JSON payload).
func validMetric(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '_', c == '-':
		case c == '.' && s[i-1] != '.':
		default:
			return false
		}
	}
	return true
}

func (r *Registry) handleDetail(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	user, ok := UserFromContext(ctx)
	if !ok {
		httpapi.WriteError(w, req, errors.New("device detail: no user in the request context"))
		return
	}
	v, err := url.ParseQuery(req.URL.RawQuery)
	if err != nil {
		httpapi.WriteError(w, req, &httpapi.Error{Status: http.StatusBadRequest, Msg: "malformed query string", Err: err})
		return
	}
	metric := DefaultMetric
	for name, vals := range v {
		if name != "metric" || len(vals) != 1 {
			httpapi.WriteError(w, req, httpapi.Errorf(http.StatusBadRequest, "unknown or repeated query parameter %q", clip(name, 32)).
				WithHint("use metric (a numeric field of the telemetry payload), at most once"))
			return
		}
		metric = vals[0]
	}
	if !validMetric(metric) {
		httpapi.WriteError(w, req, httpapi.Errorf(http.StatusBadRequest, "invalid metric").
			WithHint("use a field name of the telemetry payload, e.g. flow_m3h or pump.flow_m3h"))
		return
	}
	serial := chi.URLParam(req, "serial")
	rec, err := r.store.device(ctx, serial)
	if err == nil && !visible(user, rec) {
		err = ErrDeviceNotFound
	}
	switch {
	case errors.Is(err, ErrDeviceNotFound):
		writeNoSuchDevice(w, req)
		return
	case err != nil:
		httpapi.WriteError(w, req, err)
		return
	}
	d := DeviceDetail{
		Device:       rec.device(),
		Certificates: []DeviceCertificate{},
		Telemetry:    TelemetrySummary{Metric: metric, Series: []MetricPoint{}},
	}
	devs := []Device{d.Device}
	r.addFleetFields(ctx, devs)
	d.Device = devs[0]
	if f := r.fleet.Certificates; f != nil {
		certs, err := f(ctx, serial)
		if err != nil {
			httpapi.WriteError(w, req, err)
			return
		}
		if certs != nil {
			d.Certificates = certs
		}
	}
	if d.History, err = r.history(ctx, user, serial); err != nil {
		httpapi.WriteError(w, req, err)
		return
	}
	if f := r.fleet.Telemetry; f != nil {
		t, err := f(ctx, serial, metric, DetailSeriesLen)
		if err != nil {
			httpapi.WriteError(w, req, err)
			return
		}
		t.Metric = metric
		if t.Series == nil {
			t.Series = []MetricPoint{}
		}
		d.Telemetry = t
	}
	httpapi.WriteJSON(w, http.StatusOK, d)
}

// history returns the newest [DetailHistoryLen] claim (ok), unclaim and
// unlock entries about serial that user may read: an admin all, anyone
// else their organisation's (as GET /v1/audit scopes them). The audit log
// indexes entries by target, so the pages read hold only this gateway's
// entries, however old: it reads until it has enough or the gateway has no
// older entries.
func (r *Registry) history(ctx context.Context, user User, serial string) ([]audit.Entry, error) {
	out := []audit.Entry{}
	q := audit.Query{Target: serial, Limit: audit.MaxLimit}
	if user.Role != RoleAdmin {
		q.Org = user.Org
	}
	for {
		page, err := r.audit.List(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, e := range page.Entries {
			if !historyActions[e.Action] || e.Action == "claim" && e.Result != audit.ResultOK {
				continue
			}
			out = append(out, e)
			if len(out) == DetailHistoryLen {
				return out, nil
			}
		}
		if page.Next == 0 {
			break
		}
		q.Before = page.Next
	}
	return out, nil
}
