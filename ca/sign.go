package ca

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/smallstep/certificates/api"
	"github.com/smallstep/certificates/api/read"
	"github.com/smallstep/certificates/api/render"
	"github.com/smallstep/certificates/authority"
	"github.com/smallstep/certificates/authority/config"
	"github.com/smallstep/certificates/authority/provisioner"
	casapi "github.com/smallstep/certificates/cas/apiv1"
	"github.com/smallstep/certificates/errs"
	"go.step.sm/crypto/jose"
)

// sign serves step-ca's POST /sign and /1.0/sign: same request, answers and
// error statuses. Tokens of a station are served by issueIDevID, everything
// else by step-ca's own pipeline.
//
// Why gwpki issues birth certificates itself: issuance is CPU-bound on
// P-256 signature checks, and step-ca's generic pipeline checks a CSR's
// signature three times (SignRequest.Validate, SignWithContext,
// x509util.NewCertificate), parses the token four times and renders the
// certificate through a JSON template. For the one profile stations may
// obtain, one check of each signature and a certificate built in Go do.
func (a *Authority) sign(w http.ResponseWriter, r *http.Request) {
	var body api.SignRequest
	if err := read.JSON(r.Body, &body); err != nil {
		render.Error(w, r, errs.BadRequestErr(err, "error reading request body"))
		return
	}
	switch {
	case body.CsrPEM.CertificateRequest == nil:
		render.Error(w, r, errs.BadRequest("missing csr"))
		return
	case body.OTT == "":
		render.Error(w, r, errs.BadRequest("missing ott"))
		return
	}
	st := a.current.Load()
	var chain []*x509.Certificate
	var err error
	if tok, p := st.station(body.OTT); p != nil {
		chain, err = a.issueIDevID(r.Context(), st, p, tok, &body)
	} else {
		chain, err = stepSign(r.Context(), st.step, &body)
	}
	if err != nil {
		render.Error(w, r, err)
		return
	}
	writeSignResponse(w, chain, st.step.GetTLSOptions())
}

// writeSignResponse writes step-ca's SignResponse, {"crt", "ca",
// "certChain", "tlsOptions"}, byte for byte as encoding/json would, without
// its reflection: on the issuing path that cost more than a signature check.
func writeSignResponse(w http.ResponseWriter, chain []*x509.Certificate, tlsOptions *config.TLSOptions) {
	b := make([]byte, 0, 4096)
	b = append(b, `{"crt":`...)
	leaf := len(b)
	b = appendPEMString(b, chain[0])
	leafPEM := b[leaf:]
	b = append(b, `,"ca":`...)
	if len(chain) > 1 {
		b = appendCAPEMString(b, chain[1])
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"certChain":[`...)
	b = append(b, leafPEM...)
	for _, c := range chain[1:] {
		b = append(b, ',')
		b = appendCAPEMString(b, c)
	}
	b = append(b, ']')
	if tlsOptions != nil {
		opts, err := json.Marshal(tlsOptions)
		if err == nil {
			b = append(append(b, `,"tlsOptions":`...), opts...)
		}
	}
	b = append(b, "}\n"...)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(b)
}

// appendPEMString appends c as a PEM block in a JSON string. PEM holds only
// base64, dashes, spaces and newlines, so a newline is all that needs
// escaping.
func appendPEMString(b []byte, c *x509.Certificate) []byte {
	b = append(b, '"')
	for _, ch := range pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}) {
		if ch == '\n' {
			b = append(b, '\\', 'n')
		} else {
			b = append(b, ch)
		}
	}
	return append(b, '"')
}

// lastCAPEM is the issuing CA's certificate as appendPEMString writes it,
// kept because every answer carries it twice.
var lastCAPEM atomic.Pointer[struct {
	cert *x509.Certificate
	json []byte
}]

func appendCAPEMString(b []byte, c *x509.Certificate) []byte {
	if last := lastCAPEM.Load(); last != nil && last.cert == c {
		return append(b, last.json...)
	}
	start := len(b)
	b = appendPEMString(b, c)
	lastCAPEM.Store(&struct {
		cert *x509.Certificate
		json []byte
	}{c, slices.Clone(b[start:])})
	return b
}

// stepSign is step-ca's api.Sign after the request is read.
func stepSign(ctx context.Context, a *authority.Authority, body *api.SignRequest) ([]*x509.Certificate, error) {
	if err := body.CsrPEM.CertificateRequest.CheckSignature(); err != nil {
		return nil, errs.BadRequestErr(err, "invalid csr")
	}
	ctx = provisioner.NewContextWithMethod(ctx, provisioner.SignMethod)
	signOpts, err := a.Authorize(ctx, body.OTT)
	if err != nil {
		return nil, errs.UnauthorizedErr(err)
	}
	opts := provisioner.SignOptions{NotBefore: body.NotBefore, NotAfter: body.NotAfter, TemplateData: body.TemplateData}
	chain, err := a.SignWithContext(ctx, body.CsrPEM.CertificateRequest, opts, signOpts...)
	if err != nil {
		return nil, errs.ForbiddenErr(err, "error signing certificate")
	}
	return chain, nil
}

// station returns the parsed token and its station when the token's key
// is a station's, or nil.
func (st *state) station(ott string) (*stationToken, *stationProvisioner) {
	tok, err := parseStationToken(ott)
	if err != nil || tok.kid == "" {
		return nil, nil
	}
	p := st.stations[tok.kid]
	if p == nil {
		return nil, nil
	}
	return tok, p
}

// stationClaims are the claims of a station's one-time token, as step-ca's
// JWK provisioner reads them.
type stationClaims struct {
	jose.Claims
	SANs []string `json:"sans"`
	// Reissue asks for a new birth certificate that replaces the gateway's
	// current one (revoked as superseded), for a new key.
	Reissue bool `json:"reissue,omitempty"`
}

// issueIDevID checks a station's token and CSR and issues, stores and
// returns the birth certificate. It enforces what step-ca's JWK provisioner
// does (signature, issuer, audience, validity with a minute's leeway,
// subject, one use per token) and the profile: see docs/ca.md.
func (a *Authority) issueIDevID(ctx context.Context, st *state, p *stationProvisioner, tok *stationToken, body *api.SignRequest) (chain []*x509.Certificate, err error) {
	if p.disabled {
		return nil, errs.Unauthorized("station %s is disabled", p.Name)
	}
	var claims stationClaims
	if err := tok.claims(p.Key, &claims); err != nil {
		return nil, errs.Wrapf(http.StatusUnauthorized, err, "station %s: token signature", p.Name)
	}
	now := time.Now().UTC()
	if err := claims.ValidateWithLeeway(jose.Expected{Issuer: p.Name, Time: now}, tokenLeeway); err != nil {
		return nil, errs.Wrapf(http.StatusUnauthorized, err, "station %s: token claims", p.Name)
	}
	switch {
	case !matchesAudience(claims.Audience, st.signAudiences):
		return nil, errs.Unauthorized("station %s: token audience %v is not this CA's sign endpoint", p.Name, claims.Audience)
	case claims.Subject == "":
		return nil, errs.Unauthorized("station %s: token has no subject", p.Name)
	case claims.ID == "":
		return nil, errs.Unauthorized("station %s: token has no ID (jti)", p.Name)
	case claims.Expiry == nil:
		return nil, errs.Unauthorized("station %s: token has no expiry (exp)", p.Name)
	}
	// From here on the attempt counts: the token is spent even if the CSR
	// is refused, as with step-ca. On success the token's use is stored
	// with the certificate in one write, so that a request waits for the
	// store once, after its CPU work, rather than also before it.
	defer func() { a.metrics.X509Signed(chain, p, err) }()
	expiry := claims.Expiry.Time()
	csr := body.CsrPEM.CertificateRequest
	if err := checkIDevIDRequest(csr, &claims, body, p); err != nil {
		return nil, a.spendToken(expiry, body.OTT, err)
	}
	serial := csr.Subject.CommonName
	same, replaces, err := a.currentBirthCert(serial, csr, claims.Reissue)
	switch {
	case errors.Is(err, errBirthCertConflict):
		return nil, a.spendToken(expiry, body.OTT, errs.New(http.StatusConflict,
			"gateway %s already has a birth certificate (serial %s) for another key; a reissue token replaces it", serial, replaces))
	case errors.Is(err, ErrGatewayDecommissioned):
		return nil, a.spendToken(expiry, body.OTT, errDecommissioned(serial))
	case err != nil:
		return nil, errs.Wrap(http.StatusInternalServerError, err, "look up birth certificate")
	case same != nil:
		if err := a.spendToken(expiry, body.OTT, nil); err != nil {
			return nil, err
		}
		return append([]*x509.Certificate{same}, a.issuer.CertificateChain...), nil
	}
	if replaces != "" {
		// A reissue: never of a gateway an organisation has claimed. The
		// registry checks again, in the transaction that records the
		// reissue, for a claim that arrives after this look-up.
		switch claimed, err := a.reissueClaimed(ctx, serial); {
		case err != nil:
			a.log.Error("station reissue refused: cannot tell whether the gateway is claimed", "station", p.Name, "gateway", serial, "err", err)
			return nil, a.spendToken(expiry, body.OTT, errs.New(http.StatusServiceUnavailable,
				"cannot tell whether gateway %s is claimed; try again", serial))
		case claimed:
			a.log.Warn("station reissue of a claimed gateway refused", "station", p.Name, "gateway", serial)
			return nil, a.spendToken(expiry, body.OTT, errs.New(http.StatusConflict,
				"gateway %s is claimed by an organisation: a station may not reissue its birth certificate; "+
					"the owning organisation unclaims it first (gwpki unclaim %s), or an admin does", serial, serial))
		}
	}
	ext, err := (&provisioner.Extension{Type: provisioner.TypeJWK, Name: p.Name, CredentialID: p.Key.KeyID}).ToExtension()
	if err != nil {
		return nil, errs.Wrap(http.StatusInternalServerError, err, "provisioner extension")
	}
	if a.issuer.birth != nil {
		leaf, err := a.issuer.signBirthCert(serial, csr.RawSubjectPublicKeyInfo, now, p.lifetime, ext)
		if err != nil {
			return nil, errs.Wrap(http.StatusInternalServerError, err, "sign certificate")
		}
		chain = append([]*x509.Certificate{leaf}, a.issuer.CertificateChain...)
	} else {
		chain, err = a.issueIDevIDGeneric(serial, csr, now, p.lifetime, ext)
		if err != nil {
			return nil, err
		}
	}
	switch err := a.db.StoreBirthCertificate(p, expiry, body.OTT, replaces, "station:"+p.Name, chain...); {
	case errors.Is(err, ErrTokenUsed):
		// A replay that raced the first use: the certificate was signed but
		// is neither stored nor answered.
		return nil, errs.Unauthorized("token already used")
	case errors.Is(err, ErrBirthCertificateExists):
		// Another key for the same gateway won a race.
		return nil, errs.New(http.StatusConflict, "gateway %s already has a birth certificate", serial)
	case errors.Is(err, ErrGatewayDecommissioned):
		// Revoked between the look-up and the write.
		return nil, errDecommissioned(serial)
	case err != nil:
		return nil, errs.Wrap(http.StatusInternalServerError, err, "store certificate")
	}
	return chain, nil
}

// errBirthCertConflict is currentBirthCert's "another key, no reissue".
var errBirthCertConflict = errors.New("gateway has a birth certificate for another key")

// errDecommissioned is the sign endpoint's refusal for a decommissioned
// gateway.
func errDecommissioned(gateway string) error {
	return errs.New(http.StatusConflict,
		"gateway %s is decommissioned: its birth certificates are revoked, and decommissioned gateways stay revoked; "+
			"provision a replacement under a new serial", gateway)
}

// currentBirthCert applies "one birth certificate per gateway" to a request
// for csr: when the gateway's current birth certificate is for the same key
// it returns it as same (a line station finishing a batch after a crash
// gets what it was issued, reissue or not); for another key it returns
// that certificate's serial as replaces, with errBirthCertConflict unless
// the token asks for a reissue. A gateway that has birth certificates, all
// revoked, is decommissioned ([Authority.Decommissioned]):
// [ErrGatewayDecommissioned], reissue or not.
func (a *Authority) currentBirthCert(gateway string, csr *x509.CertificateRequest, reissue bool) (same *x509.Certificate, replaces string, err error) {
	current, born, err := a.db.currentBirthCertificate(gateway)
	switch {
	case errors.Is(err, ErrCertificateNotFound) && born:
		return nil, "", ErrGatewayDecommissioned
	case errors.Is(err, ErrCertificateNotFound):
		return nil, "", nil
	case err != nil:
		return nil, "", err
	}
	leaf, err := x509.ParseCertificate(current.DER)
	if err != nil {
		return nil, "", fmt.Errorf("parse stored birth certificate: %w", err)
	}
	switch {
	case bytes.Equal(leaf.RawSubjectPublicKeyInfo, csr.RawSubjectPublicKeyInfo):
		return leaf, "", nil
	case !reissue:
		return nil, current.Serial, errBirthCertConflict
	}
	return nil, current.Serial, nil
}

// checkIDevIDRequest checks the CSR against the token and the profile.
func checkIDevIDRequest(csr *x509.CertificateRequest, claims *stationClaims, body *api.SignRequest, p *stationProvisioner) error {
	if err := csr.CheckSignature(); err != nil {
		return errs.BadRequestErr(err, "invalid certificate request")
	}
	if err := validateIDevIDRequest(csr); err != nil {
		return errs.BadRequest("%s", err)
	}
	serial := csr.Subject.CommonName
	switch {
	case serial != claims.Subject:
		return errs.Forbidden("certificate request common name %q is not the token's subject %q", serial, claims.Subject)
	case !slices.Equal(claims.SANs, []string{GatewayURIPrefix + serial}):
		return errs.Forbidden("token SANs %q are not the certificate request's; want [%s%s]", claims.SANs, GatewayURIPrefix, serial)
	case !body.NotBefore.IsZero() || !body.NotAfter.IsZero():
		return errs.Forbidden("stations cannot choose a validity; birth certificates live %s", p.lifetime)
	}
	if err := validateGatewayKey(csr.PublicKey); err != nil {
		return errs.Forbidden("%s", err)
	}
	return nil
}

// spendToken records the use of a token whose request was refused for
// refusal, and returns refusal, or the replay if the token was used before.
func (a *Authority) spendToken(expiry time.Time, tok string, refusal error) error {
	first, err := a.db.UseStationToken(expiry, tok)
	switch {
	case err != nil:
		return errs.Wrap(http.StatusInternalServerError, err, "use token")
	case !first:
		return errs.Unauthorized("token already used")
	}
	return refusal
}

// issueIDevIDGeneric signs a birth certificate through step-ca's CA service
// and crypto/x509: the path for issuing keys held in a KMS.
func (a *Authority) issueIDevIDGeneric(serial string, csr *x509.CertificateRequest, now time.Time, lifetime time.Duration, ext pkix.Extension) ([]*x509.Certificate, error) {
	tpl := &x509.Certificate{
		Subject:         pkix.Name{CommonName: serial, SerialNumber: serial},
		URIs:            []*url.URL{GatewayURI(serial)},
		PublicKey:       csr.PublicKey,
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		Policies:        []x509.OID{oidIDevID},
		NotBefore:       now.Add(-backdate),
		NotAfter:        now.Add(lifetime),
		ExtraExtensions: []pkix.Extension{ext},
	}
	resp, err := a.issuer.CreateCertificate(&casapi.CreateCertificateRequest{Template: tpl, Lifetime: lifetime, Backdate: backdate})
	if err != nil {
		return nil, errs.Wrap(http.StatusInternalServerError, err, "sign certificate")
	}
	return append([]*x509.Certificate{resp.Certificate}, resp.CertificateChain...), nil
}

// tokenLeeway is the clock skew allowed on a station token's times, as
// step-ca allows.
const tokenLeeway = time.Minute

// oidIDevID is PolicyIDevID parsed once.
var oidIDevID = mustOID(PolicyIDevID)

func mustOID(s string) x509.OID {
	oid, err := x509.ParseOID(s)
	if err != nil {
		panic(err)
	}
	return oid
}

// matchesAudience is step-ca's audience rule: any token audience equals any
// accepted one, ports aside.
func matchesAudience(got, want []string) bool {
	for _, g := range got {
		for _, w := range want {
			if g == w || stripPort(g) == stripPort(w) {
				return true
			}
		}
	}
	return false
}

func stripPort(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Host = u.Hostname()
	return u.String()
}

// validateGatewayKey is step-ca's key rule: RSA of 2048 bits or more,
// ECDSA on P-256, P-384 or P-521, or Ed25519.
func validateGatewayKey(pub any) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("rsa keys must be at least 2048 bits; this one has %d", k.N.BitLen())
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return fmt.Errorf("ecdsa keys must be on P-256, P-384 or P-521")
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("unsupported key type %T", pub)
	}
	return nil
}
