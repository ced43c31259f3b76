package server

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqttc "github.com/eclipse/paho.mqtt.golang"

	"github.com/gwpki/gwpki/bootstrap"
	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/gateway"
	"github.com/gwpki/gwpki/telemetry"
)

// bootstrapGateway bootstraps the provisioned gateway serial of out and
// returns its operational certificate with key, and the MQTT URL.
func bootstrapGateway(t *testing.T, ts *testServer, out, serial string) (tls.Certificate, string) {
	t.Helper()
	key := newKey(t)
	status, body := ts.bootstrapAs(t, ts.gatewayClient(t, loadPair(t, filepath.Join(out, serial))), csrBody(t, serial, key))
	var ans bootstrap.Answer
	if status != http.StatusOK || json.Unmarshal([]byte(body), &ans) != nil {
		t.Fatalf("bootstrap %s = %d %s", serial, status, body)
	}
	chain := parseChain(t, ans.Certificate)
	return tls.Certificate{Certificate: [][]byte{chain[0].Raw, chain[1].Raw}, PrivateKey: key}, ans.MQTT.URL
}

// mqttClient connects to the broker at url as serial with cert; lost
// receives the time the connection dropped.
func (ts *testServer) mqttClient(t *testing.T, url, serial string, cert tls.Certificate, lost chan<- time.Time) (mqttc.Client, error) {
	t.Helper()
	pool := x509.NewCertPool()
	root, _ := os.ReadFile(ca.Layout{Dir: ts.dir}.RootCert())
	pool.AppendCertsFromPEM(root)
	opts := mqttc.NewClientOptions().
		AddBroker(strings.Replace(url, "mqtts://", "tls://", 1)).
		SetClientID(serial).
		SetTLSConfig(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(30 * time.Second).
		SetConnectTimeout(10 * time.Second)
	if lost != nil {
		opts.SetConnectionLostHandler(func(mqttc.Client, error) { lost <- time.Now() })
	}
	c := mqttc.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		return nil, fmt.Errorf("connect %s: timed out", serial)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

// TestGatewayOnline takes a provisioned gateway online through the real
// server: bootstrap, MQTT with the operational certificate, QoS 1 telemetry
// stored and readable by the owning organisation's operator, cmd/claimed on
// a claim, the session dropped within a second of a revocation; and the
// birth certificate refused by the broker.
func TestGatewayOnline(t *testing.T) {
	ts := startServer(t, nil)
	out := provisionGateways(t, ts, "GW-M1", "GW-M2")
	cert, url := bootstrapGateway(t, ts, out, "GW-M1")
	if want := strings.Replace(ts.ready.APIURL, "https://", "mqtts://", 1); !strings.HasPrefix(url, "mqtts://127.0.0.1:") || url == want {
		t.Fatalf("mqtt url %q; want this server's broker", url)
	}
	if url != ts.ready.MQTTURL {
		t.Fatalf("bootstrap sent GW-M1 to %q; the server's broker is %q", url, ts.ready.MQTTURL)
	}
	lost := make(chan time.Time, 1)
	c, err := ts.mqttClient(t, url, "GW-M1", cert, lost)
	if err != nil {
		t.Fatal(err)
	}
	claimed := make(chan string, 1)
	if tok := c.Subscribe("gw/GW-M1/cmd/#", 1, func(_ mqttc.Client, m mqttc.Message) { claimed <- m.Topic() + " " + string(m.Payload()) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	const n = 50
	for i := range n {
		tok := c.Publish("gw/GW-M1/telemetry", 1, false, fmt.Sprintf(`{"seq":%d}`, i))
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	// Acknowledged, so stored: the admin reads all of it.
	admin := ts.login(t)
	var page telemetry.Page
	ts.apiGetJSON(t, admin, "/v1/devices/GW-M1/telemetry?limit=1000", &page)
	if len(page.Messages) != n || string(page.Messages[n-1].Payload) != fmt.Sprintf(`{"seq":%d}`, n-1) {
		t.Fatalf("stored %d messages; want the %d acknowledged, in order", len(page.Messages), n)
	}

	// A claim reaches the gateway.
	bundle, err := gateway.LoadBundle(filepath.Join(out, "GW-M1"))
	if err != nil {
		t.Fatal(err)
	}
	if code, body := ts.apiPost(t, admin, "/v1/users", `{"username":"ina","org":"acme","role":"installer","password":"ina password"}`); code != 201 {
		t.Fatalf("create user = %d %s", code, body)
	}
	ina := ts.loginAs(t, "ina", "ina password")
	if code, body := ts.apiPost(t, ina, "/v1/claims", fmt.Sprintf(`{"serial":"GW-M1","code":%q}`, bundle.DisplayCode(time.Now()))); code != 200 {
		t.Fatalf("claim = %d %s", code, body)
	}
	select {
	case m := <-claimed:
		if m != `gw/GW-M1/cmd/claimed {"claimed":true}` {
			t.Errorf("gateway got %q; want cmd/claimed", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no cmd/claimed within 10 s of the claim")
	}

	// Its telemetry is its organisation's: another organisation's operator
	// is told there is no such device.
	for _, u := range []string{
		`{"username":"olga","org":"acme","role":"operator","password":"olga password"}`,
		`{"username":"oscar","org":"globex","role":"operator","password":"oscar password"}`,
	} {
		if code, body := ts.apiPost(t, admin, "/v1/users", u); code != 201 {
			t.Fatalf("create user = %d %s", code, body)
		}
	}
	ts.apiGetJSON(t, ts.loginAs(t, "olga", "olga password"), "/v1/devices/GW-M1/telemetry?limit=1", &page)
	if len(page.Messages) != 1 {
		t.Errorf("the owning organisation's operator read %d messages; want 1", len(page.Messages))
	}
	req, _ := http.NewRequest(http.MethodGet, ts.ready.APIURL+"/v1/devices/GW-M1/telemetry", nil)
	req.Header.Set("Authorization", "Bearer "+ts.loginAs(t, "oscar", "oscar password"))
	if resp, err := ts.client.Do(req); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("another organisation's operator: %v %v; want 404", resp.Status, err)
	} else {
		resp.Body.Close()
	}

	// The birth certificate does not open the broker.
	if _, err := ts.mqttClient(t, url, "GW-M2", loadPair(t, filepath.Join(out, "GW-M2")), nil); err == nil {
		t.Error("the broker took a birth certificate")
	}

	// Revocation cuts the live session off at once.
	start := time.Now()
	if code, body := ts.apiPost(t, admin, "/v1/devices/GW-M1/revoke", `{"reason":"keyCompromise"}`); code != 200 {
		t.Fatalf("revoke = %d %s", code, body)
	}
	select {
	case at := <-lost:
		t.Logf("session dropped %v after the revoke request started", at.Sub(start))
		if at.Sub(start) > time.Second {
			t.Errorf("session dropped %v after the revocation; want within 1 s", at.Sub(start))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("session still up 5 s after the revocation")
	}
	if _, err := ts.mqttClient(t, url, "GW-M1", cert, nil); err == nil {
		t.Error("the revoked certificate connected again")
	}
	// The fleet list shows it revoked (decommissioned), the other not.
	var list claim.DevicePage
	ts.apiGetJSON(t, admin, "/v1/devices", &list)
	for _, d := range list.Devices {
		if want := d.Serial == "GW-M1"; d.Revoked != want {
			t.Errorf("%s revoked = %v; want %v", d.Serial, d.Revoked, want)
		}
	}
}

// loginAs logs user in and returns the bearer token.
func (ts *testServer) loginAs(t *testing.T, user, password string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": user, "password": password})
	code, out := ts.apiPost(t, "", "/v1/login", string(body))
	var resp struct{ Token string }
	if code != http.StatusOK || json.Unmarshal([]byte(out), &resp) != nil {
		t.Fatalf("login %s = %d %s", user, code, out)
	}
	return resp.Token
}

// apiGetJSON gets path with token and decodes the 200 answer into v.
func (ts *testServer) apiGetJSON(t *testing.T, token, path string, v any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ts.ready.APIURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
