package claim

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/gwpki/gwpki/internal/audit"
	"github.com/gwpki/gwpki/internal/httpapi"
)

const testBootstrapURL = "https://gwpki.example:8443/v1/bootstrap"

// fakeCA stands in for the CA functions gwpki serve wires: station tokens
// are "station:<name>", and certificates are PEM blocks whose bytes name
// what the CA would vouch for.
type fakeCA struct {
	mu    sync.Mutex
	certs map[string]CertInfo // PEM -> info
	// fail makes the verifier fail as the store would.
	fail bool
}

func (f *fakeCA) stationAuth(r *http.Request) (string, error) {
	name, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer station:")
	switch {
	case !ok || name == "":
		return "", httpapi.Errorf(http.StatusUnauthorized, "station token required")
	case name == "disabled":
		return "", httpapi.Errorf(http.StatusForbidden, "station disabled is disabled")
	case name == "broken":
		return "", errors.New("station list unreadable: /secret/path")
	}
	return name, nil
}

func (f *fakeCA) verify(_ context.Context, pemCert []byte) (CertInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return CertInfo{}, errors.New("bolt: database not open at /secret/path")
	}
	info, ok := f.certs[string(pemCert)]
	if !ok {
		return CertInfo{}, httpapi.Errorf(http.StatusUnprocessableEntity, "certificate was not issued by this CA")
	}
	if info.Serial == "revoked" {
		return CertInfo{}, httpapi.Errorf(http.StatusUnprocessableEntity, "certificate is revoked")
	}
	return info, nil
}

// issue makes the n-th birth certificate of serial for station.
func (f *fakeCA) issue(serial, station string, n int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: fmt.Appendf(nil, "%s %s %d", serial, station, n)}))
	f.certs[p] = idevid(serial, station, n)
	return p
}

// regHTTPEnv is a Registry and the real Accounts served over TLS.
type regHTTPEnv struct {
	*regEnv
	http *httpEnv
	ca   *fakeCA
}

func newRegHTTPEnv(t testing.TB) *regHTTPEnv {
	t.Helper()
	env := newRegEnv(t)
	accounts := &testEnv{a: nil, db: env.db, path: env.path, clock: env.clock, logs: env.logs}
	accounts.a = accounts.open(t)
	accounts.mustCreate(t, "olga", "acme", RoleOperator, "olga password")
	accounts.mustCreate(t, "ivy", "acme", RoleInstaller, "ivy password")
	accounts.mustCreate(t, "ada", "maker", RoleAdmin, "ada password")
	ca := &fakeCA{certs: map[string]CertInfo{}}
	r := chi.NewRouter()
	accounts.a.Routes(r)
	env.reg.Routes(r, ca.stationAuth, ca.verify, accounts.a.RequireRole(RoleOperator), testBootstrapURL)
	srv := httptest.NewTLSServer(r)
	t.Cleanup(srv.Close)
	return &regHTTPEnv{regEnv: env, http: &httpEnv{testEnv: accounts, srv: srv}, ca: ca}
}

func (env *regHTTPEnv) post(t testing.TB, station, body string) answer {
	t.Helper()
	req, err := http.NewRequest("POST", env.http.srv.URL+"/v1/devices", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if station != "" {
		req.Header.Set("Authorization", "Bearer station:"+station)
	}
	resp, err := env.http.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b.String()}
}

func registerBody(serial, model, cert string, reissue bool) string {
	b, _ := json.Marshal(RegisterBody{Serial: serial, Model: model, Certificate: cert, Reissue: reissue})
	return string(b)
}

func decodeRegistration(t testing.TB, a answer) Registration {
	t.Helper()
	var reg Registration
	dec := json.NewDecoder(strings.NewReader(a.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&reg); err != nil {
		t.Fatalf("answer %d %s: %v", a.status, a.body, err)
	}
	return reg
}

func TestHTTPRegister(t *testing.T) {
	env := newRegHTTPEnv(t)
	cert := env.ca.issue("GW-000042", "line1", 1)

	first := env.post(t, "line1", registerBody("GW-000042", "PumpCtl 3", cert, false))
	if first.status != http.StatusCreated {
		t.Fatalf("POST /v1/devices = %d %s; want 201", first.status, first.body)
	}
	if cc := first.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q; want no-store on an answer carrying secrets", cc)
	}
	reg := decodeRegistration(t, first)
	want := Registration{
		Device: Device{
			Serial: "GW-000042", Model: "PumpCtl 3", Station: "line1", IDevIDSerial: "1000001",
			IDevIDNotAfter: idevid("", "", 1).NotAfter, RegisteredAt: env.clock.Now(), Generation: 1, State: StateUnclaimed,
		},
		ClaimSecret:  base64.RawURLEncoding.EncodeToString(ClaimSecret(vectorKey, "GW-000042", 1)),
		LabelCode:    codeVectors[0].label,
		BootstrapURL: testBootstrapURL,
	}
	if diff := cmp.Diff(want, reg); diff != "" {
		t.Errorf("registration (-want +got):\n%s", diff)
	}
	if secret, err := base64.RawURLEncoding.DecodeString(reg.ClaimSecret); err != nil || len(secret) != 32 {
		t.Errorf("claim_secret %q: %v; want 32 bytes of unpadded base64url", reg.ClaimSecret, err)
	}

	// The station's retry after a crash: 200, the same answer.
	again := env.post(t, "line1", registerBody("GW-000042", "PumpCtl 3", cert, false))
	if again.status != http.StatusOK || again.body != first.body {
		t.Errorf("repeated POST /v1/devices = %d %s; want 200 with the same body %s", again.status, again.body, first.body)
	}

	// A reissue: a new certificate, the next generation.
	cert2 := env.ca.issue("GW-000042", "line1", 2)
	conflict := env.post(t, "line1", registerBody("GW-000042", "PumpCtl 3", cert2, false))
	if msg, hint := conflict.errorBody(t); conflict.status != http.StatusConflict || !strings.Contains(hint, "reissue") {
		t.Errorf("POST with another certificate = %d %q (hint %q); want 409 hinting at reissue", conflict.status, msg, hint)
	}
	re := env.post(t, "line1", registerBody("GW-000042", "PumpCtl 3", cert2, true))
	if re.status != http.StatusOK {
		t.Fatalf("reissue = %d %s; want 200", re.status, re.body)
	}
	if got := decodeRegistration(t, re); got.Device.Generation != 2 || got.LabelCode != codeVectors[1].label || got.Device.IDevIDSerial != "1000002" {
		t.Errorf("reissue answered %+v; want generation 2 with its label %s", got, codeVectors[1].label)
	}
}

func TestHTTPRegisterRefusals(t *testing.T) {
	env := newRegHTTPEnv(t)
	ok := env.ca.issue("GW-1", "line1", 1)
	other := env.ca.issue("GW-2", "line2", 2)
	if a := env.post(t, "line1", registerBody("GW-1", "m1", ok, false)); a.status != http.StatusCreated {
		t.Fatalf("first registration = %d %s", a.status, a.body)
	}
	revoked := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("revoked")}))
	env.ca.certs[revoked] = CertInfo{Serial: "revoked"}

	tests := []struct {
		name, station, body string
		status              int
		msg                 string // part of the public message
		audited             bool
	}{
		{"no station token", "", registerBody("GW-3", "m1", ok, false), 401, "station token required", false},
		{"disabled station", "disabled", registerBody("GW-3", "m1", ok, false), 403, "disabled", false},
		{"malformed JSON", "line1", `{"serial":`, 400, "malformed JSON", true},
		{"unknown field", "line1", `{"serial":"GW-3","colour":"red"}`, 400, "unknown field", true},
		{"no serial", "line1", registerBody("", "m1", ok, false), 400, "serial is required", true},
		{"invalid serial", "line1", registerBody("GW/3", "m1", ok, false), 400, "invalid serial", true},
		{"no model", "line1", registerBody("GW-3", "", ok, false), 400, "model is required", true},
		{"invalid model", "line1", registerBody("GW-3", "m\x07", ok, false), 400, "invalid model", true},
		{"no certificate", "line1", registerBody("GW-3", "m1", "", false), 400, "certificate is required", true},
		{"not PEM", "line1", registerBody("GW-3", "m1", "MIIB...", false), 400, "not a PEM certificate", true},
		{"a PEM key", "line1", registerBody("GW-3", "m1", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", false), 400, "not a PEM certificate", true},
		{"not issued here", "line1", registerBody("GW-3", "m1", strings.Replace(ok, "CERTIFICATE", "CERTIFICATE", 1)+"\n", false), 422, "not issued by this CA", true},
		{"revoked", "line1", registerBody("GW-3", "m1", revoked, false), 422, "revoked", true},
		{"another gateway's certificate", "line1", registerBody("GW-3", "m1", ok, false), 422, "birth certificate of gateway GW-1, not GW-3", true},
		{"another station's gateway", "line1", registerBody("GW-2", "m1", other, false), 403, "issued to another station", true},
		{"registered as another model", "line1", registerBody("GW-1", "m2", ok, false), 409, "registered already as another model", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(env.entries(t))
			a := env.post(t, tc.station, tc.body)
			msg, _ := a.errorBody(t)
			if a.status != tc.status || !strings.Contains(msg, tc.msg) {
				t.Errorf("POST /v1/devices = %d %q; want %d with %q", a.status, msg, tc.status, tc.msg)
			}
			entries := env.entries(t)
			if got := len(entries) - before; got != map[bool]int{true: 1, false: 0}[tc.audited] {
				t.Fatalf("audit log grew by %d; want audited=%v", got, tc.audited)
			}
			if tc.audited {
				e := entries[len(entries)-1]
				if e.Result != audit.ResultRefused || e.Actor != "station:"+tc.station || e.Detail["reason"] == "" {
					t.Errorf("audit entry %+v; want refused by station:%s with a reason", e, tc.station)
				}
			}
		})
	}

	// Internal failures are 500 without their cause.
	for name, f := range map[string]func() answer{
		"broken station list": func() answer { return env.post(t, "broken", registerBody("GW-3", "m1", ok, false)) },
		"broken CA store": func() answer {
			env.ca.fail = true
			defer func() { env.ca.fail = false }()
			return env.post(t, "line1", registerBody("GW-3", "m1", ok, false))
		},
	} {
		a := f()
		if msg, _ := a.errorBody(t); a.status != 500 || msg != "internal error" || strings.Contains(a.body, "/secret/path") {
			t.Errorf("%s: POST /v1/devices = %d %s; want 500 internal error, no cause", name, a.status, a.body)
		}
	}
	if page, _ := env.reg.Devices(context.Background(), DeviceQuery{}); len(page.Devices) != 1 {
		t.Errorf("the registry holds %d devices after the refusals; want 1", len(page.Devices))
	}
}

func TestHTTPDevices(t *testing.T) {
	env := newRegHTTPEnv(t)
	var labels []string
	for i, serial := range []string{"GW-3", "GW-1", "GW-2"} {
		a := env.post(t, "line1", registerBody(serial, []string{"alpha", "beta", "alpha"}[i], env.ca.issue(serial, "line1", i), false))
		labels = append(labels, decodeRegistration(t, a).LabelCode)
	}
	// Unclaimed gateways are nobody's: admins see them, operators don't.
	admin := env.http.login(t, "ada", "ada password")
	olga := env.http.login(t, "olga", "olga password")
	ivy := env.http.login(t, "ivy", "ivy password")

	a := env.http.do(t, "GET", "/v1/devices", admin, "")
	if a.status != http.StatusOK {
		t.Fatalf("GET /v1/devices = %d %s", a.status, a.body)
	}
	var page DevicePage
	if err := json.Unmarshal([]byte(a.body), &page); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range page.Devices {
		got = append(got, d.Serial+"/"+d.Model+"/"+d.State)
	}
	if diff := cmp.Diff([]string{"GW-1/beta/unclaimed", "GW-2/alpha/unclaimed", "GW-3/alpha/unclaimed"}, got); diff != "" || page.Next != "" {
		t.Errorf("GET /v1/devices: next %q; devices (-want +got):\n%s", page.Next, diff)
	}
	one := env.http.do(t, "GET", "/v1/devices/GW-2", admin, "")
	var dev Device
	if err := json.Unmarshal([]byte(one.body), &dev); one.status != http.StatusOK || err != nil || dev.Serial != "GW-2" || dev.IDevIDSerial != "1000002" {
		t.Errorf("GET /v1/devices/GW-2 = %d %s; want the device", one.status, one.body)
	}
	// The read routes never show credentials.
	for _, body := range []string{a.body, one.body} {
		for _, l := range labels {
			if strings.Contains(body, l) || strings.Contains(body, "claim_secret") || strings.Contains(body, "label_code") {
				t.Errorf("a read answer carries credentials: %s", body)
			}
		}
	}

	for _, tc := range []struct {
		path, token string
		status      int
		want        string // in the body
	}{
		{"/v1/devices?model=alpha&limit=1", admin, 200, `{"devices":[{"serial":"GW-2"`},
		{"/v1/devices?model=alpha&limit=1&after=GW-2", admin, 200, `"serial":"GW-3"`},
		{"/v1/devices?state=unclaimed&after=GW-3", admin, 200, `{"devices":[]}`},
		{"/v1/devices?limit=2", admin, 200, `"next":"GW-2"`},
		{"/v1/devices?limit=0", olga, 400, "invalid limit"},
		{"/v1/devices?limit=1001", olga, 400, "invalid limit"},
		{"/v1/devices?limit=x", olga, 400, "invalid limit"},
		{"/v1/devices?state=lost", olga, 400, "unknown state"},
		{"/v1/devices?serial=GW-1", olga, 400, "unknown query parameter"},
		{"/v1/devices?model=a&model=b", olga, 400, "more than once"},
		{"/v1/devices?model=%zz", olga, 400, "malformed query"},
		{"/v1/devices?model=" + strings.Repeat("m", 257), olga, 400, "longer than"},
		{"/v1/devices/GW-9", olga, 404, "no such device"},
		{"/v1/devices?org=maker", admin, 200, `{"devices":[]}`},
		{"/v1/devices", olga, 200, `{"devices":[]}`},
		{"/v1/devices?org=acme", olga, 200, `{"devices":[]}`},
		{"/v1/devices?org=maker", olga, 403, "operators see only their organisation's gateways"},
		{"/v1/devices/GW-2", olga, 404, "no such device"},
		{"/v1/devices", ivy, 403, "needs role operator"},
		{"/v1/devices/GW-1", ivy, 403, "needs role operator"},
		{"/v1/devices", "", 401, "authentication required"},
		{"/v1/devices/GW-1", "", 401, "authentication required"},
	} {
		a := env.http.do(t, "GET", tc.path, tc.token, "")
		if a.status != tc.status || !strings.Contains(a.body, tc.want) {
			t.Errorf("GET %s = %d %s; want %d with %q", tc.path, a.status, a.body, tc.status, tc.want)
		}
	}
	// Operators cannot register: station routes take station tokens only.
	if a := env.http.do(t, "POST", "/v1/devices", olga, registerBody("GW-4", "m", env.ca.issue("GW-4", "line1", 4), false)); a.status != http.StatusUnauthorized {
		t.Errorf("POST /v1/devices with an operator session = %d %s; want 401", a.status, a.body)
	}
}

func TestDeviceQueryEncodeRoundTrip(t *testing.T) {
	for _, q := range []DeviceQuery{
		{}, {Limit: 5}, {After: "GW-1", Limit: 1000, State: StateUnclaimed, Model: "Pump & Co/3 é"},
		{Sort: SortModel, Desc: true, Search: "pump & co", Org: "acme"}, {Sort: SortSerial, Desc: true, After: "GW-9"},
		{Sort: SortRegistered, After: encodeDeviceCursor(DeviceQuery{}, 4, newFleetEntry(deviceRecord{Serial: "GW-1", RegisteredAt: time.Unix(5, 6)}))},
	} {
		got, err := parseDeviceQuery(q.Encode())
		if err != nil || got != q {
			t.Errorf("parseDeviceQuery(%q) = %+v, %v; want %+v", q.Encode(), got, err, q)
		}
	}
}

func TestRoutesPanicsWithoutAuth(t *testing.T) {
	env := newRegEnv(t)
	ca := &fakeCA{}
	mw := func(h http.Handler) http.Handler { return h }
	for name, f := range map[string]func(){
		"station auth": func() { env.reg.Routes(chi.NewRouter(), nil, ca.verify, mw, "") },
		"verifier":     func() { env.reg.Routes(chi.NewRouter(), ca.stationAuth, nil, mw, "") },
		"operator":     func() { env.reg.Routes(chi.NewRouter(), ca.stationAuth, ca.verify, nil, "") },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Routes without %s did not panic", name)
				}
			}()
			f()
		}()
	}
}

// FuzzRegisterHTTP throws arbitrary bodies at POST /v1/devices from an
// authenticated station: never a panic or a 5xx, every refusal a 4xx JSON
// error, and a success only for a well-formed registration of the one
// certificate the fake CA vouches for.
func FuzzRegisterHTTP(f *testing.F) {
	env := newRegEnv(f)
	ca := &fakeCA{certs: map[string]CertInfo{}}
	cert := ca.issue("GW-1", "line1", 1)
	for _, s := range []string{
		registerBody("GW-1", "m1", cert, false), registerBody("GW-1", "m1", cert, true),
		registerBody("GW-2", "m1", cert, false), registerBody("GW-1", "", cert, false),
		`{}`, `[]`, `null`, `{"serial":1}`, `{"serial":"GW-1"}{}`, `{"reissue":"yes"}`, "\xff",
	} {
		f.Add([]byte(s))
	}
	r := chi.NewRouter()
	env.reg.Routes(r, ca.stationAuth, ca.verify, func(h http.Handler) http.Handler { return h }, testBootstrapURL)
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/v1/devices", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer station:line1")
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		switch {
		case rec.Code == http.StatusOK || rec.Code == http.StatusCreated:
			var b RegisterBody
			if err := json.Unmarshal(body, &b); err != nil || b.Serial != "GW-1" || b.Certificate != cert {
				t.Fatalf("POST %q = %d; want a refusal for anything but GW-1 with its certificate", body, rec.Code)
			}
			var reg Registration
			if err := json.Unmarshal(rec.Body.Bytes(), &reg); err != nil || reg.LabelCode == "" {
				t.Fatalf("POST %q = %d %s; want a registration", body, rec.Code, rec.Body)
			}
		case rec.Code >= 400 && rec.Code < 500:
			var e struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("POST %q = %d %q; want a JSON error", body, rec.Code, rec.Body)
			}
		default:
			t.Fatalf("POST %q = %d %s; want 200, 201 or 4xx", body, rec.Code, rec.Body)
		}
	})
}

// FuzzDeviceQuery: parseDeviceQuery never panics, refuses with a 400, and
// what it accepts encodes back to an equal query.
func FuzzDeviceQuery(f *testing.F) {
	for _, s := range []string{"", "limit=5", "after=GW-1&model=a%20b&state=unclaimed", "limit=0", "x=1", "model=a&model=b", "%zz", "state=lost",
		"sort=model&order=desc&q=Pump", "sort=org&after=~e30", "order=sideways", "sort=registered&after=GW-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseDeviceQuery(raw)
		if err != nil {
			var e *httpapi.Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
				t.Fatalf("parseDeviceQuery(%q) = %v; want a 400", raw, err)
			}
			return
		}
		if err := q.validate(); err != nil {
			t.Fatalf("parseDeviceQuery(%q) = %+v, which Devices refuses: %v", raw, q, err)
		}
		if q2, err := parseDeviceQuery(q.Encode()); err != nil || q2 != q {
			t.Fatalf("parseDeviceQuery(%q) = %+v; encoded %q parses to %+v, %v", raw, q, q.Encode(), q2, err)
		}
	})
}
