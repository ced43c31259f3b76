package claim

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// wantCounts checks the counter name on reg: want maps its result label
// ("" for a counter without labels) to the count.
func wantCounts(t *testing.T, reg *prometheus.Registry, name string, want map[string]int) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			result := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "result" {
					result = lp.GetValue()
				}
			}
			got[result] = int(m.GetCounter().GetValue())
		}
	}
	for result, n := range want {
		if v, ok := got[result]; !ok || v != n {
			t.Errorf("%s{result=%q} = %d (present %v); want %d", name, result, v, ok, n)
		}
	}
}

// TestLoginMetrics counts logins through the HTTP API: good, wrong, and
// over the limit.
func TestLoginMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	env := newHTTPEnv(t, WithRegisterer(reg))
	env.mustCreate(t, "alice", "acme", RoleInstaller, "correct horse")
	env.login(t, "alice", "correct horse")
	for range 10 {
		if ans := env.do(t, "POST", "/v1/login", "", `{"username":"alice","password":"wrong"}`); ans.status != http.StatusUnauthorized {
			t.Fatalf("wrong password = %d", ans.status)
		}
	}
	env.clock.Advance(time.Minute)
	if ans := env.do(t, "POST", "/v1/login", "", `{"username":"alice","password":"correct horse"}`); ans.status != http.StatusTooManyRequests {
		t.Fatalf("11th attempt = %d; want 429", ans.status)
	}
	if ans := env.do(t, "POST", "/v1/login", "", `{"username":"alice"}`); ans.status != http.StatusBadRequest {
		t.Fatalf("no password = %d; want 400", ans.status)
	}
	wantCounts(t, reg, "gwpki_logins_total", map[string]int{"ok": 1, "refused": 11, "limited": 1, "error": 0})
}

// TestRegistererRefusesTwice: a second service on the same registry fails
// to start rather than sharing counters silently.
func TestRegistererRefusesTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	env := newTestEnv(t, WithRegisterer(reg))
	if _, err := NewAccounts(env.db, WithRegisterer(reg)); err == nil {
		t.Error("second NewAccounts on one registry succeeded")
	}
}
