package ca

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.step.sm/crypto/jose"

	"github.com/gwpki/gwpki/internal/httpapi"
)

// StationRequest is who a line station's request to gwpki's own API is
// from, and for which gateway.
type StationRequest struct {
	Station string // the station's name
	Subject string // the token's subject: the gateway serial
}

// AuthenticateStation checks a line station's request to gwpki's API at
// path (such as "/v1/devices"): "Authorization: Bearer <token>", the token
// being a one-time JWT signed by a station's key, as for /1.0/sign, with an
// audience of this CA's API URL plus path. A token is spent by its first
// use. Errors are *httpapi.Error: 401 for a missing, invalid, expired or
// replayed token, 403 for a disabled station; the cause goes to the log.
func (a *Authority) AuthenticateStation(r *http.Request, path string) (StationRequest, error) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		return StationRequest{}, httpapi.Errorf(http.StatusUnauthorized, "station token required").
			WithHint("send Authorization: Bearer <one-time token signed by the station key>")
	}
	refuse := func(cause error) error {
		return &httpapi.Error{Status: http.StatusUnauthorized, Msg: "invalid station token", Err: cause}
	}
	st := a.current.Load()
	tok, p := st.station(raw)
	if p == nil {
		return StationRequest{}, refuse(errors.New("token is not signed by a station's key"))
	}
	if p.disabled {
		return StationRequest{}, &httpapi.Error{Status: http.StatusForbidden, Msg: "station " + p.Name + " is disabled"}
	}
	var claims stationClaims
	if err := tok.claims(p.Key, &claims); err != nil {
		return StationRequest{}, refuse(fmt.Errorf("station %s: %w", p.Name, err))
	}
	if err := claims.ValidateWithLeeway(jose.Expected{Issuer: p.Name, Time: time.Now()}, tokenLeeway); err != nil {
		return StationRequest{}, refuse(fmt.Errorf("station %s: token claims: %w", p.Name, err))
	}
	switch {
	case !matchesAudience(claims.Audience, apiAudiences(st.signAudiences, path)):
		return StationRequest{}, refuse(fmt.Errorf("station %s: token audience %v is not this CA's %s", p.Name, claims.Audience, path))
	case claims.Subject == "":
		return StationRequest{}, refuse(fmt.Errorf("station %s: token has no subject", p.Name))
	case claims.Expiry == nil:
		return StationRequest{}, refuse(fmt.Errorf("station %s: token has no expiry", p.Name))
	}
	first, err := a.db.UseStationToken(claims.Expiry.Time(), raw)
	if err != nil {
		return StationRequest{}, err
	}
	if !first {
		return StationRequest{}, refuse(errors.New("token already used"))
	}
	return StationRequest{Station: p.Name, Subject: claims.Subject}, nil
}

// apiAudiences turns the sign audiences (https://host[:port]/1.0/sign, for
// every name of the CA) into the same URLs for path.
func apiAudiences(sign []string, path string) []string {
	var out []string
	for _, s := range sign {
		if base, ok := strings.CutSuffix(s, "/1.0/sign"); ok {
			out = append(out, base+path)
		}
	}
	return out
}

// BirthCertificateInfo is what the CA vouches for about a birth certificate
// presented to it.
type BirthCertificateInfo struct {
	Serial   string // the certificate's serial, decimal
	Gateway  string // the gateway serial it names
	Station  string // the station (provisioner) that obtained it
	NotAfter time.Time
}

// VerifyBirthCertificate checks a PEM certificate a station presents as a
// gateway's birth certificate: byte for byte the one this CA issued and
// stored, a birth certificate, not revoked. Errors are *httpapi.Error (422)
// with the reason, or store errors.
func (a *Authority) VerifyBirthCertificate(_ context.Context, pemCert []byte) (BirthCertificateInfo, error) {
	refuse := func(format string, args ...any) error {
		return httpapi.Errorf(http.StatusUnprocessableEntity, format, args...)
	}
	block, _ := pem.Decode(pemCert)
	if block == nil || block.Type != "CERTIFICATE" {
		return BirthCertificateInfo{}, refuse("certificate is not a PEM CERTIFICATE")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return BirthCertificateInfo{}, refuse("certificate does not parse")
	}
	serial := leaf.SerialNumber.String()
	rec, err := a.db.Certificate(serial)
	switch {
	case errors.Is(err, ErrCertificateNotFound):
		return BirthCertificateInfo{}, refuse("certificate %s was not issued by this CA", serial)
	case err != nil:
		return BirthCertificateInfo{}, err
	case !bytes.Equal(rec.DER, block.Bytes):
		return BirthCertificateInfo{}, refuse("certificate %s is not the one this CA issued with that serial", serial)
	case rec.Revoked != nil:
		return BirthCertificateInfo{}, refuse("certificate %s is revoked", serial)
	case !rec.Birth:
		return BirthCertificateInfo{}, refuse("certificate %s is not a birth certificate", serial)
	}
	info := BirthCertificateInfo{Serial: serial, Gateway: rec.Gateway, NotAfter: rec.NotAfter}
	if rec.Provisioner != nil {
		info.Station = rec.Provisioner.Name
	}
	return info, nil
}
