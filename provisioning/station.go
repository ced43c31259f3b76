package provisioning

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"go.step.sm/crypto/jose"

	"github.com/gwpki/gwpki/ca"
)

// Station is what `gwpki station add --out` writes: everything a line
// station needs to obtain birth certificates. It holds the station's private
// key, so it lives in a file of mode 0600.
type Station struct {
	Name            string           `json:"name"`
	CAURL           string           `json:"ca_url"`
	RootFingerprint string           `json:"root_fingerprint"`
	Key             *jose.JSONWebKey `json:"key"`
}

// LoadStation reads and checks a station file.
func LoadStation(path string) (*Station, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read station file: %w", err)
	}
	var s Station
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("read station file %s: not a gwpki station file: %w", path, err)
	}
	switch {
	case s.Name == "" || s.Key == nil:
		return nil, fmt.Errorf("read station file %s: not a gwpki station file (no name or key)", path)
	case s.Key.IsPublic():
		return nil, fmt.Errorf("read station file %s: it holds a public key only", path)
	}
	return &s, nil
}

// TokenLifetime is how long a one-time token is valid: long enough for a
// retry, short enough that a leaked one is soon useless.
const TokenLifetime = 5 * time.Minute

// tokenClaims are the claims step-ca's JWK provisioner reads, and gwpki's
// reissue request.
type tokenClaims struct {
	jose.Claims
	SANs    []string `json:"sans,omitempty"`
	Reissue bool     `json:"reissue,omitempty"`
}

// TokenOption changes a token from [Station.Token].
type TokenOption func(*tokenClaims)

// tokenReissue asks for a birth certificate that replaces the gateway's
// current one (which the CA then revokes as superseded).
func tokenReissue(on bool) TokenOption { return func(c *tokenClaims) { c.Reissue = on } }

// Token returns a one-time token that authorises the certificate of the
// gateway serial at the CA endpoint audience (e.g. https://ca:8443/1.0/sign),
// exactly as `step ca token --san urn:gwpki:gateway:<serial>` makes it.
func (s *Station) Token(serial, audience string, now time.Time, opts ...TokenOption) (string, error) {
	if err := ca.ValidateSerial(serial); err != nil {
		return "", err
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return "", err
	}
	c := tokenClaims{
		Claims: jose.Claims{
			ID:        base64.RawURLEncoding.EncodeToString(id),
			Issuer:    s.Name,
			Subject:   serial,
			Audience:  jose.Audience{audience},
			IssuedAt:  jose.NewNumericDate(now),
			NotBefore: jose.NewNumericDate(now),
			Expiry:    jose.NewNumericDate(now.Add(TokenLifetime)),
		},
		SANs: []string{ca.GatewayURIPrefix + serial},
	}
	for _, o := range opts {
		o(&c)
	}
	if key, ok := s.Key.Key.(*ecdsa.PrivateKey); ok && key.Curve == elliptic.P256() {
		return signES256(key, s.Key.KeyID, &c)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: s.Key.Key},
		new(jose.SignerOptions).WithType("JWT").WithHeader("kid", s.Key.KeyID))
	if err != nil {
		return "", fmt.Errorf("create token signer: %w", err)
	}
	tok, err := jose.Signed(signer).Claims(c).CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return tok, nil
}

// signES256 makes the compact JWS go-jose would, directly: a station signs
// two tokens per gateway, and go-jose's generic path costs as much again as
// the signature.
func signES256(key *ecdsa.PrivateKey, kid string, claims *tokenClaims) (string, error) {
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{"ES256", kid, "JWT"})
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	digest := sha256.Sum256([]byte(signed))
	r, sig, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	var rs [64]byte
	r.FillBytes(rs[:32])
	sig.FillBytes(rs[32:])
	return signed + "." + enc.EncodeToString(rs[:]), nil
}

// SignURL returns the step-ca sign endpoint under the CA URL base.
func SignURL(base string) string { return strings.TrimRight(base, "/") + "/1.0/sign" }

// NewGatewayKey generates a P-256 key and a CSR of the IDevID profile for
// serial: CN = serial, one URI SAN urn:gwpki:gateway:<serial>.
func NewGatewayKey(serial string) (crypto.Signer, []byte, error) {
	if err := ca.ValidateSerial(serial); err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate gateway key: %w", err)
	}
	csr, err := GatewayCSR(serial, key)
	return key, csr, err
}

// GatewayCSR returns a PEM CSR of the IDevID profile for serial signed by key.
func GatewayCSR(serial string, key crypto.Signer) ([]byte, error) {
	if key == nil {
		return nil, errors.New("no key")
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: serial},
		URIs:    []*url.URL{ca.GatewayURI(serial)},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate request: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// WithReissue makes a sign token ask for a reissue: a birth certificate
// that replaces the gateway's current one. [Client.Sign] sets it itself;
// it is exported for tools and tests that make their own requests.
func WithReissue() TokenOption { return tokenReissue(true) }
