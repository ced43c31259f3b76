package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/gateway"
	"github.com/gwpki/gwpki/provisioning"
	"github.com/gwpki/gwpki/telemetry"
)

// TestFleetView reads the fleet columns and a gateway's detail page from
// the real server: a gateway online with telemetry next to one that never
// bootstrapped, its certificates before and after an unclaim, its claim
// history, and another organisation's operator told there is no such
// gateway.
func TestFleetView(t *testing.T) {
	ts := startServer(t, nil)
	out := provisionGateways(t, ts, "GW-F1", "GW-F2")
	cert, url := bootstrapGateway(t, ts, out, "GW-F1")
	c, err := ts.mqttClient(t, url, "GW-F1", cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 70
	for i := range n {
		// flow_m3h one object down, as some payloads have it.
		msg := fmt.Sprintf(`{"seq":%d,"pressure_bar":%d.5,"pump":{"flow_m3h":%d}}`, i, i, 100+i)
		if tok := c.Publish("gw/GW-F1/telemetry", 1, false, msg); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	admin := ts.login(t)

	var page claim.DevicePage
	ts.apiGetJSON(t, admin, "/v1/devices?q=gw-f&sort=registered", &page)
	if len(page.Devices) != 2 {
		t.Fatalf("GET /v1/devices?q=gw-f: %d devices; want 2", len(page.Devices))
	}
	byName := map[string]claim.Device{}
	for _, d := range page.Devices {
		byName[d.Serial] = d
	}
	f1, f2 := byName["GW-F1"], byName["GW-F2"]
	if !f1.Online || f1.LastSeen.IsZero() || time.Since(f1.LastSeen) > time.Minute || time.Until(f1.CertNotAfter) < 24*time.Hour {
		t.Errorf("GW-F1 = online %v, last seen %v, certificate until %v; want online, seen just now, a certificate for days",
			f1.Online, f1.LastSeen, f1.CertNotAfter)
	}
	if f2.Online || !f2.LastSeen.IsZero() || !f2.CertNotAfter.IsZero() {
		t.Errorf("GW-F2 = online %v, last seen %v, certificate until %v; want none of them", f2.Online, f2.LastSeen, f2.CertNotAfter)
	}

	var d claim.DeviceDetail
	ts.apiGetJSON(t, admin, "/v1/devices/GW-F1/detail", &d)
	if len(d.Certificates) != 2 || d.Certificates[0].Kind != claim.CertKindOperational || d.Certificates[1].Kind != claim.CertKindBirth {
		t.Fatalf("GW-F1's certificates = %+v; want the operational one, then the birth certificate", d.Certificates)
	}
	for _, c := range d.Certificates {
		if c.Status != claim.CertStatusGood || c.NotBefore.IsZero() || !c.NotAfter.After(c.NotBefore) || c.Serial == "" {
			t.Errorf("certificate %+v; want good, with its validity", c)
		}
	}
	if !d.Certificates[0].NotAfter.Equal(f1.CertNotAfter) {
		t.Errorf("cert_not_after %v; want the operational certificate's %v", f1.CertNotAfter, d.Certificates[0].NotAfter)
	}
	series := func(d claim.DeviceDetail) []float64 {
		var v []float64
		for _, p := range d.Telemetry.Series {
			v = append(v, p.Value)
		}
		return v
	}
	if got := series(d); len(got) != claim.DetailSeriesLen || got[0] != 100+n-60 || got[59] != 100+n-1 || d.Telemetry.Metric != "flow_m3h" {
		t.Errorf("flow_m3h series = %v; want the last 60 values, %d to %d", got, 100+n-60, 100+n-1)
	}
	var latest struct{ Seq int }
	if d.Telemetry.Latest == nil || json.Unmarshal(d.Telemetry.Latest.Payload, &latest) != nil || latest.Seq != n-1 {
		t.Errorf("latest telemetry = %+v; want seq %d", d.Telemetry.Latest, n-1)
	}
	d = claim.DeviceDetail{} // a decode keeps the fields an answer leaves out
	ts.apiGetJSON(t, admin, "/v1/devices/GW-F1/detail?metric=pressure_bar", &d)
	if got := series(d); len(got) != 60 || got[59] != n-1+0.5 {
		t.Errorf("pressure_bar series = %v; want the last 60, ending %v", got, n-1+0.5)
	}
	d = claim.DeviceDetail{} // a decode keeps the fields an answer leaves out
	ts.apiGetJSON(t, admin, "/v1/devices/GW-F2/detail", &d)
	if len(d.Certificates) != 1 || d.Telemetry.Latest != nil || len(d.Telemetry.Series) != 0 || d.Device.Online {
		t.Errorf("GW-F2's detail = %+v; want its birth certificate only, no telemetry", d)
	}

	// Claim, then unclaim: the history shows both, the operational
	// certificate is revoked.
	bundle, err := gateway.LoadBundle(filepath.Join(out, "GW-F1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{
		`{"username":"ina","org":"acme","role":"installer","password":"ina password"}`,
		`{"username":"olga","org":"acme","role":"operator","password":"olga password"}`,
		`{"username":"oscar","org":"globex","role":"operator","password":"oscar password"}`,
	} {
		if code, body := ts.apiPost(t, admin, "/v1/users", u); code != 201 {
			t.Fatalf("create user = %d %s", code, body)
		}
	}
	ina := ts.loginAs(t, "ina", "ina password")
	if code, body := ts.apiPost(t, ina, "/v1/claims", `{"serial":"GW-F1","code":"0000-0000-0"}`); code == 200 {
		t.Fatalf("claim with a wrong code = %d %s", code, body)
	}
	if code, body := ts.apiPost(t, ina, "/v1/claims", fmt.Sprintf(`{"serial":"GW-F1","code":%q}`, bundle.DisplayCode(time.Now()))); code != 200 {
		t.Fatalf("claim = %d %s", code, body)
	}
	olga := ts.loginAs(t, "olga", "olga password")
	d = claim.DeviceDetail{} // a decode keeps the fields an answer leaves out
	ts.apiGetJSON(t, olga, "/v1/devices/GW-F1/detail", &d)
	if len(d.History) != 1 || d.History[0].Action != "claim" || d.History[0].Result != "ok" {
		t.Errorf("history after a claim = %+v; want the claim that worked", d.History)
	}
	// Scoping: globex's operator is told there is no such gateway, and
	// lists none.
	oscar := ts.loginAs(t, "oscar", "oscar password")
	req, _ := http.NewRequest(http.MethodGet, ts.ready.APIURL+"/v1/devices/GW-F1/detail", nil)
	req.Header.Set("Authorization", "Bearer "+oscar)
	if resp, err := ts.client.Do(req); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("another organisation's operator: %v %v; want 404", resp.Status, err)
	} else {
		resp.Body.Close()
	}
	page = claim.DevicePage{}
	ts.apiGetJSON(t, oscar, "/v1/devices", &page)
	if len(page.Devices) != 0 {
		t.Errorf("globex's operator lists %d devices; want none", len(page.Devices))
	}
	page = claim.DevicePage{}
	ts.apiGetJSON(t, olga, "/v1/devices?sort=state&order=desc", &page)
	if len(page.Devices) != 1 || page.Devices[0].Serial != "GW-F1" || page.Devices[0].Org != "acme" {
		t.Errorf("acme's operator lists %+v; want GW-F1, acme's", page.Devices)
	}

	if code, body := ts.apiPost(t, olga, "/v1/devices/GW-F1/unclaim", ""); code != 200 {
		t.Fatalf("unclaim = %d %s", code, body)
	}
	d = claim.DeviceDetail{} // a decode keeps the fields an answer leaves out
	ts.apiGetJSON(t, admin, "/v1/devices/GW-F1/detail", &d)
	if len(d.History) != 2 || d.History[0].Action != "unclaim" || d.History[1].Action != "claim" {
		t.Errorf("history after an unclaim = %+v; want unclaim, claim", d.History)
	}
	if op := d.Certificates[0]; op.Status != claim.CertStatusRevoked || op.RevocationReason == "" || op.RevokedAt.IsZero() {
		t.Errorf("operational certificate after the unclaim = %+v; want revoked, with reason and time", op)
	}
	if !d.Device.CertNotAfter.IsZero() {
		t.Errorf("cert_not_after after the unclaim = %v; want none (its only operational certificate is revoked)", d.Device.CertNotAfter)
	}

}

// TestLastSeen checks the last-seen cache: messages through it are noted,
// a gateway it has not seen is looked up in the store once.
func TestLastSeen(t *testing.T) {
	st, err := telemetry.Open(filepath.Join(t.TempDir(), "telemetry.db"), telemetry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go st.Run(ctx)
	at := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	// Stored before the cache existed, as before a restart.
	if err := st.Append(ctx, telemetry.Message{Gateway: "GW-1", Topic: "gw/GW-1/telemetry", Time: at, Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	seen := newLastSeen(st)
	for _, tc := range []struct {
		gw   string
		want time.Time
	}{{"GW-1", at}, {"GW-2", time.Time{}}} {
		if got, err := seen.get(ctx, tc.gw); err != nil || !got.Equal(tc.want) {
			t.Errorf("get(%s) = %v, %v; want %v", tc.gw, got, err, tc.want)
		}
	}
	later := at.Add(time.Hour)
	for _, gw := range []string{"GW-1", "GW-2"} {
		if err := seen.Append(ctx, telemetry.Message{Gateway: gw, Topic: "gw/" + gw + "/state", Time: later, Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if got, err := seen.get(ctx, gw); err != nil || !got.Equal(later) {
			t.Errorf("get(%s) after a message = %v, %v; want %v", gw, got, err, later)
		}
	}
	// An older message does not move it back.
	if err := seen.Append(ctx, telemetry.Message{Gateway: "GW-1", Topic: "gw/GW-1/state", Time: at, Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if got, _ := seen.get(ctx, "GW-1"); !got.Equal(later) {
		t.Errorf("get(GW-1) after an older message = %v; want %v", got, later)
	}
}

// BenchmarkFleetListServer gets a page of 50 gateways from the real server
// over HTTPS, with the fleet columns from the real broker, telemetry store
// and CA: what a page costs beside the registry's own scan (measured over
// 100,000 gateways by claim's BenchmarkFleetPage).
func BenchmarkFleetListServer(b *testing.B) {
	ts := startServer(b, nil)
	root, err := os.ReadFile(ca.Layout{Dir: ts.dir}.RootCert())
	if err != nil {
		b.Fatal(err)
	}
	client, err := provisioning.NewClient(ts.ready.APIURL, root, ts.station, 4)
	if err != nil {
		b.Fatal(err)
	}
	serials := make([]string, 50)
	for i := range serials {
		serials[i] = fmt.Sprintf("GW-B%03d", i)
	}
	if _, err := provisioning.RunBatch(context.Background(), provisioning.BatchOptions{
		Client: client, Serials: serials, Model: "PumpCtl-2", Out: filepath.Join(b.TempDir(), "out"),
	}); err != nil {
		b.Fatal(err)
	}
	pw, err := os.ReadFile(ca.Layout{Dir: ts.dir}.AdminPassword())
	if err != nil {
		b.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"username": AdminUser, "password": strings.TrimSpace(string(pw))})
	resp, err := ts.client.Post(ts.ready.APIURL+"/v1/login", "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	var login struct{ Token string }
	err = json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	if err != nil || login.Token == "" {
		b.Fatalf("login: %d %v", resp.StatusCode, err)
	}
	for _, bc := range []struct{ name, path string }{
		{"list", "/v1/devices?limit=50&sort=model&order=desc"},
		{"detail", "/v1/devices/GW-B007/detail"},
	} {
		path := bc.path
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodGet, ts.ready.APIURL+path, nil)
				req.Header.Set("Authorization", "Bearer "+login.Token)
				resp, err := ts.client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("GET %s = %d", path, resp.StatusCode)
				}
			}
		})
	}
}
