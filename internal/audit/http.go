package audit

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/gwpki/gwpki/internal/httpapi"
)

// Scope says which entries the caller of GET /v1/audit may read. [Log.Routes]
// calls it once the middleware has authenticated the request: all true (an
// admin) means every entry; otherwise only the entries of organisation org.
type Scope func(r *http.Request) (org string, all bool)

// errOtherOrg answers an operator who asks for another organisation's
// entries.
const errOtherOrg = "operators see only their organisation's audit entries"

// Routes mounts the audit API on r behind mw, the authentication middleware
// (gwpki serve passes the accounts' RequireRole(claim.RoleOperator)), scoped
// by scope:
//
//	GET /v1/audit?before=&limit=&action=&target=&actor=&org=   a [Page] as JSON
//
// The parameters are those of [Query] (see [Query.Encode]); each may be
// given once, and an unknown, repeated or malformed one is answered 400
// with a hint.
//
// When scope says all, the query is used as given. Otherwise the query's
// Org is forced to the caller's organisation: without org, or with org set
// to that organisation, the caller gets its entries (never those of no
// organisation); org naming another organisation, or a caller of no
// organisation, is answered 403.
//
// Routes panics without middleware or with a nil scope: the log must never
// be served to anyone who asks.
func (l *Log) Routes(r chi.Router, scope Scope, mw ...func(http.Handler) http.Handler) {
	if scope == nil {
		panic("audit: Routes without a scope")
	}
	if len(mw) == 0 {
		panic("audit: Routes without authentication middleware")
	}
	r.With(mw...).Get("/v1/audit", func(w http.ResponseWriter, r *http.Request) { l.handleList(w, r, scope) })
}

func (l *Log) handleList(w http.ResponseWriter, r *http.Request, scope Scope) {
	q, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	if org, all := scope(r); !all {
		switch {
		case org == "":
			// Forcing an empty Org would filter nothing: everything.
			httpapi.WriteError(w, r, httpapi.Errorf(http.StatusForbidden, errOtherOrg).
				WithHint("your account has no organisation; only admins see the whole log"))
			return
		case q.Org != "" && q.Org != org:
			httpapi.WriteError(w, r, httpapi.Errorf(http.StatusForbidden, errOtherOrg).
				WithHint("leave out org: your organisation's entries are shown"))
			return
		}
		q.Org = org
	}
	page, err := l.List(r.Context(), q)
	if errors.Is(err, ErrInvalidQuery) {
		// parseQuery refuses everything List does; kept as a 400 should
		// the two ever differ.
		httpapi.WriteError(w, r, &httpapi.Error{Status: http.StatusBadRequest, Msg: "invalid query", Err: err})
		return
	}
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, page)
}

// queryParams are the parameters of GET /v1/audit.
var queryParams = []string{"before", "limit", "action", "target", "actor", "org"}

const queryHint = "use before, limit, action, target, actor and org, each at most once"

// Encode returns q as the query string of GET /v1/audit, without the "?";
// zero fields are left out.
func (q Query) Encode() string {
	v := url.Values{}
	if q.Before != 0 {
		v.Set("before", strconv.FormatUint(q.Before, 10))
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	for name, s := range map[string]string{"action": q.Action, "target": q.Target, "actor": q.Actor, "org": q.Org} {
		if s != "" {
			v.Set(name, s)
		}
	}
	return v.Encode()
}

// parseQuery reads the query string of GET /v1/audit. Its errors are
// *httpapi.Error (400) with a hint; they never echo more than a few bytes
// of the input.
func parseQuery(raw string) (Query, error) {
	var q Query
	v, err := url.ParseQuery(raw)
	if err != nil {
		return q, &httpapi.Error{Status: http.StatusBadRequest, Msg: "malformed query string", Err: err,
			Hint: "percent-encode the parameter values"}
	}
	names := make([]string, 0, len(v))
	for name := range v {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !slices.Contains(queryParams, name) {
			return q, httpapi.Errorf(http.StatusBadRequest, "unknown query parameter %q", shorten(name, 32)).WithHint(queryHint)
		}
		if len(v[name]) > 1 {
			return q, httpapi.Errorf(http.StatusBadRequest, "query parameter %s given more than once", name).WithHint(queryHint)
		}
	}
	if s := v.Get("before"); s != "" {
		if q.Before, err = strconv.ParseUint(s, 10, 64); err != nil {
			return q, httpapi.Errorf(http.StatusBadRequest, "invalid before %q", shorten(s, 32)).
				WithHint("use a sequence number, such as the next of the previous page")
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return q, httpapi.Errorf(http.StatusBadRequest, "invalid limit %q", shorten(s, 32)).
				WithHint("use a number from 1 to " + strconv.Itoa(MaxLimit))
		}
		q.Limit = n
	}
	q.Action, q.Target, q.Actor, q.Org = v.Get("action"), v.Get("target"), v.Get("actor"), v.Get("org")
	for _, f := range []struct{ name, s string }{{"action", q.Action}, {"target", q.Target}, {"actor", q.Actor}, {"org", q.Org}} {
		if len(f.s) > maxFilterLen {
			return q, httpapi.Errorf(http.StatusBadRequest, "%s longer than %d bytes", f.name, maxFilterLen).
				WithHint("filters match whole values, which are never that long")
		}
	}
	return q, nil
}
