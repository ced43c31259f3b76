package ca

import (
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/gwpki/gwpki/internal/httpapi"
)

// RevokeRequest is the optional body of the revocation routes.
type RevokeRequest struct {
	Reason string `json:"reason,omitempty"` // RFC 5280 name or code; default unspecified
}

// RevokeResponse answers a revocation.
type RevokeResponse struct {
	Gateway        string          `json:"gateway,omitempty"`
	Revoked        []RevokedSerial `json:"revoked"`
	AlreadyRevoked int             `json:"already_revoked"`
}

// RevokedSerial is one certificate in a [RevokeResponse].
type RevokedSerial struct {
	Serial    string    `json:"serial"`     // decimal, as step-ca names it
	SerialHex string    `json:"serial_hex"` // as openssl prints it
	Gateway   string    `json:"gateway,omitempty"`
	RevokedAt time.Time `json:"revoked_at"`
	Reason    string    `json:"reason"`
}

// RevocationRoutes mounts the operators' revocation API behind mw (the
// caller's authentication); actor names the authenticated caller for the
// audit log:
//
//	POST /v1/devices/{serial}/revoke       every certificate of a gateway
//	POST /v1/certificates/{serial}/revoke  one certificate (decimal, 0x-hex or colon-hex serial)
func (a *Authority) RevocationRoutes(r chi.Router, actor func(*http.Request) string, mw ...func(http.Handler) http.Handler) {
	r.With(mw...).Post("/v1/devices/{serial}/revoke", func(w http.ResponseWriter, r *http.Request) {
		reason, ok := readRevokeRequest(w, r)
		if !ok {
			return
		}
		gateway := chi.URLParam(r, "serial")
		ev, already, err := a.db.RevokeGateway(r.Context(), gateway, reason, actor(r), remoteHost(r))
		switch {
		case errors.Is(err, ErrGatewayNotFound):
			httpapi.WriteError(w, r, httpapi.Errorf(http.StatusNotFound, "no certificate of gateway %s", gateway).
				WithHint("a certificate serial is revoked at /v1/certificates/{serial}/revoke (gwpki revoke does both)"))
		case err != nil:
			httpapi.WriteError(w, r, err)
		default:
			httpapi.WriteJSON(w, http.StatusOK, revokeResponse(gateway, ev, already))
		}
	})
	r.With(mw...).Post("/v1/certificates/{serial}/revoke", func(w http.ResponseWriter, r *http.Request) {
		reason, ok := readRevokeRequest(w, r)
		if !ok {
			return
		}
		serial, err := ParseCertSerial(chi.URLParam(r, "serial"))
		if err != nil {
			httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, "%s", err).
				WithHint("give the serial in decimal, as 0x-prefixed hex, or as colon-separated hex"))
			return
		}
		ev, err := a.db.RevokeCertificate(r.Context(), serial, reason, actor(r), remoteHost(r))
		switch {
		case errors.Is(err, ErrCertificateNotFound):
			httpapi.WriteError(w, r, httpapi.Errorf(http.StatusNotFound, "no certificate with serial %s", serial))
		case errors.Is(err, ErrAlreadyRevoked):
			httpapi.WriteError(w, r, httpapi.Errorf(http.StatusConflict, "certificate %s is already revoked", serial))
		case err != nil:
			httpapi.WriteError(w, r, err)
		default:
			httpapi.WriteJSON(w, http.StatusOK, revokeResponse("", ev, 0))
		}
	})
}

func readRevokeRequest(w http.ResponseWriter, r *http.Request) (Reason, bool) {
	var req RevokeRequest
	if r.ContentLength != 0 {
		if err := httpapi.DecodeJSON(w, r, &req); err != nil {
			httpapi.WriteError(w, r, err)
			return 0, false
		}
	}
	reason, err := ParseReason(req.Reason)
	if err != nil {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, "%s", err))
		return 0, false
	}
	return reason, true
}

func revokeResponse(gateway string, ev Revocation, already int) RevokeResponse {
	resp := RevokeResponse{Gateway: gateway, Revoked: []RevokedSerial{}, AlreadyRevoked: already}
	for _, c := range ev.Certificates {
		resp.Revoked = append(resp.Revoked, RevokedSerial{
			Serial: c.Serial.String(), SerialHex: fmt.Sprintf("%X", c.Serial), Gateway: c.Gateway,
			RevokedAt: c.RevokedAt, Reason: c.Reason.String(),
		})
	}
	return resp
}

// ParseCertSerial reads a certificate serial number as people copy it: in
// decimal (step-ca), 0x-prefixed hex, or colon-separated hex (openssl x509
// -text). Plain hex without 0x is read as decimal when it can be.
func ParseCertSerial(s string) (*big.Int, error) {
	s = strings.TrimSpace(s)
	base := 10
	switch {
	case strings.HasPrefix(s, "0x"), strings.HasPrefix(s, "0X"):
		s, base = s[2:], 16
	case strings.Contains(s, ":"):
		s, base = strings.ReplaceAll(s, ":", ""), 16
	}
	if s == "" || len(s) > 80 {
		return nil, fmt.Errorf("certificate serial must be 1 to 80 digits")
	}
	n, ok := new(big.Int).SetString(s, base)
	if !ok || n.Sign() <= 0 {
		return nil, fmt.Errorf("%q is not a certificate serial number", s)
	}
	return n, nil
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
