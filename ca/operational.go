package ca

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/smallstep/certificates/authority/provisioner"
	casapi "github.com/smallstep/certificates/cas/apiv1"
	"github.com/smallstep/certificates/errs"
	"go.step.sm/crypto/jose"

	"github.com/gwpki/gwpki/internal/httpapi"
)

// BootstrapProvisioner is the name of the provisioner that operational
// certificates carry. It is a JWK provisioner whose private key was thrown
// away when it was made: nobody can sign a token for it, so it issues only
// through the bootstrap service, and it is there so that step-ca renews its
// certificates (/renew finds a certificate's provisioner by this name and
// key ID) and so that an operational certificate can be told from a birth
// certificate, also after renewals.
const BootstrapProvisioner = "gwpki-bootstrap"

// DefaultOperationalLifetime is how long operational certificates live
// unless config.json says otherwise.
const DefaultOperationalLifetime = 7 * 24 * time.Hour

// loadOrCreateBootstrapKey returns the public JWK of the bootstrap
// provisioner, making it on first use.
func loadOrCreateBootstrapKey(l Layout) (*jose.JSONWebKey, error) {
	b, err := os.ReadFile(l.BootstrapProvisioner())
	if err == nil {
		var k jose.JSONWebKey
		if err := json.Unmarshal(b, &k); err != nil || k.KeyID == "" || !k.IsPublic() {
			return nil, fmt.Errorf("%s is not a public JWK with a key ID", l.BootstrapProvisioner())
		}
		return &k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read bootstrap provisioner: %w", err)
	}
	priv, err := jose.GenerateJWK("EC", "P-256", "ES256", "sig", "", 0)
	if err != nil {
		return nil, fmt.Errorf("make bootstrap provisioner: %w", err)
	}
	pub := priv.Public()
	if err := writeFileAtomic(l.BootstrapProvisioner(), mustJSON(&pub), 0o644); err != nil {
		return nil, fmt.Errorf("write bootstrap provisioner: %w", err)
	}
	return &pub, nil
}

func mustJSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err)
	}
	return b
}

// bootstrapProvisioner is the JWK provisioner operational certificates name.
type bootstrapProvisioner struct {
	*provisioner.JWK
}

func newBootstrapProvisioner(key *jose.JSONWebKey, lifetime time.Duration) *bootstrapProvisioner {
	d := &provisioner.Duration{Duration: lifetime}
	return &bootstrapProvisioner{JWK: &provisioner.JWK{
		Type: provisioner.TypeJWK.String(),
		Name: BootstrapProvisioner,
		Key:  key,
		Claims: &provisioner.Claims{
			MinTLSDur: d, MaxTLSDur: d, DefaultTLSDur: d,
		},
	}}
}

// AuthorizeSign refuses: operational certificates come from the bootstrap
// service only.
func (p *bootstrapProvisioner) AuthorizeSign(context.Context, string) ([]provisioner.SignOption, error) {
	return nil, errs.Unauthorized("%s issues through /v1/bootstrap only", BootstrapProvisioner)
}

// AuthorizeRevoke refuses tokens: nobody holds the key to sign one.
func (p *bootstrapProvisioner) AuthorizeRevoke(context.Context, string) error {
	return errs.Unauthorized("%s takes no revocation tokens", BootstrapProvisioner)
}

// Operational is an operational certificate issued by [Authority.IssueOperational].
type Operational struct {
	// Chain is the leaf, then the issuing CA.
	Chain []*x509.Certificate
	// RenewAfter is when the gateway should renew: two thirds into the
	// certificate's life.
	RenewAfter time.Time
}

// IssueOperational issues, stores and returns an operational certificate
// for gateway, for the key of csr: the gateway serial as subject and its
// gateway URI as the only SAN, client authentication only, the configured
// lifetime (7 days by default), the bootstrap provisioner's extension so
// that step-ca's /renew renews it. The CSR must be signed, for a key
// [validateGatewayKey] accepts, and name the gateway or nothing: its other
// fields are ignored. Refusals are *httpapi.Error (400).
func (a *Authority) IssueOperational(ctx context.Context, gateway string, csr *x509.CertificateRequest) (Operational, error) {
	if err := checkOperationalRequest(gateway, csr); err != nil {
		return Operational{}, httpapi.Errorf(http.StatusBadRequest, "%s", err)
	}
	p := a.bootstrap
	ext, err := (&provisioner.Extension{Type: provisioner.TypeJWK, Name: p.Name, CredentialID: p.Key.KeyID}).ToExtension()
	if err != nil {
		return Operational{}, fmt.Errorf("provisioner extension: %w", err)
	}
	now := time.Now().UTC()
	lifetime := a.operationalLifetime()
	tpl := &x509.Certificate{
		Subject:         pkix.Name{CommonName: gateway, SerialNumber: gateway},
		URIs:            []*url.URL{GatewayURI(gateway)},
		PublicKey:       csr.PublicKey,
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		NotBefore:       now.Add(-backdate),
		NotAfter:        now.Add(lifetime),
		ExtraExtensions: []pkix.Extension{ext},
	}
	resp, err := a.issuer.CreateCertificate(&casapi.CreateCertificateRequest{Template: tpl, Lifetime: lifetime, Backdate: backdate})
	if err != nil {
		return Operational{}, fmt.Errorf("sign operational certificate: %w", err)
	}
	chain := append([]*x509.Certificate{resp.Certificate}, resp.CertificateChain...)
	if err := a.db.StoreCertificateChain(p, chain...); err != nil {
		return Operational{}, fmt.Errorf("store operational certificate: %w", err)
	}
	leaf := chain[0]
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return Operational{Chain: chain, RenewAfter: leaf.NotBefore.Add(life * 2 / 3).UTC()}, nil
}

func (a *Authority) operationalLifetime() time.Duration {
	if d := a.cfg.OperationalLifetime.Duration; d > 0 {
		return d
	}
	return DefaultOperationalLifetime
}

// checkOperationalRequest checks the CSR a gateway sends to bootstrap.
func checkOperationalRequest(gateway string, csr *x509.CertificateRequest) error {
	if err := csr.CheckSignature(); err != nil {
		return fmt.Errorf("certificate request signature does not verify: %w", err)
	}
	if err := validateGatewayKey(csr.PublicKey); err != nil {
		return err
	}
	if cn := csr.Subject.CommonName; cn != "" && cn != gateway {
		return fmt.Errorf("certificate request names %q; this gateway is %s", cn, gateway)
	}
	if len(csr.DNSNames)+len(csr.IPAddresses)+len(csr.EmailAddresses) > 0 {
		return errors.New("certificate request asks for DNS, IP or email names; a gateway gets only its gateway URI")
	}
	for _, u := range csr.URIs {
		if u.String() != GatewayURIPrefix+gateway {
			return fmt.Errorf("certificate request asks for the URI %q; a gateway gets only %s%s", u, GatewayURIPrefix, gateway)
		}
	}
	return nil
}

// AuthenticateOperational checks a certificate a gateway presents to the
// broker: the very certificate this CA issued and stored, not revoked, and
// an operational certificate (issued by bootstrap or renewed from one), not
// a birth certificate. It returns the gateway serial. The TLS handshake has
// checked the chain and the validity period already.
func (a *Authority) AuthenticateOperational(leaf *x509.Certificate) (string, error) {
	serial := leaf.SerialNumber.String()
	rec, err := a.db.Certificate(serial)
	switch {
	case errors.Is(err, ErrCertificateNotFound):
		return "", fmt.Errorf("certificate %s was not issued by this CA", serial)
	case err != nil:
		return "", err
	case !bytes.Equal(rec.DER, leaf.Raw):
		return "", fmt.Errorf("certificate %s is not the one this CA issued with that serial", serial)
	case rec.Revoked != nil:
		return "", fmt.Errorf("certificate %s is revoked", serial)
	case rec.Gateway == "":
		return "", fmt.Errorf("certificate %s is not a gateway's", serial)
	case rec.Birth || rec.Provisioner == nil || rec.Provisioner.Name != BootstrapProvisioner:
		return "", fmt.Errorf("certificate %s is not an operational certificate (a birth certificate bootstraps, then connects with what it got)", serial)
	}
	return rec.Gateway, nil
}

// Decommissioned reports whether the gateway has birth certificates and
// every one of them is revoked (gwpki revoke of the gateway revokes all its
// certificates; a reissue revokes only the one it replaces): such a gateway
// may not bootstrap again.
func (a *Authority) Decommissioned(gateway string) (bool, error) {
	_, err := a.db.BirthCertificate(gateway)
	switch {
	case err == nil:
		return false, nil // a current birth certificate
	case !errors.Is(err, ErrCertificateNotFound):
		return false, err
	}
	recs, err := a.db.CertificatesByGateway(gateway)
	if err != nil {
		return false, err
	}
	for _, r := range recs {
		if r.Birth {
			return true, nil // born, and no birth certificate left unrevoked
		}
	}
	return false, nil
}

// ClientCAs is the pool that verifies gateway client certificates: the root
// and the issuing CAs, the current one and those a rotation retired.
func (a *Authority) ClientCAs() *x509.CertPool { return a.trustPool() }

// Roots returns the root certificates.
func (a *Authority) Roots() []*x509.Certificate { return a.roots }
