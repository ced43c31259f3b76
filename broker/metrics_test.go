package broker

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// counter reads one of the broker's counters.
func counter(c prometheus.Counter) int {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return int(m.GetCounter().GetValue())
}

// TestMetrics drives the counters through real MQTT clients: sessions
// established and refused at the handshake and at CONNECT, messages stored
// at QoS 0 and 1 and one the store failed, a session dropped by a
// revocation; and the metrics are on the registry given in Options.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(o *Options) { o.Registerer = reg })
	m := e.broker.metrics

	gw := e.gateway(t, "GW0101")
	c := e.connect(t, e.pahoOptions(gw, "GW0101"))
	eventually(t, 5*time.Second, "connected gauge at 1", func() bool {
		return gaugeValue(t, reg, "gwpki_mqtt_connected_gateways") == 1
	})
	for _, qos := range []byte{0, 1, 1} {
		tok := c.Publish("gw/GW0101/telemetry", qos, false, "x")
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish at QoS %d: %v", qos, tok.Error())
		}
	}
	eventually(t, 5*time.Second, "three messages counted", func() bool {
		return counter(m.stored[0]) == 1 && counter(m.stored[1]) == 2
	})

	// Refused at the handshake: unknown to the CA, revoked; failed: no
	// client certificate.
	unknown := issue(t, e.ca, "GW0102", false)
	revoked := e.gateway(t, "GW0103")
	e.auth.revoke(revoked)
	for _, l := range []*leaf{unknown, revoked, nil} {
		// (paho would try twice, MQTT 3.1.1 then 3.1.)
		c, err := tls.Dial("tcp", e.broker.Addr().String(), e.clientTLS(l))
		if err == nil {
			c.Write(connectPacket("GW0102", 30))
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = c.Read(make([]byte, 1))
			c.Close()
		}
		if err == nil {
			t.Fatal("handshake accepted")
		}
	}
	eventually(t, 5*time.Second, "handshake refusals counted", func() bool {
		return counter(m.connections[connHandshakeRefused]) == 2 && counter(m.connections[connHandshakeFailed]) == 1
	})

	// Refused at CONNECT: a client ID that is not the serial.
	other := e.gateway(t, "GW0104")
	conn := e.dialTLS(t, other)
	if _, err := conn.Write(connectPacket("GW0101", 30)); err != nil {
		t.Fatal(err)
	}
	if code := readConnack(t, conn); code != 0x02 {
		t.Fatalf("CONNACK %#x; want 0x02", code)
	}
	eventually(t, 5*time.Second, "CONNECT refusal counted", func() bool {
		return counter(m.connections[connConnectRefused]) == 1
	})

	// A store failure is counted and drops the gateway.
	e.sink.fail.Store(true)
	c.Publish("gw/GW0101/telemetry", 1, false, "y")
	eventually(t, 5*time.Second, "failed message counted", func() bool { return counter(m.notStored[1]) == 1 })
	eventually(t, 5*time.Second, "gateway dropped", func() bool { return e.broker.Clients() == 0 })
	e.sink.fail.Store(false)

	// A revocation drops a live session.
	e.connect(t, e.pahoOptions(other, "GW0104"))
	eventually(t, 5*time.Second, "GW0104 online", func() bool { return e.broker.Online("GW0104") })
	if n := e.broker.DisconnectCertificates([]string{other.Serial}); n != 1 {
		t.Fatalf("DisconnectCertificates = %d; want 1", n)
	}
	if got := counter(m.revocationDrops); got != 1 {
		t.Errorf("revocation drops = %d; want 1", got)
	}
	if got := counter(m.connections[connOK]); got != 2 {
		t.Errorf("connections ok = %d; want 2", got)
	}
	eventually(t, 5*time.Second, "connected gauge at 0", func() bool {
		return gaugeValue(t, reg, "gwpki_mqtt_connected_gateways") == 0
	})

	want := map[string]bool{
		"gwpki_mqtt_connected_gateways": true, "gwpki_mqtt_connections_total": true, "gwpki_mqtt_messages_total": true,
		"gwpki_mqtt_revocation_drops_total": true, "gwpki_mqtt_publish_limited_total": true,
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		delete(want, mf.GetName())
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if lp.GetName() != "result" && lp.GetName() != "qos" {
					t.Errorf("%s has label %s", mf.GetName(), lp.GetName())
				}
			}
		}
	}
	if len(want) > 0 {
		t.Errorf("registry lacks %v", want)
	}
}

// gaugeValue gathers reg and returns the value of the unlabelled gauge name.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

// TestMetricsTooManyConnections: TCP connections over twice MaxClients are
// closed at accept and counted.
func TestMetricsTooManyConnections(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxClients = 1 })
	for range 2 {
		c, err := net.Dial("tcp", e.broker.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	c, err := net.Dial("tcp", e.broker.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if closed, _ := closedWithin(c, 5*time.Second); !closed {
		t.Fatal("third connection not closed")
	}
	if got := counter(e.broker.metrics.connections[connTooMany]); got != 1 {
		t.Errorf("too_many = %d; want 1", got)
	}
}
