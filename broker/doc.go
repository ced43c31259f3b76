// Package broker implements gwpki's MQTT broker for gateways: mochi-mqtt
// behind a mutual-TLS listener that admits only gateways holding a current
// operational certificate.
//
// How the parts fit:
//
//   - listener.go accepts TCP connections, runs the TLS handshake under a
//     deadline (TLS 1.2 or newer, client certificate required and verified,
//     revocation checked by [Options.Authenticate] in VerifyConnection) and
//     hands the connection to mochi with a second deadline for CONNECT.
//   - hook.go is the one mochi hook that decides everything else: the client
//     ID must be the gateway serial the certificate names, a gateway
//     publishes only to gw/<serial>/telemetry[/...] and gw/<serial>/state and
//     subscribes only under gw/<serial>/cmd/, and every accepted publish is
//     appended to [Options.Sink] before mochi may acknowledge it.
//   - topics.go holds the topic rules as pure functions.
//   - broker.go holds the options, the limits and the registry of live
//     connections by certificate serial that [Broker.DisconnectCertificates]
//     uses when a certificate is revoked.
//
// docs/broker.md describes what the broker accepts and refuses for operators
// and firmware authors.
package broker
