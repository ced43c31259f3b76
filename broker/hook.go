package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gwpki/gwpki/telemetry"
)

// hook is the broker's only mochi hook. mochi ORs OnConnectAuthenticate and
// OnACLCheck across hooks, so this must stay the only hook providing them;
// never add auth.AllowHook.
type hook struct {
	mqtt.HookBase
	b *Broker
}

func (h *hook) ID() string { return "gwpki-gateways" }

func (h *hook) Provides(e byte) bool {
	switch e {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablish,
		mqtt.OnDisconnect, mqtt.OnPublish, mqtt.OnSubscribed, mqtt.OnWill:
		return true
	}
	return false
}

// Init takes the *Broker the hook serves.
func (h *hook) Init(config any) error {
	b, ok := config.(*Broker)
	if !ok || b == nil {
		return fmt.Errorf("broker hook: config is %T, want *broker.Broker", config)
	}
	h.b = b
	return nil
}

// gatewayConn returns the connection of a network client that passed the
// certificate check.
func gatewayConn(cl *mqtt.Client) (*conn, bool) {
	c, ok := cl.Net.Conn.(*conn)
	if !ok || c.gateway == "" {
		return nil, false
	}
	return c, true
}

// OnConnect clears the CONNECT deadline (mochi sets its keep-alive deadline
// right after this hook returns: server.go, Server.attachClient calls
// cl.refreshDeadline after hooks.OnConnect) and refuses, with a CONNACK that
// says why, a client ID other than the certificate's gateway serial and a
// will addressed anywhere but the gateway's own state or telemetry topics.
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	c, ok := gatewayConn(cl)
	if !ok {
		return errNotGateway
	}
	_ = c.raw.SetDeadline(time.Time{})
	if pk.Connect.ClientIdentifier != c.gateway {
		h.b.log.Warn("mqtt connect refused", "gateway", c.gateway, "cert_serial", c.certSerial,
			"client_id", pk.Connect.ClientIdentifier, "reason", errClientID.Error())
		_ = h.b.server.SendConnack(cl, packets.ErrClientIdentifierNotValid, false, nil)
		return errClientID
	}
	if pk.Connect.WillFlag && !mayPublish(c.gateway, pk.Connect.WillTopic) {
		h.b.log.Warn("mqtt connect refused", "gateway", c.gateway, "cert_serial", c.certSerial,
			"topic", pk.Connect.WillTopic, "reason", errWillTopic.Error())
		code := packets.ErrNotAuthorized
		if cl.Properties.ProtocolVersion < 5 {
			code = packets.ErrBadUsernameOrPassword // sent as MQTT 3's 0x05 "not authorized"
		}
		_ = h.b.server.SendConnack(cl, code, false, nil)
		return errWillTopic
	}
	return nil
}

// OnConnectAuthenticate admits a client whose certificate passed
// Authenticate and whose client ID is that gateway's serial (checked again
// here so that this, the only authentication hook, decides on its own).
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	c, ok := gatewayConn(cl)
	return ok && !c.revoked.Load() && cl.ID == c.gateway && pk.Connect.ClientIdentifier == c.gateway
}

// OnACLCheck lets a gateway publish to its telemetry and state topics and
// subscribe to (and receive) its cmd/ topics, nothing else.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	c, ok := gatewayConn(cl)
	if !ok {
		return false
	}
	if write {
		if mayPublish(c.gateway, topic) {
			return true
		}
		h.b.log.Warn("mqtt publish refused", "gateway", c.gateway, "cert_serial", c.certSerial,
			"topic", topic, "reason", "topic not allowed")
		return false
	}
	if maySubscribe(c.gateway, topic) {
		return true
	}
	h.b.log.Warn("mqtt subscribe refused", "gateway", c.gateway, "cert_serial", c.certSerial,
		"topic", topic, "reason", "topic not allowed")
	return false
}

// OnSessionEstablish records the live session. mochi calls it after
// authentication and before the CONNACK (server.go, Server.attachClient), so
// Online is true by the time the gateway learns it is connected. If the
// CONNACK cannot be written mochi returns without OnDisconnect; the
// listener's untrack forgets the session then.
func (h *hook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	c, ok := gatewayConn(cl)
	if !ok {
		return
	}
	h.b.established(c)
	h.b.metrics.conn(connOK)
	h.b.log.Info("mqtt gateway connected", "gateway", c.gateway, "cert_serial", c.certSerial,
		"remote", cl.Net.Remote, "protocol", cl.Properties.ProtocolVersion)
}

// OnDisconnect forgets the live session (unless a newer connection of the
// same gateway took it over).
func (h *hook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	c, ok := gatewayConn(cl)
	if !ok {
		return
	}
	h.b.ended(c)
	if err == nil {
		// Stopped by the broker (a failed store, a publish over the rate
		// limit) or by a DISCONNECT: mochi keeps the cause.
		err = cl.StopCause()
	}
	h.b.log.Info("mqtt gateway disconnected", "gateway", c.gateway, "cert_serial", c.certSerial,
		"reason", fmt.Sprint(err))
}

// OnPublish hands an accepted publish to the store and returns
// packets.ErrRejectPacket, so that mochi neither acknowledges nor routes it:
// the gateway's ackQueue sends the PUBACK once the message is durable (see
// acks.go). In mochi v2.7.9, server.go, Server.processPublish returns at
// once for ErrRejectPacket; any other error except packets.CodeSuccessIgnore
// would be acknowledged as success to an MQTT 3 client, stored or not.
// Gateways talk only to the server, so nothing is routed or retained.
// A publish over the gateway's rate is refused (refuseOverLimit) and not
// stored.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil // the broker's own cmd/ publishes (NotifyClaimed)
	}
	c, ok := gatewayConn(cl)
	if !ok || c.cut.Load() {
		// c.cut: an MQTT 3.1.1 client went over its rate and is being
		// disconnected; nothing it sends from then on is stored.
		return pk, packets.ErrRejectPacket
	}
	// mochi's ACL check ran on the topic as sent; check again after topic
	// alias resolution (there are none while TopicAliasMaximum is 0).
	if !mayPublish(c.gateway, pk.TopicName) {
		h.b.log.Warn("mqtt publish refused", "gateway", c.gateway, "cert_serial", c.certSerial,
			"topic", pk.TopicName, "reason", "topic not allowed")
		return pk, packets.ErrRejectPacket
	}
	// The gateway's rate limit (c.bucket is set when its session is
	// established, before mochi reads any PUBLISH).
	now := time.Now()
	if c.bucket == nil {
		return pk, packets.ErrRejectPacket
	}
	if !c.bucket.take(now, h.b.limits.rate, h.b.limits.burst) {
		h.b.refuseOverLimit(cl, c, pk)
		return pk, packets.ErrRejectPacket
	}
	m := telemetry.Message{
		Gateway: c.gateway,
		Topic:   pk.TopicName,
		Time:    now.UTC(),
		Payload: bytes.Clone(pk.Payload),
	}
	button := pk.TopicName == stateTopic(c.gateway) && claimButtonPressed(pk.Payload)
	h.b.store(cl, c, pk, m, button)
	return pk, packets.ErrRejectPacket
}

// claimButtonPressed reports whether a state payload is
// {"claim_button":"pressed"}.
func claimButtonPressed(payload []byte) bool {
	var s struct {
		ClaimButton string `json:"claim_button"`
	}
	return json.Unmarshal(payload, &s) == nil && s.ClaimButton == "pressed"
}

// claimButton reports a press to OnClaimButton, in the gateway's read loop:
// presses are rare and this keeps them in order with the gateway's other
// messages.
func (b *Broker) claimButton(c *conn) {
	if b.opts.OnClaimButton == nil {
		return
	}
	if err := b.opts.OnClaimButton(b.ctx, c.gateway); err != nil {
		b.log.Warn("claim button not handled", "gateway", c.gateway, "cert_serial", c.certSerial, "error", err)
		return
	}
	b.log.Info("claim button pressed", "gateway", c.gateway, "cert_serial", c.certSerial)
}

// OnSubscribed tells a claimed gateway so as soon as it subscribes to a
// filter that covers gw/<serial>/cmd/claimed: it may have been offline when
// it was claimed.
func (h *hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	c, ok := gatewayConn(cl)
	if !ok || h.b.opts.Claimed == nil {
		return
	}
	topic := claimedTopic(c.gateway)
	for i, f := range pk.Filters {
		if i < len(codes) && codes[i] < packets.ErrUnspecifiedError.Code && matchFilter(f.Filter, topic) {
			h.b.tellIfClaimed(c)
			return
		}
	}
}

// tellIfClaimed asks Claimed and publishes cmd/claimed, in the background:
// mochi calls OnSubscribed before it writes the SUBACK.
func (b *Broker) tellIfClaimed(c *conn) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		claimed, err := b.opts.Claimed(b.ctx, c.gateway)
		if err != nil {
			if !errors.Is(err, b.ctx.Err()) {
				b.log.Warn("claim state unknown", "gateway", c.gateway, "error", err)
			}
			return
		}
		if claimed {
			b.NotifyClaimed(c.gateway)
		}
	}()
}

// OnWill stores the gateway's will ({"state":"offline"} on its state topic;
// the connect hook refused any other topic) when mochi sends it, and clears
// its retain flag: nothing is retained.
func (h *hook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	will.Retain = false
	c, ok := gatewayConn(cl)
	if !ok || !mayPublish(c.gateway, will.TopicName) {
		return will, nil
	}
	m := telemetry.Message{
		Gateway: c.gateway,
		Topic:   will.TopicName,
		Time:    time.Now().UTC(),
		Payload: bytes.Clone(will.Payload),
	}
	err := h.b.opts.Sink.Append(h.b.ctx, m)
	h.b.metrics.message(will.Qos, err)
	if err != nil {
		h.b.log.Warn("mqtt will not stored", "gateway", c.gateway, "cert_serial", c.certSerial, "error", err)
	}
	return will, nil
}
