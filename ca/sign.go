package ca

import (
	"net/http"

	"github.com/smallstep/certificates/api"
	"github.com/smallstep/certificates/api/read"
	"github.com/smallstep/certificates/api/render"
	"github.com/smallstep/certificates/authority"
	"github.com/smallstep/certificates/authority/provisioner"
	"github.com/smallstep/certificates/errs"
)

// sign is step-ca's POST /sign (request, answers and errors unchanged) less
// one redundant signature check. step-ca verifies a CSR's signature three
// times per request: in SignRequest.Validate, in Authority.SignWithContext
// and again in x509util.NewCertificate; on this CPU-bound path each P-256
// check costs about as much as the signature that issues the certificate.
// This handler leaves the check to SignWithContext, so a CSR with a bad
// signature is refused there (400) after its token was used, rather than
// before.
func sign(w http.ResponseWriter, r *http.Request) {
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
	opts := provisioner.SignOptions{
		NotBefore:    body.NotBefore,
		NotAfter:     body.NotAfter,
		TemplateData: body.TemplateData,
	}
	ctx := provisioner.NewContextWithMethod(r.Context(), provisioner.SignMethod)
	a := authority.MustFromContext(ctx)
	signOpts, err := a.Authorize(ctx, body.OTT)
	if err != nil {
		render.Error(w, r, errs.UnauthorizedErr(err))
		return
	}
	chain, err := a.SignWithContext(ctx, body.CsrPEM.CertificateRequest, opts, signOpts...)
	if err != nil {
		render.Error(w, r, errs.ForbiddenErr(err, "error signing certificate"))
		return
	}
	pems := make([]api.Certificate, len(chain))
	for i, c := range chain {
		pems[i] = api.NewCertificate(c)
	}
	resp := &api.SignResponse{ServerPEM: pems[0], CertChainPEM: pems, TLSOptions: a.GetTLSOptions()}
	if len(pems) > 1 {
		resp.CaPEM = pems[1]
	}
	render.JSONStatus(w, r, resp, http.StatusCreated)
}
