package server

import (
	"net/http"

	"github.com/gwpki/gwpki/claim"
)

// auditScope is the [audit.Scope] of GET /v1/audit: admins read the whole
// log, everyone else only their organisation's entries. A request without an
// authenticated user gets no organisation, which the audit API refuses.
func auditScope(r *http.Request) (string, bool) {
	u, ok := claim.UserFromContext(r.Context())
	if !ok {
		return "", false
	}
	return u.Org, u.Role == claim.RoleAdmin
}
