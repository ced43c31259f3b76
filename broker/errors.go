package broker

import "errors"

var (
	// ErrClosed is returned by [Broker.Start] when the broker was closed
	// before or while starting.
	ErrClosed = errors.New("broker closed")

	// errNotGateway is returned by hooks for a client whose connection did
	// not come through the gateway listener (it never should).
	errNotGateway = errors.New("connection is not a gateway connection")

	// errClientID is returned by the connect hook when the MQTT client ID is
	// not the serial the certificate names.
	errClientID = errors.New("client id is not the certificate's gateway serial")

	// errWillTopic is returned by the connect hook when the will message is
	// addressed to a topic the gateway may not publish to.
	errWillTopic = errors.New("will topic not allowed")
)
