package ca

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gwpki/gwpki/internal/httpapi"
)

// GatewayIdentity is a gateway authenticated by its TLS client certificate.
type GatewayIdentity struct {
	// Gateway is the gateway serial the certificate names.
	Gateway string
	// Serial is the certificate's serial number, decimal.
	Serial string
	// Birth is set when the certificate is the gateway's birth
	// certificate (IDevID), unset for an operational one.
	Birth bool
}

// AuthenticateGateway authenticates a gateway's own request on the API
// listener by its TLS client certificate. The handshake has verified the
// chain to this CA and the validity period already ([Authority.TLSConfig]);
// this checks that the leaf is the very certificate this CA issued and
// stored, names a gateway and is not revoked. Its errors are *httpapi.Error
// (401 without a client certificate, 403 for one it refuses), or store
// errors.
func (a *Authority) AuthenticateGateway(r *http.Request) (GatewayIdentity, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || len(r.TLS.VerifiedChains) == 0 {
		return GatewayIdentity{}, httpapi.Errorf(http.StatusUnauthorized, "no gateway client certificate").
			WithHint("connect with the gateway's certificate and key (idevid.crt and idevid.key of its bundle)")
	}
	leaf := r.TLS.PeerCertificates[0]
	serial := leaf.SerialNumber.String()
	rec, err := a.db.Certificate(serial)
	switch {
	case errors.Is(err, ErrCertificateNotFound):
		return GatewayIdentity{}, httpapi.Errorf(http.StatusForbidden, "client certificate %s was not issued by this CA", serial)
	case err != nil:
		return GatewayIdentity{}, err
	case !bytes.Equal(rec.DER, leaf.Raw):
		return GatewayIdentity{}, httpapi.Errorf(http.StatusForbidden, "client certificate %s is not the one this CA issued with that serial", serial)
	case rec.Revoked != nil:
		return GatewayIdentity{}, httpapi.Errorf(http.StatusForbidden, "client certificate %s is revoked", serial)
	case rec.Gateway == "":
		return GatewayIdentity{}, httpapi.Errorf(http.StatusForbidden, "client certificate %s is not a gateway's", serial)
	}
	return GatewayIdentity{Gateway: rec.Gateway, Serial: serial, Birth: rec.Birth}, nil
}

// RevokeOperational revokes the gateway's certificates other than its birth
// certificate, reason affiliationChanged, on behalf of actor: what an
// unclaim does, so that the gateway must bootstrap again. It returns the
// serials revoked (decimal); a gateway with no operational certificate
// revokes none.
func (a *Authority) RevokeOperational(ctx context.Context, gateway, actor, source string) ([]string, error) {
	ev, err := a.db.RevokeOperational(ctx, gateway, ReasonAffiliationChanged, actor, source)
	if errors.Is(err, ErrGatewayNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("revoke operational certificates of %s: %w", gateway, err)
	}
	out := make([]string, 0, len(ev.Certificates))
	for _, c := range ev.Certificates {
		out = append(out, c.Serial.String())
	}
	return out, nil
}

// CertificateGateway returns the gateway serial a stored certificate names,
// "" for a certificate of no gateway, or an error wrapping
// [ErrCertificateNotFound].
func (a *Authority) CertificateGateway(serial string) (string, error) {
	rec, err := a.db.Certificate(serial)
	if err != nil {
		return "", err
	}
	return rec.Gateway, nil
}
