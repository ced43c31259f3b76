package server

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gwpki/gwpki/broker"
	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/telemetry"
)

// TestBrokerLimitsCarried: every field of mqtt_limits reaches
// broker.Options.
func TestBrokerLimitsCarried(t *testing.T) {
	l := ca.MQTTLimits{
		MaxClients: 500, MaxPacketSize: 4096, ReceiveMaximum: 16,
		SessionExpiry: ca.Duration{Duration: 2 * time.Minute}, HandshakeTimeout: ca.Duration{Duration: 3 * time.Second},
		ConnectTimeout: ca.Duration{Duration: 4 * time.Second}, PublishRate: 2.5, PublishBurst: 7,
	}
	got := brokerLimits(l)
	want := broker.Options{
		MaxClients: 500, MaxPacketSize: 4096, ReceiveMaximum: 16, SessionExpiry: 2 * time.Minute,
		HandshakeTimeout: 3 * time.Second, ConnectTimeout: 4 * time.Second, PublishRate: 2.5, PublishBurst: 7,
	}
	if got.MaxClients != want.MaxClients || got.MaxPacketSize != want.MaxPacketSize ||
		got.ReceiveMaximum != want.ReceiveMaximum || got.SessionExpiry != want.SessionExpiry ||
		got.HandshakeTimeout != want.HandshakeTimeout || got.ConnectTimeout != want.ConnectTimeout ||
		got.PublishRate != want.PublishRate || got.PublishBurst != want.PublishBurst {
		t.Fatalf("brokerLimits = %+v; want %+v", got, want)
	}
	if err := l.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if err := (ca.MQTTLimits{}).Validate(); err != nil {
		t.Fatalf("Validate of the defaults: %v", err)
	}
}

// TestMQTTLimitsFromConfig: mqtt_limits in config.json reach gwpki serve's
// broker: a gateway is held to publish_rate and publish_burst (MQTT 3.1.1:
// disconnected past its burst, nothing over the limit stored, the refusal
// counted in /metrics) and to max_packet_size.
func TestMQTTLimitsFromConfig(t *testing.T) {
	ts := startServer(t, func(cfg map[string]any) {
		cfg["mqtt_limits"] = map[string]any{"publish_rate": 0.001, "publish_burst": 2, "max_packet_size": 2048}
	})
	out := provisionGateways(t, ts, "GW-L1", "GW-L2")
	cert, url := bootstrapGateway(t, ts, out, "GW-L1")
	lost := make(chan time.Time, 1)
	c, err := ts.mqttClient(t, url, "GW-L1", cert, lost)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		tok := c.Publish("gw/GW-L1/telemetry", 1, false, []byte{'a' + byte(i)})
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d of the burst: %v", i+1, tok.Error())
		}
	}
	over := c.Publish("gw/GW-L1/telemetry", 1, false, "over")
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("gateway not disconnected past publish_burst")
	}
	if over.WaitTimeout(100*time.Millisecond) && over.Error() == nil {
		t.Fatal("publish over the limit acknowledged")
	}
	admin := ts.login(t)
	var page telemetry.Page
	ts.apiGetJSON(t, admin, "/v1/devices/GW-L1/telemetry?limit=100", &page)
	if len(page.Messages) != 2 {
		t.Fatalf("stored %d messages; want the burst, 2", len(page.Messages))
	}
	resp, err := http.Get(ts.ready.HTTPURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "gwpki_mqtt_publish_limited_total 1\n") {
		t.Errorf("metrics lack gwpki_mqtt_publish_limited_total 1:\n%s", grepLines(string(b), "gwpki_mqtt"))
	}

	// max_packet_size: a 4 KiB publish closes the connection, not stored.
	cert2, _ := bootstrapGateway(t, ts, out, "GW-L2")
	lost2 := make(chan time.Time, 1)
	c2, err := ts.mqttClient(t, url, "GW-L2", cert2, lost2)
	if err != nil {
		t.Fatal(err)
	}
	c2.Publish("gw/GW-L2/telemetry", 1, false, strings.Repeat("x", 4096))
	select {
	case <-lost2:
	case <-time.After(10 * time.Second):
		t.Fatal("a packet above max_packet_size did not close the connection")
	}
	ts.apiGetJSON(t, admin, "/v1/devices/GW-L2/telemetry?limit=100", &page)
	if len(page.Messages) != 0 {
		t.Fatalf("stored %d messages of GW-L2; want none", len(page.Messages))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestServeRefusesBadMQTTLimits: nonsense in mqtt_limits stops gwpki serve
// at start with the key named.
func TestServeRefusesBadMQTTLimits(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(context.Background(), dir, InitOptions{Hostnames: []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	for key, v := range map[string]any{
		"publish_rate": -1, "publish_burst": -5, "max_clients": -1, "max_packet_size": 10,
		"receive_maximum": 70000, "session_expiry": "-1h", "connect_timeout": "1ms",
	} {
		editConfig(t, dir, func(cfg map[string]any) { cfg["mqtt_limits"] = map[string]any{key: v} })
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := Run(ctx, Options{Dir: dir, APIAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0",
			ReadyFile: filepath.Join(dir, "ready.json")})
		cancel()
		if err == nil || !strings.Contains(err.Error(), "mqtt_limits."+key) {
			t.Errorf("%s = %v: Run returned %v; want an error naming mqtt_limits.%s", key, v, err, key)
		}
	}
}
