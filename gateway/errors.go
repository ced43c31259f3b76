package gateway

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrRefused is wrapped by the errors of [Agent]'s bootstrap and renewal
// when the server answers 401 or 403: it will not issue a certificate to
// this gateway with the credential presented (no client certificate, or a
// revoked, unknown, decommissioned or foreign gateway).
var ErrRefused = errors.New("refused by the server")

// ErrCertificateRefused is wrapped by the error of an MQTT connection
// attempt that the broker refused because of the gateway's certificate: a
// TLS alert about the certificate, or a CONNACK "not authorized" or "bad
// user name or password". The agent answers it by bootstrapping again.
var ErrCertificateRefused = errors.New("broker refused the certificate")

// ServerError is an answer of the server other than 200 OK, with the
// server's public message and hint when it sent them.
type ServerError struct {
	// Op is what the gateway asked: "bootstrap" or "renew".
	Op     string
	Status int
	// Message and Hint are the {"error","hint"} of the answer (step-ca's
	// routes say "message" instead of "error").
	Message, Hint string
}

func (e *ServerError) Error() string {
	msg := fmt.Sprintf("%s: server answered %d %s", e.Op, e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.Hint != "" {
		msg += " (hint: " + e.Hint + ")"
	}
	return msg
}

// Unwrap returns [ErrRefused] for 401 and 403.
func (e *ServerError) Unwrap() error {
	if e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden {
		return ErrRefused
	}
	return nil
}
