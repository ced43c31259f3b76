package ca

import (
	"fmt"
	"math"
	"time"
)

// MQTTLimits are the MQTT broker's limits as config.json spells them
// ("mqtt_limits"). Absent or zero fields keep the broker's defaults
// (package broker: 20000 clients, 64 KiB packets, 64 in flight, sessions
// kept 1h, 10s for the TLS handshake and 10s for CONNECT, 200 messages a
// second per gateway in bursts of 1000); docs/broker.md describes each.
type MQTTLimits struct {
	MaxClients       int      `json:"max_clients,omitempty"`
	MaxPacketSize    int      `json:"max_packet_size,omitempty"`
	ReceiveMaximum   int      `json:"receive_maximum,omitempty"`
	SessionExpiry    Duration `json:"session_expiry,omitzero"`
	HandshakeTimeout Duration `json:"handshake_timeout,omitzero"`
	ConnectTimeout   Duration `json:"connect_timeout,omitzero"`
	PublishRate      float64  `json:"publish_rate,omitempty"`
	PublishBurst     int      `json:"publish_burst,omitempty"`
}

// Validate refuses values that are not zero (the default) and not
// sensible, naming the config.json key.
func (l MQTTLimits) Validate() error {
	between := func(key string, v, lo, hi int) error {
		if v != 0 && (v < lo || v > hi) {
			return fmt.Errorf("mqtt_limits.%s is %d; want %d to %d, or 0 for the default", key, v, lo, hi)
		}
		return nil
	}
	duration := func(key string, d Duration, lo, hi time.Duration) error {
		if d.Duration != 0 && (d.Duration < lo || d.Duration > hi) {
			return fmt.Errorf("mqtt_limits.%s is %v; want %v to %v, or \"0s\" for the default", key, d.Duration, lo, hi)
		}
		return nil
	}
	for _, err := range []error{
		between("max_clients", l.MaxClients, 1, 1_000_000),
		// A gateway's CONNECT alone is a few hundred bytes; 268435455 is
		// the largest MQTT packet.
		between("max_packet_size", l.MaxPacketSize, 1024, 268435455),
		between("receive_maximum", l.ReceiveMaximum, 1, math.MaxUint16),
		duration("session_expiry", l.SessionExpiry, time.Second, math.MaxUint32*time.Second),
		duration("handshake_timeout", l.HandshakeTimeout, time.Second, 10*time.Minute),
		duration("connect_timeout", l.ConnectTimeout, time.Second, 10*time.Minute),
		between("publish_burst", l.PublishBurst, 1, 1_000_000),
	} {
		if err != nil {
			return err
		}
	}
	// JSON has no NaN or infinity; a fraction is one message every few
	// seconds (0.5: one every 2 s).
	if l.PublishRate != 0 && !(l.PublishRate > 0 && l.PublishRate <= 1_000_000) {
		return fmt.Errorf("mqtt_limits.publish_rate is %v; want more than 0 and at most 1000000 messages a second, or 0 for the default", l.PublishRate)
	}
	return nil
}
