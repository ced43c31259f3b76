package broker

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gwpki/gwpki/telemetry"
)

// ackQueue lets a gateway keep several QoS 1 messages in flight: each is
// appended to the store at once, in its own goroutine, so that many of a
// gateway's messages share the store's group commits, and the PUBACKs go out
// in the order the PUBLISHes came ([MQTT-4.6.0-2]), each only after its own
// message and every earlier one is durable. Waiting for the store in mochi's
// read loop instead would allow one message per gateway per commit.
//
// mochi sends no acknowledgement of its own: OnPublish returns
// packets.ErrRejectPacket (server.go, Server.processPublish returns at once
// for it), and the queue writes the PUBACK with Client.WritePacket, which is
// safe from any goroutine (it holds the client's lock).
type ackQueue struct {
	slots chan struct{} // a slot per message in flight; full means OnPublish waits

	mu      sync.Mutex
	pending []*pendingAck // oldest first
	failed  bool          // a message was not stored: nothing more is acknowledged
}

// pendingAck is one message on its way to the store.
type pendingAck struct {
	packetID uint16
	ack      bool // QoS 1: a PUBACK is owed
	button   bool // a claim button press, reported once stored
	done     bool
	err      error
}

func newAckQueue(inflight int) *ackQueue {
	return &ackQueue{slots: make(chan struct{}, inflight)}
}

// store appends m for the client cl of c and acknowledges it when due. It
// blocks while the gateway already has its whole window in flight, which
// is the back-pressure an MQTT client expects.
func (b *Broker) store(cl *mqtt.Client, c *conn, pk packets.Packet, m telemetry.Message, button bool) {
	q := c.acks
	select {
	case q.slots <- struct{}{}:
	case <-b.ctx.Done():
		return
	}
	p := &pendingAck{packetID: pk.PacketID, ack: pk.FixedHeader.Qos > 0, button: button}
	q.mu.Lock()
	q.pending = append(q.pending, p)
	q.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		err := b.opts.Sink.Append(b.ctx, m)
		b.complete(cl, c, p, err)
	}()
}

// complete records the outcome of one append and sends, in order, the
// acknowledgements that are now due.
func (b *Broker) complete(cl *mqtt.Client, c *conn, p *pendingAck, err error) {
	q := c.acks
	q.mu.Lock()
	defer q.mu.Unlock()
	p.done, p.err = true, err
	for len(q.pending) > 0 && q.pending[0].done {
		head := q.pending[0]
		q.pending = q.pending[1:]
		<-q.slots
		switch {
		case q.failed:
		case head.err != nil:
			q.failed = true
			b.log.Warn("mqtt publish not stored", "gateway", c.gateway, "cert_serial", c.certSerial,
				"reason", "store failed", "error", head.err)
			// The gateway resends what was not acknowledged when it
			// reconnects.
			b.disconnect(cl)
		default:
			if head.ack {
				ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: head.packetID}
				if err := cl.WritePacket(ack); err != nil {
					q.failed = true
					continue
				}
			}
			if head.button {
				b.claimButton(c)
			}
		}
	}
}
