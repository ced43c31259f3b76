package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/gwpki/gwpki/bootstrap"
	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/internal/httpapi"
)

// claimLimits turns config.json's claim_limits into the claim package's;
// zero fields keep their defaults.
func claimLimits(c ca.ClaimLimits) claim.Limits {
	return claim.Limits{
		GatewayWindow: c.GatewayWindow.Duration, GatewayFree: c.GatewayFree,
		GatewayBackoff: c.GatewayBackoff.Duration, GatewayMaxBackoff: c.GatewayMaxBackoff.Duration,
		GatewayLock: c.GatewayLock,
		UserWindow:  c.UserWindow.Duration, UserMax: c.UserMax,
		SourceWindow: c.SourceWindow.Duration, SourceMax: c.SourceMax,
	}
}

// gatewayAuth authenticates a gateway's own request (the claim button) by
// its TLS client certificate.
func gatewayAuth(auth *ca.Authority) claim.GatewayAuth {
	return func(r *http.Request) (string, error) {
		id, err := auth.AuthenticateGateway(r)
		if err != nil {
			return "", err
		}
		return id.Gateway, nil
	}
}

// ownsRevocationTarget keeps operators to their organisation's gateways on
// the revocation routes: /v1/devices/{serial}/revoke names a gateway,
// /v1/certificates/{serial}/revoke a certificate, whose gateway decides.
// Another organisation's gateway is answered 404 like an unknown one; a
// certificate of no gateway (a server's) is for admins only.
func ownsRevocationTarget(auth *ca.Authority, registry *claim.Registry) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			user, ok := claim.UserFromContext(r.Context())
			if !ok {
				httpapi.WriteError(w, r, errors.New("revoke: no user in the request context"))
				return
			}
			if user.Role == claim.RoleAdmin {
				next.ServeHTTP(w, r)
				return
			}
			gateway := chi.URLParam(r, "serial")
			if chi.RouteContext(r.Context()).RoutePattern() == "/v1/certificates/{serial}/revoke" {
				serial, err := ca.ParseCertSerial(gateway)
				if err != nil {
					next.ServeHTTP(w, r) // the handler explains the bad serial
					return
				}
				gateway, err = auth.CertificateGateway(serial.String())
				switch {
				case errors.Is(err, ca.ErrCertificateNotFound):
					next.ServeHTTP(w, r) // the handler answers 404 for it
					return
				case err != nil:
					httpapi.WriteError(w, r, err)
					return
				case gateway == "":
					httpapi.WriteError(w, r, httpapi.Errorf(http.StatusForbidden,
						"certificate %s is no gateway's: only an admin may revoke it", serial))
					return
				}
			}
			visible, err := registry.Visible(r.Context(), user, gateway)
			switch {
			case err != nil:
				httpapi.WriteError(w, r, err)
			case !visible:
				httpapi.WriteError(w, r, httpapi.Errorf(http.StatusNotFound, "no such device").
					WithHint("gwpki devices lists your organisation's gateways"))
			default:
				next.ServeHTTP(w, r)
			}
		})
	}
}

// registered returns the serial of a gateway's registered birth
// certificate, for bootstrap; ok is false when it is not registered.
func registered(registry *claim.Registry) bootstrap.Registered {
	return func(ctx context.Context, gateway string) (string, bool, error) {
		dev, err := registry.Device(ctx, gateway)
		switch {
		case errors.Is(err, claim.ErrDeviceNotFound):
			return "", false, nil
		case err != nil:
			return "", false, err
		}
		return dev.IDevIDSerial, true, nil
	}
}

// gatewayClaimed tells the CA whether a gateway is claimed, so that its
// sign endpoint refuses a station's reissue of it. A gateway not
// registered is not claimed.
func gatewayClaimed(registry *claim.Registry) ca.ClaimedFunc {
	return func(ctx context.Context, gateway string) (bool, error) {
		dev, err := registry.Device(ctx, gateway)
		switch {
		case errors.Is(err, claim.ErrDeviceNotFound):
			return false, nil
		case err != nil:
			return false, err
		}
		return dev.State == claim.StateClaimed, nil
	}
}

// mqttPool is the pool of broker endpoints gateways are sent to: the
// configured one, or this server's broker at own.
func mqttPool(cfg *ca.Config, own string) (*bootstrap.Pool, error) {
	endpoints := cfg.MQTTEndpoints
	if len(endpoints) == 0 {
		endpoints = []string{own}
	}
	pool, err := bootstrap.NewPool(endpoints)
	if err != nil {
		return nil, fmt.Errorf("config mqtt_endpoints: %w", err)
	}
	return pool, nil
}
