package broker

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// connResult is how one TCP connection to the broker ended up, as counted
// by gwpki_mqtt_connections_total.
type connResult int

const (
	// connOK: the gateway's MQTT session was established.
	connOK connResult = iota
	// connHandshakeFailed: the TLS handshake failed before the CA was
	// asked (no or a foreign client certificate, old TLS, timeout).
	connHandshakeFailed
	// connHandshakeRefused: the CA refused the certificate (unknown,
	// revoked, a birth certificate, an unusable serial), or it was
	// revoked during the handshake.
	connHandshakeRefused
	// connConnectRefused: the handshake passed but no session came of it
	// (client ID not the serial, will elsewhere, the client limit, no or
	// a malformed CONNECT in time).
	connConnectRefused
	// connTooMany: closed at accept, over twice MaxClients open.
	connTooMany
	numConnResults
)

var connResultLabels = [numConnResults]string{
	"ok", "handshake_failed", "handshake_refused", "connect_refused", "too_many",
}

// metrics are the broker's Prometheus metrics. The counters are resolved
// once, so that counting is one atomic add; no label carries a serial.
type metrics struct {
	connections     [numConnResults]prometheus.Counter
	stored          [2]prometheus.Counter // by QoS
	notStored       [2]prometheus.Counter // by QoS: the sink failed
	revocationDrops prometheus.Counter
	collectors      []prometheus.Collector
}

func newMetrics(b *Broker) *metrics {
	conns := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gwpki_mqtt_connections_total",
		Help: "TCP connections to the MQTT listener by outcome: ok (session established), handshake_failed, handshake_refused (certificate refused by the CA), connect_refused, too_many.",
	}, []string{"result"})
	msgs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gwpki_mqtt_messages_total",
		Help: "MQTT messages from gateways (publishes and wills) handed to the telemetry store, by QoS and result (stored, failed).",
	}, []string{"qos", "result"})
	drops := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gwpki_mqtt_revocation_drops_total",
		Help: "MQTT sessions dropped because their certificate was revoked.",
	})
	m := &metrics{revocationDrops: drops}
	for i, l := range connResultLabels {
		m.connections[i] = conns.WithLabelValues(l)
	}
	for q := range 2 {
		m.stored[q] = msgs.WithLabelValues(fmt.Sprint(q), "stored")
		m.notStored[q] = msgs.WithLabelValues(fmt.Sprint(q), "failed")
	}
	m.collectors = []prometheus.Collector{
		conns, msgs, drops,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gwpki_mqtt_connected_gateways",
			Help: "Gateways with a live MQTT session.",
		}, func() float64 { return float64(b.Clients()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "gwpki_mqtt_publish_limited_total",
			Help: "MQTT publishes refused (not stored) because their gateway went over its publish rate limit.",
		}, func() float64 { return float64(b.PublishLimited()) }),
	}
	return m
}

// register adds the broker's metrics to reg.
func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register broker metrics: %w", err)
		}
	}
	return nil
}

func (m *metrics) conn(r connResult) { m.connections[r].Inc() }

// message counts one message handed to the sink at QoS qos.
func (m *metrics) message(qos byte, err error) {
	q := min(qos, 1)
	if err != nil {
		m.notStored[q].Inc()
		return
	}
	m.stored[q].Inc()
}
