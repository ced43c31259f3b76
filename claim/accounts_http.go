package claim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/gwpki/gwpki/internal/audit"
	"github.com/gwpki/gwpki/internal/httpapi"
)

// Routes mounts the accounts API on r:
//
//	POST  /v1/login            {"username","password"} -> {"token","expires_at","user"}
//	POST  /v1/logout           ends the caller's session (any role)
//	GET   /v1/users/me         the caller (any role)
//	GET   /v1/users            every user (admin)
//	POST  /v1/users            {"username","org","role","password"} creates a user (admin)
//	PATCH /v1/users/{username} {"disabled": bool} (admin)
func (a *Accounts) Routes(r chi.Router) {
	anyone := a.RequireRole()
	admin := a.RequireRole(RoleAdmin)
	r.Post("/v1/login", a.handleLogin)
	r.With(anyone).Post("/v1/logout", a.handleLogout)
	r.With(anyone).Get("/v1/users/me", a.handleMe)
	r.With(admin).Get("/v1/users", a.handleListUsers)
	r.With(admin).Post("/v1/users", a.handleCreateUser)
	r.With(admin).Patch("/v1/users/{username}", a.handleUpdateUser)
}

// authKey is the context key of the authenticated caller.
type authKey struct{}

type authInfo struct {
	user      User
	tokenHash []byte
}

// UserFromContext returns the user that [Accounts.RequireRole] authenticated
// for this request.
func UserFromContext(ctx context.Context) (User, bool) {
	info, ok := ctx.Value(authKey{}).(authInfo)
	return info.user, ok
}

// RequireRole returns middleware that lets a request through only with a
// live bearer token (Authorization: Bearer ...) of a user holding one of
// roles; admins pass every check, and no roles means any logged-in user. It
// answers 401 without a token or with a malformed, unknown, expired or
// revoked one, and 403 for the wrong role. It panics on an invalid role, a
// programming error caught when the routes are built.
func (a *Accounts) RequireRole(roles ...Role) func(http.Handler) http.Handler {
	for _, r := range roles {
		if !r.Valid() {
			panic(fmt.Sprintf("claim: RequireRole(%v): invalid role", r))
		}
	}
	denied := "permission denied"
	if len(roles) > 0 && !slices.Contains(roles, RoleAdmin) {
		names := make([]string, 0, len(roles)+1)
		for _, r := range roles {
			names = append(names, r.String())
		}
		denied += ": needs role " + strings.Join(append(names, RoleAdmin.String()), " or ")
	} else if len(roles) > 0 {
		denied += ": needs role admin"
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, ok := bearerToken(r)
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="gwpki"`)
				httpapi.WriteError(w, r, httpapi.Errorf(http.StatusUnauthorized, "authentication required").
					WithHint("log in with gwpki login"))
				return
			}
			user, tokenHash, err := a.authenticate(r.Context(), token)
			if errors.Is(err, ErrInvalidSession) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="gwpki", error="invalid_token"`)
				httpapi.WriteError(w, r, httpapi.Errorf(http.StatusUnauthorized, "invalid or expired session").
					WithHint("log in again with gwpki login"))
				return
			}
			if err != nil {
				httpapi.WriteError(w, r, fmt.Errorf("authenticate: %w", err))
				return
			}
			if len(roles) > 0 && user.Role != RoleAdmin && !slices.Contains(roles, user.Role) {
				httpapi.WriteError(w, r, httpapi.Errorf(http.StatusForbidden, "%s", denied))
				return
			}
			ctx := context.WithValue(r.Context(), authKey{}, authInfo{user: user, tokenHash: tokenHash})
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type loginResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	User      User      `json:"user"`
}

func (a *Accounts) handleLogin(w http.ResponseWriter, r *http.Request) {
	a.logins[a.serveLogin(w, r)].Inc()
}

// serveLogin answers a login and returns its result as counted.
func (a *Accounts) serveLogin(w http.ResponseWriter, r *http.Request) string {
	var req loginRequest
	if err := httpapi.DecodeJSON(w, r, &req); err != nil {
		httpapi.WriteError(w, r, err)
		return loginRefused
	}
	if req.Username == "" || req.Password == "" {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, "username and password are required"))
		return loginRefused
	}
	sess, err := a.login(r.Context(), req.Username, req.Password, r.RemoteAddr)
	a.auditLogin(r, req.Username, err)
	var rl *RateLimitError
	switch {
	case errors.As(err, &rl):
		secs := int(math.Ceil(rl.RetryAfter.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusTooManyRequests, "too many failed login attempts").
			WithHint(fmt.Sprintf("try again in %s", (time.Duration(secs)*time.Second).String())))
		return loginLimited
	case errors.Is(err, ErrInvalidCredentials):
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusUnauthorized, "invalid username or password"))
		return loginRefused
	case errors.Is(err, ErrInvalidPassword):
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, "password longer than %d bytes", maxPasswordLen))
		return loginRefused
	case err != nil:
		httpapi.WriteError(w, r, err)
		return loginError
	}
	httpapi.WriteJSON(w, http.StatusOK, loginResponse{Token: sess.token, ExpiresAt: sess.expiresAt, User: sess.user})
	return loginOK
}

// auditLogin records a login attempt and its outcome; a failure to record
// it is logged, and the login answered anyway.
func (a *Accounts) auditLogin(r *http.Request, username string, err error) {
	if a.audit == nil {
		return
	}
	ctx := context.WithoutCancel(r.Context())
	e := audit.Entry{Actor: audit.UserActor(username), Action: "login", Target: username, Result: audit.ResultOK, Source: sourceHost(r.RemoteAddr)}
	// The user's organisation, so that its operators see the attempt; an
	// unknown username has none.
	if rec, uerr := a.store.user(ctx, username); uerr == nil {
		e.Org = rec.Org
	} else if !errors.Is(uerr, ErrUserNotFound) {
		a.log.Error("audit login: read user", "err", uerr, "user", username)
	}
	var rl *RateLimitError
	switch {
	case errors.As(err, &rl):
		e.Result, e.Detail = audit.ResultRefused, map[string]string{"why": "rate_limited"}
	case errors.Is(err, ErrInvalidCredentials), errors.Is(err, ErrInvalidPassword):
		e.Result, e.Detail = audit.ResultRefused, map[string]string{"why": "invalid_credentials"}
	case err != nil:
		e.Result = audit.ResultFailed
	}
	if _, aerr := a.audit.Record(ctx, e); aerr != nil {
		a.log.Error("audit login", "err", aerr, "user", username)
	}
}

func (a *Accounts) handleLogout(w http.ResponseWriter, r *http.Request) {
	info, _ := r.Context().Value(authKey{}).(authInfo)
	if err := a.logout(r.Context(), info.tokenHash); err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	a.log.Info("logout", "user", info.user.Username)
	w.WriteHeader(http.StatusNoContent)
}

func (a *Accounts) handleMe(w http.ResponseWriter, r *http.Request) {
	u, _ := UserFromContext(r.Context())
	httpapi.WriteJSON(w, http.StatusOK, u)
}

func (a *Accounts) handleListUsers(w http.ResponseWriter, r *http.Request) {
	users, err := a.users(r.Context())
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, users)
}

type createUserRequest struct {
	Username string `json:"username"`
	Org      string `json:"org"`
	Role     string `json:"role"`
	Password string `json:"password"`
}

func (a *Accounts) handleCreateUser(w http.ResponseWriter, r *http.Request) {
	var req createUserRequest
	if err := httpapi.DecodeJSON(w, r, &req); err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	role, err := ParseRole(req.Role)
	if err != nil {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, "invalid role %q", req.Role).
			WithHint("use installer, operator or admin"))
		return
	}
	u, err := a.CreateUser(r.Context(), NewUser{Username: req.Username, Org: req.Org, Role: role, Password: req.Password})
	switch {
	case errors.Is(err, ErrUserExists):
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusConflict, "user %s already exists", req.Username))
	case errors.Is(err, ErrInvalidUsername):
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, "invalid username").
			WithHint("use 1 to 64 characters of a-z 0-9 . _ -"))
	case errors.Is(err, ErrInvalidOrg):
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, "invalid organisation name").
			WithHint("use 1 to 64 characters of a-z 0-9 . _ -"))
	case errors.Is(err, ErrInvalidPassword):
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, "invalid password").
			WithHint(fmt.Sprintf("use %d to %d bytes", minPasswordLen, maxPasswordLen)))
	case err != nil:
		httpapi.WriteError(w, r, err)
	default:
		httpapi.WriteJSON(w, http.StatusCreated, u)
	}
}

type updateUserRequest struct {
	Disabled *bool `json:"disabled"`
}

func (a *Accounts) handleUpdateUser(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "username")
	var req updateUserRequest
	if err := httpapi.DecodeJSON(w, r, &req); err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	if req.Disabled == nil {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, `nothing to update`).
			WithHint(`send {"disabled": true} or {"disabled": false}`))
		return
	}
	// Disabling oneself could leave no admin able to undo it.
	if me, _ := UserFromContext(r.Context()); *req.Disabled && me.Username == name {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusConflict, "you cannot disable your own account"))
		return
	}
	u, err := a.SetDisabled(r.Context(), name, *req.Disabled)
	switch {
	case errors.Is(err, ErrUserNotFound):
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusNotFound, "no such user"))
	case err != nil:
		httpapi.WriteError(w, r, err)
	default:
		httpapi.WriteJSON(w, http.StatusOK, u)
	}
}
