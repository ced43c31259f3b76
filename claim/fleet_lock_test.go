package claim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// fetchDevices answers GET path (a device page) as c, keyed by serial.
func fetchDevices(t *testing.T, c *claimClient, path string) map[string]Device {
	t.Helper()
	a := c.do(t, "GET", path, "")
	var page DevicePage
	if err := json.Unmarshal([]byte(a.body), &page); a.status != http.StatusOK || err != nil {
		t.Fatalf("GET %s = %d %s", path, a.status, a.body)
	}
	out := map[string]Device{}
	for _, d := range page.Devices {
		out[d.Serial] = d
	}
	return out
}

// fetchDevice answers GET path (one device, or a detail page's device) as c.
func fetchDevice(t *testing.T, c *claimClient, path string, detail bool) Device {
	t.Helper()
	a := c.do(t, "GET", path, "")
	var d DeviceDetail
	target := any(&d.Device)
	if detail {
		target = &d
	}
	if err := json.Unmarshal([]byte(a.body), target); a.status != http.StatusOK || err != nil {
		t.Fatalf("GET %s = %d %s", path, a.status, a.body)
	}
	return d.Device
}

// TestHTTPFleetClaimLock: a gateway locked by 20 wrong codes posted to
// POST /v1/claims shows as locked in GET /v1/devices, GET
// /v1/devices/{serial} and its detail page; one in back-off shows when it
// ends; an operator sees the lock fields of their organisation's gateways
// only; an unlock clears them.
func TestHTTPFleetClaimLock(t *testing.T) {
	env := newClaimEnv(t)
	env.register(t, "GW-1")
	env.register(t, "GW-2")
	creds3 := env.register(t, "GW-3")
	env.register(t, "GW-4")
	var asked atomic.Int64
	env.reg.SetFleetSources(FleetSources{ClaimAttempts: func(ctx context.Context, gw string) (GatewayAttempts, error) {
		asked.Add(1)
		return env.attempts.Gateway(ctx, gw)
	}})
	ina := env.user(t, "ina", "acme", RoleInstaller, "127.0.0.2")
	if status, _, a := ina.claim(t, "GW-3", DisplayCode(creds3.ClaimSecret, "GW-3", env.clock.Now())); status != http.StatusOK {
		t.Fatalf("claim GW-3 = %d %s", status, a.body)
	}

	// GW-1: wrong codes from many users and addresses, waiting out each
	// back-off, until the 20th failure locks it.
	var guessers []*claimClient
	for i := range 6 {
		guessers = append(guessers, env.user(t, fmt.Sprintf("guesser%d", i), "evil", RoleInstaller, fmt.Sprintf("127.0.0.%d", 10+i)))
	}
	var lockedAt time.Time
	for n, failures := 0, 0; failures < 20; n++ {
		if n > 100 {
			t.Fatal("GW-1 not locked after 100 claims")
		}
		status, r, a := guessers[n%len(guessers)].claim(t, "GW-1", wrongCode(n))
		switch {
		case status == http.StatusForbidden && r.Reason == "wrong_code":
			failures++
			lockedAt = env.clock.Now()
		case status == http.StatusTooManyRequests && r.Scope == ScopeGateway:
			secs, err := strconv.Atoi(a.header.Get("Retry-After"))
			if err != nil {
				t.Fatalf("429 without Retry-After: %s", a.body)
			}
			env.clock.Advance(time.Duration(secs) * time.Second)
		default:
			t.Fatalf("guess %d at GW-1 = %d %s; want 403 wrong_code or 429", n, status, a.body)
		}
	}
	if status, r, _ := guessers[0].claim(t, "GW-1", wrongCode(999)); status != http.StatusLocked || r.Reason != "locked" {
		t.Fatalf("GW-1 after 20 failures = %d %+v; want 423 locked", status, r)
	}
	// An hour later (the guessers' own limits have passed), GW-2 gets six
	// wrong codes: the sixth starts a back-off of a minute. GW-3, claimed
	// by acme, gets two, and stays open.
	env.clock.Advance(time.Hour)
	for i := range 6 {
		if status, _, a := guessers[i].claim(t, "GW-2", wrongCode(100+i)); status != http.StatusForbidden {
			t.Fatalf("guess %d at GW-2 = %d %s; want 403", i, status, a.body)
		}
	}
	backoffFrom := env.clock.Now()
	for i := range 2 {
		if status, _, a := guessers[i].claim(t, "GW-3", wrongCode(200+i)); status != http.StatusForbidden {
			t.Fatalf("guess %d at GW-3 = %d %s; want 403", i, status, a.body)
		}
	}
	env.clock.Advance(10 * time.Second)

	ada := env.user(t, "ada", "maker", RoleAdmin, "127.0.0.3")
	olga := env.user(t, "olga", "acme", RoleOperator, "127.0.0.4")
	want := map[string]Device{
		"GW-1": {ClaimLock: ClaimLockLocked, ClaimFailures: 20, ClaimLastFailure: lockedAt},
		"GW-2": {ClaimLock: ClaimLockBackoff, ClaimRetryAfter: backoffFrom.Add(time.Minute), ClaimFailures: 6, ClaimLastFailure: backoffFrom},
		"GW-3": {ClaimFailures: 2, ClaimLastFailure: backoffFrom},
		"GW-4": {},
	}
	check := func(what string, got Device, serial string) {
		t.Helper()
		w := want[serial]
		if got.Serial != serial || got.ClaimLock != w.ClaimLock || !got.ClaimRetryAfter.Equal(w.ClaimRetryAfter) ||
			got.ClaimFailures != w.ClaimFailures || !got.ClaimLastFailure.Equal(w.ClaimLastFailure) {
			t.Errorf("%s: %s lock %q retry after %v failures %d last %v; want %q, %v, %d, %v", what, serial,
				got.ClaimLock, got.ClaimRetryAfter, got.ClaimFailures, got.ClaimLastFailure,
				w.ClaimLock, w.ClaimRetryAfter, w.ClaimFailures, w.ClaimLastFailure)
		}
	}
	asked.Store(0)
	devs := fetchDevices(t, ada, "/v1/devices")
	if len(devs) != 4 || asked.Load() != 4 {
		t.Fatalf("admin's list: %d devices, %d attempt states read; want 4 and 4", len(devs), asked.Load())
	}
	for serial := range want {
		check("admin's list", devs[serial], serial)
		check("admin's GET", fetchDevice(t, ada, "/v1/devices/"+serial, false), serial)
		check("admin's detail", fetchDevice(t, ada, "/v1/devices/"+serial+"/detail", true), serial)
	}
	// The lock fields are read for the rows of the page only.
	asked.Store(0)
	if devs := fetchDevices(t, ada, "/v1/devices?limit=1"); len(devs) != 1 || asked.Load() != 1 {
		t.Errorf("a page of 1: %d devices, %d attempt states read; want 1 and 1", len(devs), asked.Load())
	}
	// The raw JSON: the field names of the docs, and nothing for GW-4.
	a := ada.do(t, "GET", "/v1/devices", "")
	var raw struct {
		Devices []map[string]any `json:"devices"`
	}
	if err := json.Unmarshal([]byte(a.body), &raw); err != nil || len(raw.Devices) != 4 {
		t.Fatalf("GET /v1/devices = %d %s", a.status, a.body)
	}
	if d := raw.Devices[0]; d["claim_lock"] != "locked" || d["claim_failures"] != 20.0 || d["claim_retry_after"] != nil ||
		d["claim_last_failure"] != lockedAt.UTC().Format(time.RFC3339Nano) {
		t.Errorf("GW-1 as JSON: %v; want claim_lock locked, claim_failures 20, claim_last_failure and no claim_retry_after", d)
	}
	if d := raw.Devices[1]; d["claim_lock"] != "backoff" || d["claim_retry_after"] != backoffFrom.Add(time.Minute).UTC().Format(time.RFC3339Nano) {
		t.Errorf("GW-2 as JSON: %v; want claim_lock backoff until %v", d, backoffFrom.Add(time.Minute))
	}
	for _, k := range []string{"claim_lock", "claim_retry_after", "claim_failures", "claim_last_failure"} {
		if _, ok := raw.Devices[3][k]; ok {
			t.Errorf("GW-4 as JSON has %s: %v", k, raw.Devices[3])
		}
	}

	// The operator sees acme's GW-3 only, with its failures; the unclaimed
	// ones are nobody's, so answered 404 like an unknown serial.
	devs = fetchDevices(t, olga, "/v1/devices")
	if len(devs) != 1 {
		t.Fatalf("operator's list: %v; want GW-3 only", devs)
	}
	check("operator's list", devs["GW-3"], "GW-3")
	check("operator's detail", fetchDevice(t, olga, "/v1/devices/GW-3/detail", true), "GW-3")
	for _, p := range []string{"/v1/devices/GW-1", "/v1/devices/GW-1/detail"} {
		if a := olga.do(t, "GET", p, ""); a.status != http.StatusNotFound {
			t.Errorf("operator's GET %s = %d %s; want 404", p, a.status, a.body)
		}
	}

	// Any operator may unlock an unclaimed gateway: GW-1 shows no lock
	// after it, and takes claims again.
	a = olga.do(t, "POST", "/v1/devices/GW-1/unlock", "")
	var res UnlockResult
	if err := json.Unmarshal([]byte(a.body), &res); a.status != http.StatusOK || err != nil || !res.WasLocked || res.Failures != 20 {
		t.Fatalf("unlock GW-1 = %d %s; want was_locked with 20 failures", a.status, a.body)
	}
	want["GW-1"] = Device{}
	check("admin's list after the unlock", fetchDevices(t, ada, "/v1/devices")["GW-1"], "GW-1")
	check("admin's detail after the unlock", fetchDevice(t, ada, "/v1/devices/GW-1/detail", true), "GW-1")
	// The back-off ends by itself; the failures stay until a claim or an
	// unlock.
	env.clock.Advance(time.Minute)
	want["GW-2"] = Device{ClaimFailures: 6, ClaimLastFailure: backoffFrom}
	check("admin's list after the back-off", fetchDevices(t, ada, "/v1/devices")["GW-2"], "GW-2")
	if status, _, a := guessers[0].claim(t, "GW-1", wrongCode(300)); status != http.StatusForbidden {
		t.Errorf("guess at GW-1 after the unlock = %d %s; want 403 wrong_code", status, a.body)
	}
}
