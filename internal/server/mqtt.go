package server

import (
	"context"
	"crypto/tls"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gwpki/gwpki/broker"
	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/telemetry"
)

// newBroker builds the MQTT broker on addr: the API's server certificate,
// gateway client certificates checked by the CA (operational ones only),
// messages stored in sink. Revocations drop the revoked certificates'
// sessions, and claims reach their gateways on cmd/claimed, both before the
// request that caused them is answered (event subscribers run in the
// publisher's goroutine; the broker only closes sockets and queues a
// message there).
func newBroker(addr string, limits ca.MQTTLimits, auth *ca.Authority, serverTLS *tls.Config, sink telemetry.Sink,
	claims *claim.Claims, registry *claim.Registry, reg prometheus.Registerer, log *slog.Logger,
) (*broker.Broker, error) {
	opts := brokerLimits(limits)
	b, err := broker.New(broker.Options{
		Addr:             addr,
		MaxClients:       opts.MaxClients,
		MaxPacketSize:    opts.MaxPacketSize,
		ReceiveMaximum:   opts.ReceiveMaximum,
		SessionExpiry:    opts.SessionExpiry,
		HandshakeTimeout: opts.HandshakeTimeout,
		ConnectTimeout:   opts.ConnectTimeout,
		PublishRate:      opts.PublishRate,
		PublishBurst:     opts.PublishBurst,
		TLSConfig:        &tls.Config{GetCertificate: serverTLS.GetCertificate, ClientCAs: auth.ClientCAs()},
		Authenticate:     auth.AuthenticateOperational,
		Sink:             sink,
		OnClaimButton: func(ctx context.Context, gateway string) error {
			_, err := claims.PressButton(ctx, gateway, "mqtt")
			return err
		},
		Claimed: func(ctx context.Context, gateway string) (bool, error) {
			dev, err := registry.Device(ctx, gateway)
			if err != nil {
				return false, err
			}
			return dev.State == claim.StateClaimed, nil
		},
		Registerer: reg,
		Logger:     log,
	})
	if err != nil {
		return nil, err
	}
	auth.Revocations().Subscribe(func(ev ca.Revocation) {
		serials := make([]string, 0, len(ev.Certificates))
		for _, c := range ev.Certificates {
			serials = append(serials, c.Serial.String())
		}
		if n := b.DisconnectCertificates(serials); n > 0 {
			log.Info("revoked gateways disconnected", "sessions", n)
		}
	})
	claims.Events().Subscribe(func(ev claim.Event) {
		if ev.Kind == claim.EventClaimed {
			b.NotifyClaimed(ev.Serial)
		}
	})
	return b, nil
}

// brokerLimits carries config.json's mqtt_limits (checked by
// MQTTLimits.Validate when the configuration is read) into broker.Options;
// zero stays zero: the broker's default.
func brokerLimits(l ca.MQTTLimits) broker.Options {
	return broker.Options{
		MaxClients:       l.MaxClients,
		MaxPacketSize:    l.MaxPacketSize,
		ReceiveMaximum:   l.ReceiveMaximum,
		SessionExpiry:    l.SessionExpiry.Duration,
		HandshakeTimeout: l.HandshakeTimeout.Duration,
		ConnectTimeout:   l.ConnectTimeout.Duration,
		PublishRate:      l.PublishRate,
		PublishBurst:     l.PublishBurst,
	}
}
