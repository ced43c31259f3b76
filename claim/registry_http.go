package claim

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/gwpki/gwpki/internal/audit"
	"github.com/gwpki/gwpki/internal/httpapi"
)

// StationAuth authenticates a line station's request (gwpki serve wires
// the CA's check of a one-time JWT signed by the station's key with the
// audience <api>/v1/devices). It returns the station's name, or an
// *httpapi.Error (401, 403) to answer with; any other error is answered
// 500.
type StationAuth func(r *http.Request) (station string, err error)

// CertVerifier checks the PEM birth certificate (IDevID) a station
// presents: issued and stored by this CA, not revoked, a birth certificate.
// It returns what it verified, or an *httpapi.Error (422 or 400, with a
// public reason) for a certificate it refuses; any other error is answered
// 500. gwpki serve wires the CA's check.
type CertVerifier func(ctx context.Context, pemCert []byte) (CertInfo, error)

// RegisterBody is the JSON body of POST /v1/devices.
type RegisterBody struct {
	Serial string `json:"serial"`
	Model  string `json:"model"`
	// Certificate is the gateway's birth certificate, PEM (the leaf).
	Certificate string `json:"certificate"`
	// Reissue replaces the birth certificate of a registered gateway.
	Reissue bool `json:"reissue,omitempty"`
}

// Registration answers POST /v1/devices. It carries the gateway's claim
// credentials, so it is sent with Cache-Control: no-store and never shown
// by the read routes.
type Registration struct {
	Device Device `json:"device"`
	// ClaimSecret is the 32-byte claim secret, base64url without padding.
	ClaimSecret string `json:"claim_secret"`
	// LabelCode is XXXX-XXXX-XXXX-XXXX-C, for the gateway's label.
	LabelCode string `json:"label_code"`
	// BootstrapURL is where the gateway asks for its operational
	// certificate.
	BootstrapURL string `json:"bootstrap_url"`
}

// Routes mounts the registry's API on router:
//
//	POST /v1/devices            (station)  RegisterBody -> 201 Registration (200 when registered already)
//	GET  /v1/devices?after=&limit=&sort=&order=&q=&state=&model=&org=   (operator) a DevicePage
//	GET  /v1/devices/{serial}   (operator) a Device
//	GET  /v1/devices/{serial}/detail?metric=   (operator) a DeviceDetail
//
// Operators see only their organisation's gateways (an unclaimed gateway
// is nobody's); admins see all and may filter by org. Another
// organisation's gateway is answered 404, like an unknown serial.
//
// stationAuth authenticates registrations, verify checks their birth
// certificates, operator guards the read routes (gwpki serve passes
// accounts.RequireRole(RoleOperator)), and bootstrapURL is handed to every
// registered gateway. Routes panics if a function is nil: the registry must
// never be open to anyone who asks.
func (r *Registry) Routes(router chi.Router, stationAuth StationAuth, verify CertVerifier, operator func(http.Handler) http.Handler, bootstrapURL string) {
	if stationAuth == nil || verify == nil || operator == nil {
		panic("claim: Registry.Routes without station authentication, certificate verification or operator middleware")
	}
	router.Post("/v1/devices", func(w http.ResponseWriter, req *http.Request) {
		r.handleRegister(w, req, stationAuth, verify, bootstrapURL)
	})
	router.With(operator).Get("/v1/devices", r.handleList)
	router.With(operator).Get("/v1/devices/{serial}", r.handleGet)
	router.With(operator).Get("/v1/devices/{serial}/detail", r.handleDetail)
}

func (r *Registry) handleRegister(w http.ResponseWriter, req *http.Request, stationAuth StationAuth, verify CertVerifier, bootstrapURL string) {
	ctx := req.Context()
	station, err := stationAuth(req)
	if err == nil && station == "" {
		err = errors.New("station authentication named no station")
	}
	if err != nil {
		// Not audited: without a station there is no one to record, and
		// unauthenticated requests must not fill the log.
		httpapi.WriteError(w, req, err)
		return
	}
	var body RegisterBody
	// refuse audits and answers a refusal found before Register, which
	// audits its own.
	refuse := func(e *httpapi.Error) {
		detail := map[string]string{"reason": e.Msg}
		if body.Model != "" {
			detail["model"] = body.Model
		}
		if body.Reissue {
			detail["reissue"] = "true"
		}
		_ = r.record(ctx, station, body.Serial, audit.ResultRefused, req.RemoteAddr, detail)
		httpapi.WriteError(w, req, e)
	}
	if err := httpapi.DecodeJSON(w, req, &body); err != nil {
		var e *httpapi.Error
		if !errors.As(err, &e) {
			e = &httpapi.Error{Status: http.StatusBadRequest, Msg: "malformed JSON request", Err: err}
		}
		body = RegisterBody{} // what was decoded of a bad body is not worth keeping
		refuse(e)
		return
	}
	const bodyHint = `send {"serial", "model", "certificate": "<PEM birth certificate>", "reissue": false}`
	switch {
	case body.Serial == "":
		refuse(httpapi.Errorf(http.StatusBadRequest, "serial is required").WithHint(bodyHint))
		return
	case validateSerial(body.Serial) != nil:
		refuse(httpapi.Errorf(http.StatusBadRequest, "invalid serial").
			WithHint("use 1 to 64 of A-Z a-z 0-9 - . _, starting with a letter or digit"))
		return
	case body.Model == "":
		refuse(httpapi.Errorf(http.StatusBadRequest, "model is required").WithHint(bodyHint))
		return
	case validateModel(body.Model) != nil:
		refuse(httpapi.Errorf(http.StatusBadRequest, "invalid model").
			WithHint(fmt.Sprintf("use 1 to %d printable characters", maxModelLen)))
		return
	case body.Certificate == "":
		refuse(httpapi.Errorf(http.StatusBadRequest, "certificate is required").WithHint(bodyHint))
		return
	}
	if block, _ := pem.Decode([]byte(body.Certificate)); block == nil || block.Type != "CERTIFICATE" {
		refuse(httpapi.Errorf(http.StatusBadRequest, "certificate is not a PEM certificate").
			WithHint("send the gateway's birth certificate as PEM (-----BEGIN CERTIFICATE-----)"))
		return
	}
	info, err := verify(ctx, []byte(body.Certificate))
	if err != nil {
		var e *httpapi.Error
		if errors.As(err, &e) && e.Status < 500 {
			refuse(e)
			return
		}
		_ = r.record(ctx, station, body.Serial, audit.ResultFailed, req.RemoteAddr, map[string]string{"model": body.Model})
		httpapi.WriteError(w, req, fmt.Errorf("verify birth certificate: %w", err))
		return
	}

	dev, creds, created, err := r.Register(ctx, RegisterRequest{
		Serial: body.Serial, Model: body.Model, Station: station, Cert: info,
		Reissue: body.Reissue, Source: req.RemoteAddr,
	})
	switch {
	case errors.Is(err, ErrInvalidSerial), errors.Is(err, ErrInvalidModel):
		// Checked above already; kept should the rules ever differ.
		httpapi.WriteError(w, req, &httpapi.Error{Status: http.StatusBadRequest, Msg: refusalReason(err), Err: err})
	case errors.Is(err, ErrCertificateMismatch):
		httpapi.WriteError(w, req, httpapi.Errorf(http.StatusUnprocessableEntity,
			"certificate %s is the birth certificate of gateway %s, not %s", info.Serial, info.GatewaySerial, body.Serial))
	case errors.Is(err, ErrOtherStation):
		httpapi.WriteError(w, req, httpapi.Errorf(http.StatusForbidden,
			"gateway %s's birth certificate was issued to another station", body.Serial).
			WithHint("a station registers only the gateways it provisioned"))
	case errors.Is(err, ErrRegisteredWithOtherCert):
		httpapi.WriteError(w, req, httpapi.Errorf(http.StatusConflict,
			"gateway %s is registered already with another birth certificate", body.Serial).
			WithHint(`to replace it, send "reissue": true (gwpki provision --reissue); the old label code stops working`))
	case errors.Is(err, ErrReissueClaimed):
		httpapi.WriteError(w, req, httpapi.Errorf(http.StatusConflict,
			"gateway %s is claimed by an organisation: a station may not reissue its birth certificate", body.Serial).
			WithHint(fmt.Sprintf("the owning organisation unclaims it first (gwpki unclaim %s), or an admin does; then reissue", body.Serial)))
	case errors.Is(err, ErrReissueDecommissioned):
		httpapi.WriteError(w, req, httpapi.Errorf(http.StatusConflict,
			"gateway %s is decommissioned: decommissioned gateways stay revoked", body.Serial).
			WithHint("its birth certificate was revoked (gwpki revoke); provision a replacement under a new serial"))
	case errors.Is(err, ErrModelConflict):
		httpapi.WriteError(w, req, httpapi.Errorf(http.StatusConflict,
			"gateway %s is registered already as another model", body.Serial).
			WithHint("register it with the model it was registered with, or reissue it"))
	case err != nil:
		httpapi.WriteError(w, req, err)
	default:
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		// WriteJSON sends Cache-Control: no-store: the answer holds secrets.
		httpapi.WriteJSON(w, status, Registration{
			Device:       dev,
			ClaimSecret:  base64.RawURLEncoding.EncodeToString(creds.ClaimSecret),
			LabelCode:    creds.LabelCode,
			BootstrapURL: bootstrapURL,
		})
	}
}

func (r *Registry) handleList(w http.ResponseWriter, req *http.Request) {
	q, err := parseDeviceQuery(req.URL.RawQuery)
	if err != nil {
		httpapi.WriteError(w, req, err)
		return
	}
	user, ok := UserFromContext(req.Context())
	if !ok {
		httpapi.WriteError(w, req, errors.New("list devices: no user in the request context"))
		return
	}
	// Operators see their organisation's gateways, admins all of them.
	if user.Role != RoleAdmin {
		if q.Org != "" && q.Org != user.Org {
			httpapi.WriteError(w, req, httpapi.Errorf(http.StatusForbidden, "operators see only their organisation's gateways").
				WithHint("leave out org, or ask an admin"))
			return
		}
		q.Org = user.Org
	}
	page, err := r.Devices(req.Context(), q)
	if errors.Is(err, ErrInvalidDeviceQuery) {
		// parseDeviceQuery refuses all that Devices does; kept as a 400
		// should the two ever differ.
		httpapi.WriteError(w, req, &httpapi.Error{Status: http.StatusBadRequest, Msg: "invalid query", Err: err})
		return
	}
	if err != nil {
		httpapi.WriteError(w, req, err)
		return
	}
	r.addFleetFields(req.Context(), page.Devices)
	httpapi.WriteJSON(w, http.StatusOK, page)
}

func (r *Registry) handleGet(w http.ResponseWriter, req *http.Request) {
	user, ok := UserFromContext(req.Context())
	if !ok {
		httpapi.WriteError(w, req, errors.New("get device: no user in the request context"))
		return
	}
	serial := chi.URLParam(req, "serial")
	rec, err := r.store.device(req.Context(), serial)
	if err == nil && !visible(user, rec) {
		err = ErrDeviceNotFound
	}
	switch {
	case errors.Is(err, ErrDeviceNotFound):
		writeNoSuchDevice(w, req)
	case err != nil:
		httpapi.WriteError(w, req, err)
	default:
		d := rec.device()
		r.addClaimAttempts(req.Context(), &d)
		httpapi.WriteJSON(w, http.StatusOK, d)
	}
}

// Owned returns middleware for routes under /v1/devices/{serial} that
// answers 404, as for an unknown serial, when the gateway is not the
// authenticated user's organisation's (admins pass for every registered
// gateway). It runs after the role middleware.
func (r *Registry) Owned(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		user, ok := UserFromContext(req.Context())
		if !ok {
			httpapi.WriteError(w, req, errors.New("device access: no user in the request context"))
			return
		}
		ok, err := r.Visible(req.Context(), user, chi.URLParam(req, "serial"))
		switch {
		case err != nil:
			httpapi.WriteError(w, req, err)
		case !ok:
			writeNoSuchDevice(w, req)
		default:
			next.ServeHTTP(w, req)
		}
	})
}

// Visible reports whether the gateway serial is registered and user may see
// it: an admin every gateway, anyone else their organisation's.
func (r *Registry) Visible(ctx context.Context, user User, serial string) (bool, error) {
	rec, err := r.store.device(ctx, serial)
	if errors.Is(err, ErrDeviceNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up device %s: %w", serial, err)
	}
	return visible(user, rec), nil
}

// deviceQueryParams are the parameters of GET /v1/devices.
var deviceQueryParams = []string{"after", "limit", "sort", "order", "q", "state", "model", "org"}

const deviceQueryHint = "use after, limit, sort, order, q, state, model and org, each at most once"

// Encode returns q as the query string of GET /v1/devices, without the
// "?"; zero fields are left out.
func (q DeviceQuery) Encode() string {
	v := url.Values{}
	if q.After != "" {
		v.Set("after", q.After)
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Sort != "" {
		v.Set("sort", q.Sort)
	}
	if q.Desc {
		v.Set("order", "desc")
	}
	if q.Search != "" {
		v.Set("q", q.Search)
	}
	if q.State != "" {
		v.Set("state", q.State)
	}
	if q.Model != "" {
		v.Set("model", q.Model)
	}
	if q.Org != "" {
		v.Set("org", q.Org)
	}
	return v.Encode()
}

// parseDeviceQuery reads the query string of GET /v1/devices. Its errors
// are *httpapi.Error (400) with a hint, echoing little of the input.
func parseDeviceQuery(raw string) (DeviceQuery, error) {
	var q DeviceQuery
	v, err := url.ParseQuery(raw)
	if err != nil {
		return q, &httpapi.Error{Status: http.StatusBadRequest, Msg: "malformed query string", Err: err,
			Hint: "percent-encode the parameter values"}
	}
	names := make([]string, 0, len(v))
	for name := range v {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !slices.Contains(deviceQueryParams, name) {
			return q, httpapi.Errorf(http.StatusBadRequest, "unknown query parameter %q", clip(name, 32)).WithHint(deviceQueryHint)
		}
		if len(v[name]) > 1 {
			return q, httpapi.Errorf(http.StatusBadRequest, "query parameter %s given more than once", name).WithHint(deviceQueryHint)
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxDeviceLimit {
			return q, httpapi.Errorf(http.StatusBadRequest, "invalid limit %q", clip(s, 32)).
				WithHint("use a number from 1 to " + strconv.Itoa(MaxDeviceLimit))
		}
		q.Limit = n
	}
	q.After, q.State, q.Model, q.Org = v.Get("after"), v.Get("state"), v.Get("model"), v.Get("org")
	q.Sort, q.Search = v.Get("sort"), v.Get("q")
	if n := afterLimit(q.After); len(q.After) > n {
		return q, httpapi.Errorf(http.StatusBadRequest, "after longer than %d bytes", n).
			WithHint("pass the next of the previous page unchanged")
	}
	for _, f := range []struct{ name, s string }{{"state", q.State}, {"model", q.Model}, {"org", q.Org}, {"q", q.Search}} {
		if len(f.s) > maxFilterLen {
			return q, httpapi.Errorf(http.StatusBadRequest, "%s longer than %d bytes", f.name, maxFilterLen).
				WithHint("serials and models are at most 64 characters")
		}
	}
	if q.State != "" && !validState(q.State) {
		return q, httpapi.Errorf(http.StatusBadRequest, "unknown state %q", clip(q.State, 32)).
			WithHint("use one of: " + strings.Join(deviceStates, ", "))
	}
	if sortIndex(q.Sort) < 0 {
		return q, httpapi.Errorf(http.StatusBadRequest, "unknown sort %q", clip(q.Sort, 32)).
			WithHint("use one of: " + strings.Join(deviceSorts, ", "))
	}
	switch v.Get("order") {
	case "", "asc":
	case "desc":
		q.Desc = true
	default:
		return q, httpapi.Errorf(http.StatusBadRequest, "unknown order %q", clip(v.Get("order"), 32)).
			WithHint("use asc or desc")
	}
	if _, err := decodeDeviceCursor(q.After, sortIndex(q.Sort), q.Desc); err != nil {
		return q, &httpapi.Error{Status: http.StatusBadRequest, Msg: "invalid after", Err: err,
			Hint: "pass the next of the previous page, with the same sort and order"}
	}
	return q, nil
}

// clip cuts s to at most n bytes for an error message, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
