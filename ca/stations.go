package ca

import (
	"context"
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/smallstep/certificates/authority/provisioner"
	"github.com/smallstep/certificates/errs"
	"go.step.sm/crypto/jose"
)

// Station is one production-line station: a JWK provisioner whose key only
// the station holds.
type Station struct {
	Name      string           `json:"name"`
	Key       *jose.JSONWebKey `json:"key"` // public key
	Disabled  bool             `json:"disabled,omitempty"`
	CreatedAt time.Time        `json:"created_at"`
}

type stationList struct {
	Stations []Station `json:"stations"`
}

// Stations returns the stations registered in the data directory dir.
func Stations(dir string) ([]Station, error) {
	l, err := readStations(Layout{dir})
	if err != nil {
		return nil, err
	}
	return l.Stations, nil
}

// AddStation registers a new station called name in dir and returns its
// private key, which is not kept anywhere else: losing it means adding a new
// station. A running server picks the station up within a second.
func AddStation(dir, name string) (*jose.JSONWebKey, error) {
	if err := validateStationName(name); err != nil {
		return nil, err
	}
	priv, err := jose.GenerateJWK("EC", "P-256", "ES256", "sig", "", 0)
	if err != nil {
		return nil, fmt.Errorf("generate station key: %w", err)
	}
	pub := priv.Public()
	err = updateStations(Layout{dir}, func(l *stationList) error {
		if slices.ContainsFunc(l.Stations, func(s Station) bool { return s.Name == name }) {
			return fmt.Errorf("%w: %s", ErrStationExists, name)
		}
		l.Stations = append(l.Stations, Station{Name: name, Key: &pub, CreatedAt: time.Now().UTC()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return priv, nil
}

// SetStationDisabled disables (or re-enables) the station name in dir. A
// disabled station's tokens are refused; certificates it issued stay valid.
func SetStationDisabled(dir, name string, disabled bool) error {
	return updateStations(Layout{dir}, func(l *stationList) error {
		i := slices.IndexFunc(l.Stations, func(s Station) bool { return s.Name == name })
		if i < 0 {
			return fmt.Errorf("%w: %s", ErrStationNotFound, name)
		}
		l.Stations[i].Disabled = disabled
		return nil
	})
}

func validateStationName(name string) error {
	if err := ValidateSerial(name); err != nil {
		return fmt.Errorf("invalid station name: names follow the rules of gateway serials (1 to 64 of A-Z a-z 0-9 - . _)")
	}
	return nil
}

func readStations(l Layout) (*stationList, error) {
	if _, err := os.Stat(l.Config()); err != nil {
		return nil, fmt.Errorf("%w: %s has no config.json", ErrNotInitialized, l.Dir)
	}
	var list stationList
	b, err := os.ReadFile(l.Stations())
	if errors.Is(err, os.ErrNotExist) {
		return &list, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read stations: %w", err)
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("parse %s: %w", l.Stations(), err)
	}
	return &list, nil
}

// updateStations applies fn to the station list under an exclusive file lock,
// so two station commands run at once cannot lose each other's change.
func updateStations(l Layout, fn func(*stationList) error) error {
	lock, err := os.OpenFile(l.Stations()+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %s", ErrNotInitialized, l.Dir)
		}
		return fmt.Errorf("lock stations: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock stations: %w", err)
	}
	list, err := readStations(l)
	if err != nil {
		return err
	}
	if err := fn(list); err != nil {
		return err
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(l.Stations(), append(b, '\n'), 0o644)
}

// stationProvisioner is step-ca's JWK provisioner narrowed to the IDevID
// profile: anything a station asks for outside it is refused, not rewritten.
type stationProvisioner struct {
	*provisioner.JWK
	disabled bool
	lifetime time.Duration
}

func newStationProvisioner(s Station, lifetime time.Duration) *stationProvisioner {
	d := &provisioner.Duration{Duration: lifetime}
	return &stationProvisioner{
		JWK: &provisioner.JWK{
			Type: provisioner.TypeJWK.String(),
			Name: s.Name,
			Key:  s.Key,
			Claims: &provisioner.Claims{
				// One lifetime only: a token asking for any other is refused.
				MinTLSDur:     d,
				MaxTLSDur:     d,
				DefaultTLSDur: d,
			},
		},
		disabled: s.Disabled,
		lifetime: lifetime,
	}
}

// AuthorizeSign refuses: gwpki's own sign handler issues birth
// certificates for station tokens (see issue.go), so step-ca's generic
// pipeline never should. Refusing here keeps any other route from issuing
// outside the profile.
func (p *stationProvisioner) AuthorizeSign(context.Context, string) ([]provisioner.SignOption, error) {
	return nil, errs.Unauthorized("station %s tokens are only accepted by the sign endpoint", p.Name)
}

// AuthorizeRevoke refuses revocation tokens of a disabled station.
func (p *stationProvisioner) AuthorizeRevoke(ctx context.Context, token string) error {
	if p.disabled {
		return errs.Unauthorized("station %s is disabled", p.Name)
	}
	return p.JWK.AuthorizeRevoke(ctx, token)
}

var oidClientAuth = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}

// validateIDevIDRequest checks a CSR against the birth-certificate profile.
func validateIDevIDRequest(csr *x509.CertificateRequest) error {
	serial := csr.Subject.CommonName
	if err := ValidateSerial(serial); err != nil {
		return fmt.Errorf("certificate request common name: %w", err)
	}
	want := GatewayURIPrefix + serial
	if len(csr.DNSNames)+len(csr.IPAddresses)+len(csr.EmailAddresses) > 0 ||
		len(csr.URIs) != 1 || csr.URIs[0].String() != want {
		return fmt.Errorf("a station certificate request must have exactly one SAN, the URI %s (got %s); "+
			"with the step CLI pass --san %s", want, describeSANs(csr), want)
	}
	for _, ext := range csr.Extensions {
		if !ext.Id.Equal(oidExtExtKeyUsage) {
			continue
		}
		var ekus []asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(ext.Value, &ekus); err != nil {
			return fmt.Errorf("certificate request has a malformed extended key usage extension")
		}
		for _, e := range ekus {
			if !e.Equal(oidClientAuth) {
				return fmt.Errorf("certificate request asks for extended key usage %s; stations may only get clientAuth", e)
			}
		}
	}
	return nil
}

func describeSANs(csr *x509.CertificateRequest) string {
	var sans []string
	sans = append(sans, csr.DNSNames...)
	for _, ip := range csr.IPAddresses {
		sans = append(sans, ip.String())
	}
	sans = append(sans, csr.EmailAddresses...)
	for _, u := range csr.URIs {
		sans = append(sans, u.String())
	}
	if len(sans) == 0 {
		return "none"
	}
	return fmt.Sprintf("%q", sans)
}
