package broker

import (
	"runtime"
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
// for it), and the queue writes the PUBACKs itself under the client's lock,
// the lock mochi's Client.WritePacket holds.
type ackQueue struct {
	slots chan struct{} // a slot per message in flight; full means OnPublish waits

	mu       sync.Mutex
	pending  []*pendingAck // oldest first
	failed   bool          // a message was not stored: nothing more is acknowledged
	flushing bool          // a goroutine is writing the due PUBACKs
}

// pendingAck is one message on its way to the store.
type pendingAck struct {
	packetID uint16
	ack      bool // QoS 1: a PUBACK is owed
	code     byte // its reason code: 0 success, else a refusal (MQTT 5 only)
	cut      bool // refused, and the client (MQTT 3.1.1) is to be disconnected here
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
	p := &pendingAck{packetID: pk.PacketID, ack: pk.FixedHeader.Qos > 0, button: button}
	if !b.enqueue(c.acks, p) {
		return
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		err := b.opts.Sink.Append(b.ctx, m)
		b.metrics.message(pk.FixedHeader.Qos, err)
		b.complete(cl, c, p, err)
	}()
}

// refuse queues p, a message that is not stored, so that its negative
// PUBACK (or, for p.cut, the disconnection) comes in order after the
// acknowledgements of the gateway's earlier messages.
func (b *Broker) refuse(cl *mqtt.Client, c *conn, p *pendingAck) {
	if b.enqueue(c.acks, p) {
		b.complete(cl, c, p, nil)
	}
}

// enqueue waits for a slot in q's window and appends p; it returns false
// if the broker closed meanwhile.
func (b *Broker) enqueue(q *ackQueue, p *pendingAck) bool {
	select {
	case q.slots <- struct{}{}:
	case <-b.ctx.Done():
		return false
	}
	q.mu.Lock()
	q.pending = append(q.pending, p)
	q.mu.Unlock()
	return true
}

// complete records the outcome of one append and sends, in order, the
// acknowledgements that are now due, all in one write. One commit of the
// store usually makes several of a gateway's messages durable at once and
// wakes their goroutines together: the first of them to get here becomes
// the flusher, yields so that the others can mark theirs done, and then
// writes every due PUBACK in one TLS record and one system call; the
// others only mark theirs. The flusher looks again before it stops, so
// nothing marked meanwhile is left behind.
func (b *Broker) complete(cl *mqtt.Client, c *conn, p *pendingAck, err error) {
	q := c.acks
	q.mu.Lock()
	p.done, p.err = true, err
	if q.flushing {
		q.mu.Unlock()
		return
	}
	q.flushing = true
	q.mu.Unlock()
	runtime.Gosched()
	for {
		q.mu.Lock()
		acks, pressed, stop := b.takeDue(c, q)
		if len(acks) == 0 && !pressed && stop == nil {
			q.flushing = false
			q.mu.Unlock()
			return
		}
		// Written under the queue's lock: the next flusher's PUBACKs
		// must not overtake these. They are the PUBACKs due before a
		// failure or a cut, if takeDue met one.
		written := true
		if len(acks) > 0 {
			if err := writeRaw(cl, acks); err != nil {
				q.failed, written = true, false
			}
		}
		if stop != nil {
			b.disconnect(cl, *stop)
		}
		q.mu.Unlock()
		if pressed && written {
			b.claimButton(c)
		}
	}
}

// takeDue removes the finished messages at the head of q and returns the
// PUBACKs they are owed, whether one was a claim button press, and, when
// it met a failed store or a cut, the reason to disconnect the client
// with once those PUBACKs are written. From then on q is failed: nothing
// more is acknowledged. q.mu is held.
func (b *Broker) takeDue(c *conn, q *ackQueue) (acks []byte, pressed bool, stop *packets.Code) {
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
			stop = &packets.ErrUnspecifiedError
		case head.cut:
			q.failed = true
			stop = &packets.ErrQuotaExceeded
		default:
			if head.ack {
				acks = appendPuback(acks, head.packetID, head.code)
			}
			pressed = pressed || head.button
		}
	}
	return acks, pressed, stop
}

// appendPuback appends a PUBACK for packetID with reason code code. A
// success is the same four bytes in MQTT 3.1.1 and 5 (MQTT 5 leaves out a
// success reason code without properties); a refusal, MQTT 5 only, adds
// the reason code and no property length ([MQTT-3.4.2.2.1]: a remaining
// length below 4 means no properties).
func appendPuback(b []byte, packetID uint16, code byte) []byte {
	if code == 0 {
		return append(b, packets.Puback<<4, 2, byte(packetID>>8), byte(packetID))
	}
	return append(b, packets.Puback<<4, 3, byte(packetID>>8), byte(packetID), code)
}

// writeRaw writes encoded packets to the client's connection under the
// client's lock, as mochi's Client.WritePacket does, so that they never
// interleave with a packet mochi writes.
func writeRaw(cl *mqtt.Client, b []byte) error {
	if cl.Closed() {
		return mqtt.ErrConnectionClosed
	}
	cl.Lock()
	defer cl.Unlock()
	_, err := cl.Net.Conn.Write(b)
	return err
}
