package gateway

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gwpki/gwpki/gateway/gatewaytest"
)

// syncBuffer is a console the test reads while the agent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// count returns how many console lines match re.
func (b *syncBuffer) count(re *regexp.Regexp) int {
	return len(re.FindAllString(b.String(), -1))
}

type runningAgent struct {
	*Agent
	console *syncBuffer
	stop    func() // cancels Run and waits for it
}

// startAgent runs an agent for the bundle in dir until the test ends or
// stop is called.
func startAgent(t *testing.T, dir string, opts AgentOptions) *runningAgent {
	t.Helper()
	b, err := LoadBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	console := &syncBuffer{}
	opts.Console = console
	if opts.Interval == 0 {
		opts.Interval = 100 * time.Millisecond
	}
	a := NewAgent(b, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				var stacks bytes.Buffer
				pprof.Lookup("goroutine").WriteTo(&stacks, 1)
				t.Errorf("Run did not return 30s after its context ended; goroutines:\n%s", stacks.String())
			}
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("console of %s:\n%s", b.Serial, console.String())
		}
	})
	return &runningAgent{Agent: a, console: console, stop: stop}
}

func waitConnections(t *testing.T, srv *gatewaytest.Server, n int) []gatewaytest.Connection {
	t.Helper()
	srv.WaitFor(t, 60*time.Second, "want "+itoa(n)+" broker connections", func() bool { return len(srv.Connections()) >= n })
	return srv.Connections()
}

// waitConnected waits until the agent has finished connecting (subscribed,
// online published), so the broker holds its session.
func waitConnected(t *testing.T, srv *gatewaytest.Server, a *runningAgent) {
	t.Helper()
	srv.WaitFor(t, 60*time.Second, "want the agent connected", func() bool { return a.Status().Connected })
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

func readLeaf(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestAgentBootstrapTelemetryRestart: the first start bootstraps and keeps
// key, chain and bootstrap.json in the bundle; telemetry reaches the broker
// in order; a restart reconnects with the same certificate and no
// bootstrap.
func TestAgentBootstrapTelemetryRestart(t *testing.T) {
	srv := gatewaytest.New(t)
	const serial = "GW-000001"
	dir := srv.WriteBundle(t, t.TempDir(), serial)
	a := startAgent(t, dir, AgentOptions{})
	conns := waitConnections(t, srv, 1)
	if conns[0].ClientID != serial {
		t.Errorf("client ID %q; want %q", conns[0].ClientID, serial)
	}

	// Files.
	fi, err := os.Stat(filepath.Join(dir, OperationalKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s mode %o; want 600", OperationalKeyFile, fi.Mode().Perm())
	}
	leaf := readLeaf(t, filepath.Join(dir, OperationalCertFile))
	if leaf.Subject.CommonName != serial || leaf.SerialNumber.Cmp(conns[0].CertSerial) != 0 {
		t.Errorf("operational.crt is %s serial %X; want %s, the certificate it connected with (%X)", leaf.Subject.CommonName, leaf.SerialNumber, serial, conns[0].CertSerial)
	}
	chain, _ := os.ReadFile(filepath.Join(dir, OperationalCertFile))
	if n := bytes.Count(chain, []byte("BEGIN CERTIFICATE")); n != 2 {
		t.Errorf("operational.crt holds %d certificates; want the chain, leaf and issuer", n)
	}
	var state bootstrapState
	data, _ := os.ReadFile(filepath.Join(dir, BootstrapFile))
	if err := json.Unmarshal(data, &state); err != nil {
		t.Fatalf("bootstrap.json: %v", err)
	}
	if state.MQTT.URL != srv.MQTTURL || state.MQTT.ClientID != serial || !state.RenewAfter.Equal(renewAfter(leaf)) {
		t.Errorf("bootstrap.json = %+v; want mqtt %s, client %s, renew_after %s", state, srv.MQTTURL, serial, renewAfter(leaf))
	}

	// Online, then telemetry in order.
	srv.WaitFor(t, 20*time.Second, "want 5 telemetry messages", func() bool { return len(srv.Messages("gw/"+serial+"/telemetry")) >= 5 })
	if m := srv.Messages("gw/" + serial + "/state"); len(m) == 0 || string(m[0].Payload) != `{"state":"online"}` {
		t.Errorf("state messages %v; want {\"state\":\"online\"} first", m)
	}
	var prev Telemetry
	for i, m := range srv.Messages("gw/" + serial + "/telemetry") {
		var tm Telemetry
		dec := json.NewDecoder(bytes.NewReader(m.Payload))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&tm); err != nil {
			t.Fatalf("telemetry %s: %v", m.Payload, err)
		}
		var raw map[string]any
		json.Unmarshal(m.Payload, &raw)
		for _, k := range []string{"seq", "time", "flow_m3h", "pressure_bar", "power_kw", "temperature_c", "running_hours"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("telemetry %s has no %q", m.Payload, k)
			}
		}
		if tm.Seq != uint64(i+1) {
			t.Errorf("message %d has seq %d; want %d", i, tm.Seq, i+1)
		}
		if _, err := time.Parse(time.RFC3339Nano, raw["time"].(string)); err != nil {
			t.Errorf("time %v: %v", raw["time"], err)
		}
		checkReadings(t, tm)
		if i > 0 && (tm.RunningHours < prev.RunningHours || !tm.Time.After(prev.Time)) {
			t.Errorf("message %d: running hours %v or time %v went back from %v, %v", i, tm.RunningHours, tm.Time, prev.RunningHours, prev.Time)
		}
		prev = tm
	}
	srv.WaitFor(t, 20*time.Second, "want acked telemetry", func() bool { return a.Status().Acked >= 3 })
	st := a.Status()
	if !st.Connected || st.Bootstraps != 1 || !st.CertNotAfter.Equal(leaf.NotAfter) || st.Published < st.Acked {
		t.Errorf("Status = %+v; want connected, 1 bootstrap, certificate until %s, published >= acked", st, leaf.NotAfter)
	}

	// A stop says offline; a restart reuses the certificate.
	a.stop()
	if m := srv.Messages("gw/" + serial + "/state"); string(m[len(m)-1].Payload) != `{"state":"offline"}` {
		t.Errorf("last state message %s; want offline", m[len(m)-1].Payload)
	}
	startAgent(t, dir, AgentOptions{})
	conns = waitConnections(t, srv, 2)
	if conns[1].CertSerial.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("restart connected with certificate %X; want the kept one, %X", conns[1].CertSerial, leaf.SerialNumber)
	}
	if n := srv.Bootstraps(serial); n != 1 {
		t.Errorf("%d bootstraps after a restart; want 1", n)
	}
}

func checkReadings(t *testing.T, tm Telemetry) {
	t.Helper()
	for _, r := range []struct {
		name      string
		v, lo, hi float64
	}{
		{"flow_m3h", tm.FlowM3H, 20, 60},
		{"pressure_bar", tm.PressureBar, 2, 6},
		{"power_kw", tm.PowerKW, 3, 11},
		{"temperature_c", tm.TemperatureC, 40, 70},
		{"running_hours", tm.RunningHours, 1, 1e6},
	} {
		if r.v < r.lo || r.v > r.hi {
			t.Errorf("seq %d: %s = %v; want %v to %v", tm.Seq, r.name, r.v, r.lo, r.hi)
		}
	}
}

var codeLine = regexp.MustCompile(`(?m)^GW-000002 claim code: [0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z*~$=] \(valid until \d\d:\d\d\)$`)

// TestAgentClaimCode: the code is printed at start and when its window
// changes, until gw/<serial>/cmd/claimed, then never again.
func TestAgentClaimCode(t *testing.T) {
	srv := gatewaytest.New(t)
	const serial = "GW-000002"
	dir := srv.WriteBundle(t, t.TempDir(), serial)
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	a := startAgent(t, dir, AgentOptions{Now: now})
	waitConnections(t, srv, 1)
	if n := a.console.count(codeLine); n != 1 {
		t.Fatalf("%d code lines at start; want 1:\n%s", n, a.console)
	}
	b, _ := LoadBundle(dir)
	if !strings.Contains(a.console.String(), b.DisplayCode(now())) {
		t.Errorf("console %q; want the current display code %s", a.console, b.DisplayCode(now()))
	}

	offset.Add(int64(5 * time.Minute)) // the next window
	srv.WaitFor(t, 20*time.Second, "want a new code line in the next window", func() bool { return a.console.count(codeLine) == 2 })
	if !strings.Contains(a.console.String(), b.DisplayCode(now())) {
		t.Errorf("console %q; want the next window's code %s", a.console, b.DisplayCode(now()))
	}

	if err := srv.Broker.Publish("gw/"+serial+"/cmd/claimed", []byte(`{"org":"acme"}`), false, 1); err != nil {
		t.Fatal(err)
	}
	srv.WaitFor(t, 20*time.Second, "want claimed", func() bool { return a.Status().Claimed })
	if !regexp.MustCompile(`(?m)^GW-000002 claimed$`).MatchString(a.console.String()) {
		t.Errorf("console %q; want a line \"GW-000002 claimed\"", a.console)
	}
	offset.Add(int64(10 * time.Minute))
	published := a.Status().Published
	srv.WaitFor(t, 20*time.Second, "want more telemetry", func() bool { return a.Status().Published >= published+3 })
	if n := a.console.count(codeLine); n != 2 {
		t.Errorf("%d code lines after the claim and two windows; want still 2:\n%s", n, a.console)
	}
}

// TestAgentPressButton: a press while connected goes over MQTT, on the
// gateway's own connection.
func TestAgentPressButton(t *testing.T) {
	srv := gatewaytest.New(t)
	const serial = "GW-000003"
	a := startAgent(t, srv.WriteBundle(t, t.TempDir(), serial), AgentOptions{})
	conns := waitConnections(t, srv, 1)
	a.PressButton()
	srv.WaitFor(t, 20*time.Second, "want the claim button state message", func() bool {
		for _, m := range srv.Messages("gw/" + serial + "/state") {
			if string(m.Payload) == `{"claim_button":"pressed"}` && m.ClientID == serial {
				return true
			}
		}
		return false
	})
	srv.WaitFor(t, 20*time.Second, "want the console to say so", func() bool {
		return strings.Contains(a.console.String(), "claim button reported over MQTT")
	})
	if n := srv.Buttons(serial); n != 0 {
		t.Errorf("%d presses over HTTPS; want none while connected", n)
	}
	if len(srv.Connections()) != len(conns) {
		t.Errorf("the press opened another connection")
	}
}

// TestAgentPressButtonOffline: without a broker the press goes over HTTPS
// with the birth certificate.
func TestAgentPressButtonOffline(t *testing.T) {
	srv := gatewaytest.New(t)
	srv.SetMQTTURL("mqtts://127.0.0.1:1") // nothing listens there
	const serial = "GW-000004"
	a := startAgent(t, srv.WriteBundle(t, t.TempDir(), serial), AgentOptions{})
	srv.WaitFor(t, 20*time.Second, "want a bootstrap", func() bool { return srv.Bootstraps(serial) == 1 })
	a.PressButton()
	srv.WaitFor(t, 20*time.Second, "want the press over HTTPS", func() bool { return srv.Buttons(serial) == 1 })
	srv.WaitFor(t, 20*time.Second, "want the console to say so", func() bool {
		return strings.Contains(a.console.String(), "claim button reported over HTTPS: the claim lock was locked; 3 failed attempt(s) cleared")
	})
	if a.Status().Connected {
		t.Error("Status says connected to a broker that does not exist")
	}
}

// TestAgentRenews: at renew_after the agent renews through /1.0/renew with
// the same key and replaces operational.crt; a refused renewal bootstraps
// again.
func TestAgentRenews(t *testing.T) {
	srv := gatewaytest.New(t)
	srv.SetCertLife(3 * time.Second) // renew after 2 s
	const serial = "GW-000005"
	dir := srv.WriteBundle(t, t.TempDir(), serial)
	a := startAgent(t, dir, AgentOptions{})
	waitConnections(t, srv, 1)
	first := readLeaf(t, filepath.Join(dir, OperationalCertFile))
	keyBefore, _ := os.ReadFile(filepath.Join(dir, OperationalKeyFile))
	srv.WaitFor(t, 20*time.Second, "want a renewal", func() bool { return srv.Renewals(serial) >= 1 && a.Status().Renewals >= 1 })
	renewed := readLeaf(t, filepath.Join(dir, OperationalCertFile))
	if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("operational.crt still holds the first certificate")
	}
	if !renewed.PublicKey.(*ecdsa.PublicKey).Equal(first.PublicKey) {
		t.Error("the renewed certificate has another key; renewal keeps it")
	}
	if keyAfter, _ := os.ReadFile(filepath.Join(dir, OperationalKeyFile)); !bytes.Equal(keyBefore, keyAfter) {
		t.Error("operational.key changed on renewal")
	}
	if srv.Bootstraps(serial) != 1 {
		t.Errorf("%d bootstraps; want 1, renewal is not a bootstrap", srv.Bootstraps(serial))
	}
	var state bootstrapState
	data, _ := os.ReadFile(filepath.Join(dir, BootstrapFile))
	json.Unmarshal(data, &state)
	if state.RenewAfter.Before(renewAfter(first).Add(time.Second)) {
		t.Errorf("renew_after %s not moved on from the first certificate's %s", state.RenewAfter, renewAfter(first))
	}

	srv.RefuseRenewals(true)
	srv.WaitFor(t, 20*time.Second, "want a bootstrap after the refused renewal", func() bool { return srv.Bootstraps(serial) >= 2 })
	if !strings.Contains(a.console.String(), "renew: server answered 401 Unauthorized") {
		t.Errorf("console %q; want the refused renewal", a.console)
	}
}

// TestAgentRebootstrapsWhenRefused: a revoked operational certificate is
// dropped by the broker and refused at the next connect; the agent
// bootstraps again with its birth certificate and connects with the new one.
func TestAgentRebootstrapsWhenRefused(t *testing.T) {
	srv := gatewaytest.New(t)
	const serial = "GW-000006"
	a := startAgent(t, srv.WriteBundle(t, t.TempDir(), serial), AgentOptions{})
	waitConnected(t, srv, a)
	conns := waitConnections(t, srv, 1)
	srv.Revoke(conns[0].CertSerial)
	conns = waitConnections(t, srv, 2)
	if conns[1].CertSerial.Cmp(conns[0].CertSerial) == 0 {
		t.Errorf("reconnected with the revoked certificate %X", conns[0].CertSerial)
	}
	if n := srv.Bootstraps(serial); n != 2 {
		t.Errorf("%d bootstraps; want 2", n)
	}
	if !strings.Contains(a.console.String(), "broker refused the certificate") || !strings.Contains(a.console.String(), "bootstrapping again") {
		t.Errorf("console %q; want the refusal and the new bootstrap", a.console)
	}
}

// TestAgentRevokedGatewayBacksOff: when the server refuses the gateway
// itself, the agent says so and retries with back-off, without spinning.
func TestAgentRevokedGatewayBacksOff(t *testing.T) {
	srv := gatewaytest.New(t)
	const serial = "GW-000007"
	a := startAgent(t, srv.WriteBundle(t, t.TempDir(), serial), AgentOptions{})
	waitConnected(t, srv, a)
	conns := waitConnections(t, srv, 1)
	srv.RefuseGateway(serial)
	srv.Revoke(conns[0].CertSerial)
	refusals := regexp.MustCompile(`(?m)^GW-000007 bootstrap: server answered 403 Forbidden: gateway revoked.*will not give this gateway a certificate.*retrying in`)
	srv.WaitFor(t, 30*time.Second, "want a refused bootstrap on the console", func() bool { return a.console.count(refusals) >= 1 })
	n0 := a.console.count(refusals)
	time.Sleep(4 * time.Second)
	if n := a.console.count(refusals) - n0; n > 5 {
		t.Errorf("%d more refused bootstraps in 4s; want a few, backing off:\n%s", n, a.console)
	}
	if a.Status().Connected || len(srv.Connections()) != 1 {
		t.Errorf("connected again: %+v", a.Status())
	}
}

// TestAgentUnusableBundle: a bundle without the birth key cannot work;
// Run says so at once.
func TestAgentUnusableBundle(t *testing.T) {
	srv := gatewaytest.New(t)
	dir := srv.WriteBundle(t, t.TempDir(), "GW-000008")
	os.Remove(filepath.Join(dir, "idevid.key"))
	b, err := LoadBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	err = NewAgent(b, AgentOptions{}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "has no idevid.key") {
		t.Errorf("Run = %v; want the missing key", err)
	}
}

func TestAgentBackoff(t *testing.T) {
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60, 60}
	for i, w := range want {
		attempt := i + 1
		ceiling := w * time.Second
		if got := Backoff(attempt, 0.999999); got < ceiling*99/100 || got >= ceiling {
			t.Errorf("Backoff(%d, ~1) = %v; want just under %v", attempt, got, ceiling)
		}
		if got := Backoff(attempt, 0); got != 50*time.Millisecond {
			t.Errorf("Backoff(%d, 0) = %v; want the 50ms floor", attempt, got)
		}
	}
	if got := Backoff(1000, 0.5); got != 30*time.Second {
		t.Errorf("Backoff(1000, 0.5) = %v; want 30s (capped at 60s)", got)
	}
	if got := Backoff(0, 0.5); got != 500*time.Millisecond {
		t.Errorf("Backoff(0, 0.5) = %v; want 500ms, as attempt 1", got)
	}
	// Full jitter: the waits spread over the whole range below the ceiling.
	lo, hi := time.Hour, time.Duration(0)
	for range 1000 {
		d := Backoff(6, randFloat())
		lo, hi = min(lo, d), max(hi, d)
		if d < 50*time.Millisecond || d >= 32*time.Second {
			t.Fatalf("Backoff(6) = %v; want within [50ms, 32s)", d)
		}
	}
	if lo > 4*time.Second || hi < 28*time.Second {
		t.Errorf("1000 draws of Backoff(6) spread over [%v, %v]; want most of [0, 32s)", lo, hi)
	}
}

// TestAgentPumpReadings: the readings stay plausible and drift smoothly.
func TestAgentPumpReadings(t *testing.T) {
	p := newPump(42)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	prev := p.step(5*time.Second, now, 1)
	flows := map[float64]bool{}
	for i := range 5000 {
		now = now.Add(5 * time.Second)
		tm := p.step(5*time.Second, now, uint64(i+2))
		checkReadings(t, tm)
		if d := tm.FlowM3H - prev.FlowM3H; d > 3 || d < -3 {
			t.Errorf("flow jumped %v -> %v in 5s", prev.FlowM3H, tm.FlowM3H)
		}
		if d := tm.TemperatureC - prev.TemperatureC; d > 1 || d < -1 {
			t.Errorf("temperature jumped %v -> %v in 5s", prev.TemperatureC, tm.TemperatureC)
		}
		if tm.RunningHours <= prev.RunningHours-0.0005 {
			t.Errorf("running hours went back: %v -> %v", prev.RunningHours, tm.RunningHours)
		}
		flows[float64(int(tm.FlowM3H/5))] = true
		prev = tm
	}
	if len(flows) < 5 {
		t.Errorf("flow visited %d bands of 5 m3/h in 7 hours; want it to drift across the range", len(flows))
	}
}

func randFloat() float64 { return rand.Float64() }
