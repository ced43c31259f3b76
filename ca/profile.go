package ca

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"
)

// Certificate policy OIDs that tell gateway certificates apart. They live
// under 2.25 (UUID-based, registration-free), so nobody else uses them.
const (
	// PolicyIDevID marks a gateway birth certificate issued on the line.
	PolicyIDevID = "2.25.119457844830798304680626259206608094117"
	// PolicyOperational marks a gateway operational certificate.
	PolicyOperational = "2.25.211103430195092943253294334816747622732"
)

// GatewayURIPrefix starts the URI SAN that names a gateway in its certificates.
const GatewayURIPrefix = "urn:gwpki:gateway:"

// maxSerialLen bounds gateway serials; they end up in certificate subjects,
// topic names and file names.
const maxSerialLen = 64

// ValidateSerial reports whether s can be a gateway serial: 1 to 64 of
// A-Z a-z 0-9 and - . _, starting with a letter or digit. The set keeps
// serials safe as file names, MQTT topic levels and URN parts.
func ValidateSerial(s string) error {
	if s == "" || len(s) > maxSerialLen {
		return fmt.Errorf("gateway serial must be 1 to %d characters", maxSerialLen)
	}
	for i, r := range s {
		switch {
		case r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case (r == '-' || r == '.' || r == '_') && i > 0:
		default:
			return fmt.Errorf("gateway serial %q may only hold letters, digits, '-', '.' and '_' and must start with a letter or digit", s)
		}
	}
	return nil
}

// GatewayURI returns the URI SAN of the gateway with serial.
func GatewayURI(serial string) *url.URL {
	u, _ := url.Parse(GatewayURIPrefix + serial)
	return u
}

// GatewaySerial returns the gateway serial a certificate names in its URI SAN,
// or "" when it names none.
func GatewaySerial(cert *x509.Certificate) string {
	for _, u := range cert.URIs {
		if s, ok := strings.CutPrefix(u.String(), GatewayURIPrefix); ok {
			return s
		}
	}
	return ""
}

// HasPolicy reports whether cert carries the certificate policy oid.
func HasPolicy(cert *x509.Certificate, oid string) bool {
	for _, p := range cert.Policies {
		if p.String() == oid {
			return true
		}
	}
	return false
}

// CheckIDevIDRequest is what the CA checks of a station's certificate
// request before a birth certificate: its signature, the profile (CN and
// the one URI SAN name the gateway serial, no other name, clientAuth at
// most) and a strong key. Line stations check CSRs with it before a batch.
func CheckIDevIDRequest(csr *x509.CertificateRequest) error {
	if err := csr.CheckSignature(); err != nil {
		return fmt.Errorf("certificate request signature: %w", err)
	}
	if err := validateIDevIDRequest(csr); err != nil {
		return err
	}
	return validateGatewayKey(csr.PublicKey)
}
