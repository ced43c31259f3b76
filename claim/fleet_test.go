package claim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gwpki/gwpki/internal/audit"
)

// setOwner claims (org != "") or unclaims serial directly in the store, as
// a claim or unclaim would, through the registry's indexed store.
func setOwner(t testing.TB, reg *Registry, serial, org string) {
	t.Helper()
	if err := trySetOwner(reg, serial, org); err != nil {
		t.Fatalf("set owner of %s: %v", serial, err)
	}
}

// trySetOwner is setOwner returning ErrDeviceNotFound for an unknown serial.
func trySetOwner(reg *Registry, serial, org string) error {
	_, err := reg.store.update(context.Background(), serial, func(old *deviceRecord) (deviceRecord, bool, error) {
		if old == nil {
			return deviceRecord{}, false, ErrDeviceNotFound
		}
		rec := *old
		rec.Org, rec.State = org, StateUnclaimed
		if org != "" {
			rec.State = StateClaimed
		}
		return rec, true, nil
	})
	return err
}

// fleetFixture registers 60 gateways of three models, a minute apart, and
// claims a third for acme and a third for globex.
func fleetFixture(t testing.TB, env *regEnv) []Device {
	t.Helper()
	models := []string{"Pump-Alpha", "meter-beta", "Pump-Gamma", "gateway-X"}
	for i := range 60 {
		// Registration order is not serial order.
		serial := fmt.Sprintf("GW-%03d", (i*37)%60)
		env.mustRegister(t, regReq(serial, models[(i*7)%len(models)], "line1", i))
		env.clock.Advance(time.Minute)
	}
	var all []Device
	for i := range 60 {
		serial := fmt.Sprintf("GW-%03d", i)
		switch i % 3 {
		case 0:
			setOwner(t, env.reg, serial, "acme")
		case 1:
			setOwner(t, env.reg, serial, "globex")
		}
		d, err := env.reg.Device(context.Background(), serial)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, d)
	}
	return all
}

// wantOrder sorts devs as the registry should for sort and desc.
func wantOrder(devs []Device, sort string, desc bool) []string {
	key := func(d Device) string {
		switch sort {
		case SortModel:
			return d.Model
		case SortState:
			return d.State
		case SortOrg:
			return d.Org
		case SortRegistered:
			return d.RegisteredAt.UTC().Format("2006-01-02T15:04:05.000000000")
		}
		return ""
	}
	s := slices.Clone(devs)
	slices.SortFunc(s, func(a, b Device) int {
		c := strings.Compare(key(a), key(b))
		if c == 0 {
			c = strings.Compare(a.Serial, b.Serial)
		}
		if desc {
			c = -c
		}
		return c
	})
	out := make([]string, len(s))
	for i, d := range s {
		out[i] = d.Serial
	}
	return out
}

// walk follows next from the first page of query (without after) to the
// last and returns the serials in order, failing on a duplicate.
func walk(t *testing.T, env *regHTTPEnv, token, query string) []string {
	t.Helper()
	var got []string
	seen := map[string]bool{}
	after := ""
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatalf("GET /v1/devices?%s: more than 100 pages", query)
		}
		q := query
		if after != "" {
			q += "&after=" + url.QueryEscape(after)
		}
		a := env.http.do(t, "GET", "/v1/devices?"+q, token, "")
		if a.status != http.StatusOK {
			t.Fatalf("GET /v1/devices?%s = %d %s; want 200", q, a.status, a.body)
		}
		var page DevicePage
		if err := json.Unmarshal([]byte(a.body), &page); err != nil {
			t.Fatal(err)
		}
		for _, d := range page.Devices {
			if seen[d.Serial] {
				t.Fatalf("GET /v1/devices?%s: %s shown twice", q, d.Serial)
			}
			seen[d.Serial] = true
			got = append(got, d.Serial)
		}
		if page.Next == "" {
			return got
		}
		if len(page.Devices) == 0 {
			t.Fatalf("GET /v1/devices?%s: an empty page with next %q", q, page.Next)
		}
		after = page.Next
	}
}

func TestHTTPFleetSortFilterPaging(t *testing.T) {
	env := newRegHTTPEnv(t)
	all := fleetFixture(t, env.regEnv)
	env.http.mustCreate(t, "gus", "globex", RoleOperator, "gus password")
	admin := env.http.login(t, "ada", "ada password")
	olga := env.http.login(t, "olga", "olga password")
	gus := env.http.login(t, "gus", "gus password")

	keep := func(f func(Device) bool) []Device {
		var out []Device
		for _, d := range all {
			if f(d) {
				out = append(out, d)
			}
		}
		return out
	}
	acme := keep(func(d Device) bool { return d.Org == "acme" })
	globex := keep(func(d Device) bool { return d.Org == "globex" })
	pump := func(d Device) bool { return strings.Contains(strings.ToLower(d.Model), "pump") }

	for _, tc := range []struct {
		name, token, query string
		want               []string
	}{
		{"default", admin, "limit=7", wantOrder(all, SortSerial, false)},
		{"serial desc", admin, "limit=7&order=desc", wantOrder(all, SortSerial, true)},
		{"model", admin, "limit=7&sort=model", wantOrder(all, SortModel, false)},
		{"model desc", admin, "limit=7&sort=model&order=desc", wantOrder(all, SortModel, true)},
		{"state", admin, "limit=9&sort=state", wantOrder(all, SortState, false)},
		{"org desc", admin, "limit=8&sort=org&order=desc", wantOrder(all, SortOrg, true)},
		{"registered", admin, "limit=11&sort=registered", wantOrder(all, SortRegistered, false)},
		{"registered desc", admin, "limit=11&sort=registered&order=desc", wantOrder(all, SortRegistered, true)},
		{"q model, any case", admin, "limit=5&sort=model&q=PUMP", wantOrder(keep(pump), SortModel, false)},
		{"q serial", admin, "limit=2&q=gw-01", wantOrder(keep(func(d Device) bool { return strings.HasPrefix(d.Serial, "GW-01") }), SortSerial, false)},
		{"q and state", admin, "limit=4&q=pump&state=unclaimed&order=desc",
			wantOrder(keep(func(d Device) bool { return pump(d) && d.State == StateUnclaimed }), SortSerial, true)},
		{"q matching nothing", admin, "q=nothing", nil},
		{"operator: own organisation only", olga, "limit=6&sort=model&order=desc", wantOrder(acme, SortModel, true)},
		{"operator: registered", olga, "limit=6&sort=registered", wantOrder(acme, SortRegistered, false)},
		{"other operator", gus, "limit=6&sort=state&q=pump", wantOrder(keep(func(d Device) bool { return d.Org == "globex" && pump(d) }), SortState, false)},
		{"admin filters by org", admin, "limit=6&org=globex&sort=model", wantOrder(globex, SortModel, false)},
		{"one page", admin, "limit=1000&sort=org", wantOrder(all, SortOrg, false)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := walk(t, env, tc.token, tc.query)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("GET /v1/devices?%s (-want +got):\n%s", tc.query, diff)
			}
		})
	}

	// A plain serial still works as after, sorted by serial, either way.
	var page DevicePage
	a := env.http.do(t, "GET", "/v1/devices?after=GW-0105&limit=2&order=desc", admin, "")
	if err := json.Unmarshal([]byte(a.body), &page); err != nil || len(page.Devices) != 2 ||
		page.Devices[0].Serial != "GW-010" || page.Devices[1].Serial != "GW-009" || page.Next != "GW-009" {
		t.Errorf("GET /v1/devices?after=GW-0105&limit=2&order=desc = %d %s; want GW-010, GW-009, next GW-009", a.status, a.body)
	}

	// Cursors survive writes: a device claimed between two pages moves
	// without a gap or a repeat among the others.
	a = env.http.do(t, "GET", "/v1/devices?sort=org&limit=30", admin, "")
	if err := json.Unmarshal([]byte(a.body), &page); err != nil || page.Next == "" || !strings.HasPrefix(page.Next, "~") {
		t.Fatalf("GET /v1/devices?sort=org&limit=30 = %d %s; want a page with an opaque next", a.status, a.body)
	}
	first := page.Devices
	setOwner(t, env.reg, first[0].Serial, "") // the first leaves the page
	a = env.http.do(t, "GET", "/v1/devices?sort=org&limit=100&after="+url.QueryEscape(page.Next), admin, "")
	if err := json.Unmarshal([]byte(a.body), &page); err != nil {
		t.Fatal(err)
	}
	if got := len(first) + len(page.Devices); got != 60 {
		t.Errorf("paging by org around a write shows %d devices; want 60", got)
	}

	for _, tc := range []struct {
		query  string
		token  string
		status int
		want   string
	}{
		{"sort=colour", admin, 400, "unknown sort"},
		{"order=up", admin, 400, "unknown order"},
		{"sort=model&after=GW-001", admin, 400, "invalid after"},
		{"sort=org&after=" + url.QueryEscape(mustNext(t, env, admin, "sort=model&limit=1")), admin, 400, "invalid after"},
		{"sort=model&order=desc&after=" + url.QueryEscape(mustNext(t, env, admin, "sort=model&limit=1")), admin, 400, "invalid after"},
		{"sort=model&after=~%21%21", admin, 400, "invalid after"},
		{"q=" + strings.Repeat("x", 257), admin, 400, "q longer"},
		{"q=a&q=b", admin, 400, "more than once"},
		{"org=globex&sort=model", olga, 403, "only their organisation"},
	} {
		a := env.http.do(t, "GET", "/v1/devices?"+tc.query, tc.token, "")
		if a.status != tc.status || !strings.Contains(a.body, tc.want) {
			t.Errorf("GET /v1/devices?%s = %d %s; want %d %q", clip(tc.query, 60), a.status, a.body, tc.status, tc.want)
		}
	}
}

// mustNext returns the next of the first page of query.
func mustNext(t *testing.T, env *regHTTPEnv, token, query string) string {
	t.Helper()
	a := env.http.do(t, "GET", "/v1/devices?"+query, token, "")
	var page DevicePage
	if err := json.Unmarshal([]byte(a.body), &page); err != nil || page.Next == "" {
		t.Fatalf("GET /v1/devices?%s = %d %s; want a page with a next", query, a.status, a.body)
	}
	return page.Next
}

// fakeFleet records which gateways the fleet sources were asked about.
type fakeFleet struct {
	mu    sync.Mutex
	asked map[string]int
	calls atomic.Int64
}

func (f *fakeFleet) sources() FleetSources {
	note := func(gw string) {
		f.calls.Add(1)
		f.mu.Lock()
		f.asked[gw]++
		f.mu.Unlock()
	}
	seen := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	return FleetSources{
		Online: func(gw string) bool { note(gw); return gw == "GW-003" },
		LastSeen: func(_ context.Context, gw string) (time.Time, error) {
			note(gw)
			if gw == "GW-003" {
				return seen, nil
			}
			return time.Time{}, nil
		},
		CertNotAfter: func(_ context.Context, gw string) (time.Time, error) {
			note(gw)
			if gw == "GW-003" {
				return seen.Add(7 * 24 * time.Hour), nil
			}
			return time.Time{}, nil
		},
		Certificates: func(_ context.Context, gw string) ([]DeviceCertificate, error) {
			return []DeviceCertificate{{Serial: "1f", Kind: CertKindOperational, NotAfter: seen, Status: CertStatusGood}}, nil
		},
		Telemetry: func(_ context.Context, gw, metric string, n int) (TelemetrySummary, error) {
			if metric != "pressure_bar" || n != DetailSeriesLen {
				return TelemetrySummary{}, fmt.Errorf("telemetry(%s, %s, %d)", gw, metric, n)
			}
			return TelemetrySummary{Series: []MetricPoint{{Time: seen, Value: 4.5}}}, nil
		},
	}
}

func TestHTTPFleetFieldsAndDetail(t *testing.T) {
	env := newRegHTTPEnv(t)
	fleetFixture(t, env.regEnv)
	fake := &fakeFleet{asked: map[string]int{}}
	env.reg.SetFleetSources(fake.sources())
	olga := env.http.login(t, "olga", "olga password")

	a := env.http.do(t, "GET", "/v1/devices?limit=3", olga, "")
	var raw struct {
		Devices []map[string]any `json:"devices"`
	}
	if err := json.Unmarshal([]byte(a.body), &raw); err != nil || len(raw.Devices) != 3 {
		t.Fatalf("GET /v1/devices?limit=3 = %d %s", a.status, a.body)
	}
	// GW-000, GW-003, GW-006: only GW-003 is online, seen and certified.
	if d := raw.Devices[1]; d["serial"] != "GW-003" || d["online"] != true || d["last_seen"] != "2030-05-06T07:08:09Z" ||
		d["cert_not_after"] != "2030-05-13T07:08:09Z" {
		t.Errorf("GET /v1/devices: GW-003 = %v; want online, last_seen and cert_not_after", d)
	}
	if d := raw.Devices[0]; d["online"] != nil || d["last_seen"] != nil || d["cert_not_after"] != nil {
		t.Errorf("GET /v1/devices: GW-000 = %v; want no fleet fields", d)
	}
	if n := fake.calls.Load(); n != 9 {
		t.Errorf("the fleet sources were called %d times for a page of 3; want 9 (3 per device)", n)
	}

	// History: claims that worked, unclaims and unlocks, newest first, of
	// this gateway and the operator's organisation.
	ctx := context.Background()
	for _, e := range []audit.Entry{
		{Actor: "user:ivy", Org: "acme", Action: "claim", Target: "GW-003", Result: audit.ResultRefused},
		{Actor: "user:ivy", Org: "acme", Action: "claim", Target: "GW-003", Result: audit.ResultOK},
		{Actor: "user:olga", Org: "acme", Action: "unclaim", Target: "GW-003", Result: audit.ResultOK},
		{Actor: "user:eve", Org: "globex", Action: "claim", Target: "GW-003", Result: audit.ResultOK},
		{Actor: "user:olga", Org: "acme", Action: "unlock", Target: "GW-003", Result: audit.ResultOK},
		{Actor: "user:ivy", Org: "acme", Action: "claim", Target: "GW-006", Result: audit.ResultOK},
		{Actor: "user:olga", Org: "acme", Action: "login", Target: "olga", Result: audit.ResultOK},
	} {
		if _, err := env.audit.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	a = env.http.do(t, "GET", "/v1/devices/GW-003/detail?metric=pressure_bar", olga, "")
	var d DeviceDetail
	if err := json.Unmarshal([]byte(a.body), &d); a.status != http.StatusOK || err != nil {
		t.Fatalf("GET /v1/devices/GW-003/detail = %d %s", a.status, a.body)
	}
	var hist []string
	for _, e := range d.History {
		hist = append(hist, e.Action+"/"+e.Org+"/"+e.Result)
	}
	if diff := cmp.Diff([]string{"unlock/acme/ok", "unclaim/acme/ok", "claim/acme/ok"}, hist); diff != "" {
		t.Errorf("detail history (-want +got):\n%s", diff)
	}
	// Behind 30,000 newer entries of other gateways (more than the old
	// bound of 20,000) and 2,500 refused claims of GW-003 itself (more than
	// two pages of it), the same history: the audit log's index by target
	// finds it, and the history reads on until it has enough.
	for i := 0; i < 32500; i += 5000 {
		es := make([]audit.Entry, min(5000, 32500-i))
		for j := range es {
			es[j] = audit.Entry{Actor: "system", Org: "acme", Action: "claim", Target: fmt.Sprintf("GW-X%05d", i+j), Result: audit.ResultOK}
			if (i+j)%13 == 0 {
				es[j] = audit.Entry{Actor: "user:ivy", Org: "acme", Action: "claim", Target: "GW-003", Result: audit.ResultRefused}
			}
		}
		if _, err := env.audit.RecordAll(ctx, es); err != nil {
			t.Fatal(err)
		}
	}
	a = env.http.do(t, "GET", "/v1/devices/GW-003/detail?metric=pressure_bar", olga, "")
	d = DeviceDetail{}
	if err := json.Unmarshal([]byte(a.body), &d); a.status != http.StatusOK || err != nil {
		t.Fatalf("GET /v1/devices/GW-003/detail after 32,500 entries = %d %s", a.status, a.body)
	}
	hist = nil
	for _, e := range d.History {
		hist = append(hist, e.Action+"/"+e.Org+"/"+e.Result)
	}
	if diff := cmp.Diff([]string{"unlock/acme/ok", "unclaim/acme/ok", "claim/acme/ok"}, hist); diff != "" {
		t.Errorf("detail history behind 32,500 newer entries (-want +got):\n%s", diff)
	}
	if !d.Device.Online || d.Device.Serial != "GW-003" || len(d.Certificates) != 1 || d.Certificates[0].Serial != "1f" ||
		d.Telemetry.Metric != "pressure_bar" || len(d.Telemetry.Series) != 1 || d.Telemetry.Series[0].Value != 4.5 {
		t.Errorf("GET /v1/devices/GW-003/detail = %s; want the device online, its certificate and series", a.body)
	}
	// Without sources, the detail still answers, with empty lists.
	env.reg.SetFleetSources(FleetSources{})
	a = env.http.do(t, "GET", "/v1/devices/GW-000/detail", olga, "")
	if a.status != http.StatusOK || !strings.Contains(a.body, `"certificates":[]`) || !strings.Contains(a.body, `"series":[]`) ||
		!strings.Contains(a.body, `"metric":"flow_m3h"`) {
		t.Errorf("GET /v1/devices/GW-000/detail without sources = %d %s", a.status, a.body)
	}
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/v1/devices/GW-001/detail", 404}, // globex's
		{"/v1/devices/GW-002/detail", 404}, // nobody's
		{"/v1/devices/NOPE/detail", 404},
		{"/v1/devices/GW-000/detail?metric=a..b", 400},
		{"/v1/devices/GW-000/detail?metric=" + url.QueryEscape("a b"), 400},
		{"/v1/devices/GW-000/detail?colour=red", 400},
	} {
		if a := env.http.do(t, "GET", tc.path, olga, ""); a.status != tc.status {
			t.Errorf("GET %s = %d %s; want %d", tc.path, a.status, a.body, tc.status)
		}
	}
	ivy := env.http.login(t, "ivy", "ivy password")
	if a := env.http.do(t, "GET", "/v1/devices/GW-000/detail", ivy, ""); a.status != http.StatusForbidden {
		t.Errorf("GET /v1/devices/GW-000/detail as an installer = %d; want 403", a.status)
	}
}

// TestFleetIndexFollowsStore checks the snapshot against the store after
// registrations, claims, a reissue and a restart.
func TestFleetIndexFollowsStore(t *testing.T) {
	env := newRegEnv(t)
	fleetFixture(t, env)
	env.mustRegister(t, RegisterRequest{Serial: "GW-005", Model: "Pump-Zeta", Station: "line1", Cert: idevid("GW-005", "line1", 99), Reissue: true})
	check := func(when string) {
		t.Helper()
		recs, _, err := env.reg.store.deviceStore.devices(context.Background(), DeviceQuery{Limit: MaxDeviceLimit}, MaxDeviceLimit)
		if err != nil {
			t.Fatal(err)
		}
		var want []Device
		for _, r := range recs {
			want = append(want, r.device())
		}
		page, err := env.reg.Devices(context.Background(), DeviceQuery{Limit: MaxDeviceLimit})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, page.Devices); diff != "" {
			t.Errorf("%s: the index differs from the store (-store +index):\n%s", when, diff)
		}
	}
	check("after many writes") // merged in one pass
	for i := range 5 {
		setOwner(t, env.reg, fmt.Sprintf("GW-%03d", 10*i), "initech")
		setOwner(t, env.reg, fmt.Sprintf("GW-%03d", 10*i), "umbrella") // replaced before a merge
	}
	setOwner(t, env.reg, "GW-001", "")
	check("after a few writes") // merged one by one
	env.reopen(t)
	check("after a restart")
}

// BenchmarkFleetPage measures the first page (limit 50) of the fleet view
// over 100,000 registered gateways, registered through the Registry with
// the test's stand-in for the CA's certificate check: Registry.Devices
// alone, and GET /v1/devices over HTTPS with the fleet columns filled by
// stand-in sources (the server's are a map lookup each and one read of the
// CA's per-gateway index).
func BenchmarkFleetPage(b *testing.B) {
	henv := newRegHTTPEnv(b)
	env := henv.regEnv
	const n = 100_000
	models := []string{"PumpCtl-200", "PumpCtl-300", "Meter-10", "BuildingGW-1", "BuildingGW-2", "FlowMeter-9"}
	ctx := context.Background()
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				serial := fmt.Sprintf("GW-%06d", (i*7919)%n)
				if _, _, _, err := env.reg.Register(ctx, regReq(serial, models[i%len(models)], "line1", i)); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	start := time.Now()
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	b.Logf("registered %d gateways in %v", n, time.Since(start).Round(time.Millisecond))
	// Every tenth is acme's, so an operator's page filters too.
	for i := 0; i < n; i += 10 {
		setOwner(b, env.reg, fmt.Sprintf("GW-%06d", i), "acme")
	}
	// The first page after the bulk load merges it into the sorted orders
	// (once; a restart builds them from the store instead).
	start = time.Now()
	if _, err := env.reg.Devices(ctx, DeviceQuery{Limit: 50}); err != nil {
		b.Fatal(err)
	}
	b.Logf("first page after the bulk load of %d writes: %v", n+n/10, time.Since(start).Round(time.Microsecond))
	b.ResetTimer()

	for _, bc := range []struct {
		name string
		q    DeviceQuery
	}{
		{"serial", DeviceQuery{Limit: 50}},
		{"model_desc", DeviceQuery{Limit: 50, Sort: SortModel, Desc: true}},
		{"registered", DeviceQuery{Limit: 50, Sort: SortRegistered}},
		{"q", DeviceQuery{Limit: 50, Search: "gw-0123"}},
		{"q_model_sorted", DeviceQuery{Limit: 50, Sort: SortModel, Search: "meter"}},
		{"q_none", DeviceQuery{Limit: 50, Search: "nothing-matches"}},
		{"operator_org_model", DeviceQuery{Limit: 50, Sort: SortModel, Org: "acme"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				page, err := env.reg.Devices(ctx, bc.q)
				if err != nil {
					b.Fatal(err)
				}
				if bc.name != "q_none" && len(page.Devices) == 0 {
					b.Fatalf("Devices(%+v): empty page", bc.q)
				}
			}
		})
	}
	henv.http.mustCreate(b, "owen", "acme", RoleOperator, "owen password")
	admin := henv.http.login(b, "ada", "ada password")
	owen := henv.http.login(b, "owen", "owen password")
	seen := time.Now()
	env.reg.SetFleetSources(FleetSources{
		Online:       func(gw string) bool { return len(gw)%2 == 0 },
		LastSeen:     func(context.Context, string) (time.Time, error) { return seen, nil },
		CertNotAfter: func(context.Context, string) (time.Time, error) { return seen, nil },
	})
	for _, bc := range []struct{ name, token, query string }{
		{"http_serial", admin, "limit=50"},
		{"http_model_desc", admin, "limit=50&sort=model&order=desc"},
		{"http_q", admin, "limit=50&q=gw-0123"},
		{"http_q_none", admin, "limit=50&q=nothing-matches"},
		{"http_operator_org_desc", owen, "limit=50&sort=org&order=desc&q=pump"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if a := henv.http.do(b, "GET", "/v1/devices?"+bc.query, bc.token, ""); a.status != http.StatusOK {
					b.Fatalf("GET /v1/devices?%s = %d %s", bc.query, a.status, a.body)
				}
			}
		})
	}
	// After a write, the next page merges it into the sorted orders.
	b.Run("after_write", func(b *testing.B) {
		i := 0
		for b.Loop() {
			setOwner(b, env.reg, fmt.Sprintf("GW-%06d", 1+i%1000*10), "globex")
			i++
			if _, err := env.reg.Devices(ctx, DeviceQuery{Limit: 50, Sort: SortModel}); err != nil {
				b.Fatal(err)
			}
		}
	})
	// A server start builds the index from the store.
	start = time.Now()
	if _, err := NewRegistry(env.db, vectorKey, env.audit); err != nil {
		b.Fatal(err)
	}
	b.Logf("index of %d devices built from the store in %v", n, time.Since(start).Round(time.Millisecond))
}

// FuzzDeviceCursor feeds decodeDeviceCursor what a client could send as
// after: no panic, and a cursor it accepts encodes back to itself.
func FuzzDeviceCursor(f *testing.F) {
	rec := deviceRecord{Serial: "GW-000042", Model: "Pump \"3\" ✓", State: StateClaimed, Org: "acme",
		RegisteredAt: time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)}
	for sort := range deviceSorts {
		for _, desc := range []bool{false, true} {
			f.Add(encodeDeviceCursor(DeviceQuery{Desc: desc}, sort, newFleetEntry(rec)), sort, desc)
		}
	}
	f.Add("GW-1", 0, false)
	f.Add("~", 1, false)
	f.Add("~e30", 4, true)
	f.Add("~eyJzIjoicmVnaXN0ZXJlZCIsImsiOiJ4IiwibiI6IkEifQ", 4, false)
	f.Fuzz(func(t *testing.T, after string, sort int, desc bool) {
		if sort < 0 || sort >= len(deviceSorts) {
			return
		}
		pos, err := decodeDeviceCursor(after, sort, desc)
		if err != nil || pos == nil || sort == 0 {
			return
		}
		again := encodeDeviceCursor(DeviceQuery{Desc: desc}, sort, pos)
		pos2, err := decodeDeviceCursor(again, sort, desc)
		if err != nil || compareFleet(sort, pos, pos2) != 0 {
			t.Errorf("cursor %q decodes to %+v; encoded again %q, which decodes to %+v, %v", after, pos.rec, again, pos2, err)
		}
	})
}

// TestFleetIndexConcurrent races registrations, claims and pages, then
// compares the index with the store (run with -race).
func TestFleetIndexConcurrent(t *testing.T) {
	env := newRegEnv(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				serial := fmt.Sprintf("GW-%d-%03d", w, i)
				if _, _, _, err := env.reg.Register(ctx, regReq(serial, []string{"a", "b", "c"}[i%3], "line1", w*1000+i)); err != nil {
					t.Error(err)
					return
				}
				if i%2 == 0 {
					// Perhaps not registered yet.
					if err := trySetOwner(env.reg, fmt.Sprintf("GW-%d-%03d", (w+1)%8, i/2), "acme"); err != nil && !errors.Is(err, ErrDeviceNotFound) {
						t.Error(err)
					}
				}
			}
		}()
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				q := DeviceQuery{Limit: 7, Sort: deviceSorts[i%len(deviceSorts)], Desc: i%2 == 0}
				if _, err := env.reg.Devices(ctx, q); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	recs, _, err := env.reg.store.deviceStore.devices(ctx, DeviceQuery{Limit: MaxDeviceLimit}, MaxDeviceLimit)
	if err != nil {
		t.Fatal(err)
	}
	for _, sort := range deviceSorts {
		page, err := env.reg.Devices(ctx, DeviceQuery{Limit: MaxDeviceLimit, Sort: sort})
		if err != nil {
			t.Fatal(err)
		}
		want := make([]Device, len(recs))
		for i, r := range recs {
			want[i] = r.device()
		}
		slices.SortFunc(want, func(a, b Device) int {
			return compareFleet(sortIndex(sort), newFleetEntry(deviceRecord{Serial: a.Serial, Model: a.Model, State: a.State, Org: a.Org, RegisteredAt: a.RegisteredAt}),
				newFleetEntry(deviceRecord{Serial: b.Serial, Model: b.Model, State: b.State, Org: b.Org, RegisteredAt: b.RegisteredAt}))
		})
		if diff := cmp.Diff(want, page.Devices); diff != "" {
			t.Errorf("sorted by %s, the index differs from the store (-store +index):\n%s", sort, diff)
		}
	}
}
