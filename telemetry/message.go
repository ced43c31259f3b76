// Package telemetry stores what gateways publish over MQTT: one bbolt file
// of its own, time-partitioned so that writes append and retention drops
// whole partitions, with a per-gateway index, committed in groups so that a
// QoS 1 PUBACK can wait for durability without one fsync per message.
package telemetry

import (
	"context"
	"time"
)

// Message is one stored publish.
type Message struct {
	// Gateway is the publishing gateway's serial (its MQTT client ID).
	Gateway string `json:"gateway"`
	// Topic is the full MQTT topic, gw/<serial>/telemetry[/...] or
	// gw/<serial>/state.
	Topic string `json:"topic"`
	// Time is when the broker received it (UTC).
	Time time.Time `json:"time"`
	// Payload is the message body as published.
	Payload []byte `json:"payload"`
}

// Sink takes messages for storage. Append returns once the message is
// durable (or with an error, when it is not stored): the broker acknowledges
// a QoS 1 publish only after Append returned nil.
type Sink interface {
	Append(ctx context.Context, m Message) error
}
