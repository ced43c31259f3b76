// Package gateway is the device side of gwpki: what a gateway provisioned
// by gwpki provision does with its bundle, OUT/<serial>/.
//
// [LoadBundle] reads the bundle; [Bundle.DisplayCode] computes the claim
// code the gateway shows on its console; [Bundle.PressClaimButton] reports a
// press of its claim button over HTTPS with the birth certificate (IDevID).
//
// [Agent] is the gateway's life after that: it bootstraps an operational
// certificate with its IDevID (POST /v1/bootstrap, a fresh key made on the
// gateway), keeps it in the bundle (operational.key, operational.crt,
// bootstrap.json), speaks MQTT 3.1.1 over mutual TLS to the broker the
// bootstrap answer names, publishes simulated pump telemetry, prints its
// claim code until the server says it is claimed, reports claim button
// presses, renews its certificate through step-ca's /1.0/renew, and
// reconnects with jittered exponential back-off, bootstrapping again when
// the broker refuses its certificate. gwpki gateway sim runs thousands of
// agents in one process.
package gateway
