package claim

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/gwpki/gwpki/internal/httpapi"
)

// GatewayAuth authenticates a gateway's own request by its TLS client
// certificate (its birth certificate, or later an operational one) and
// returns its serial, or an *httpapi.Error (401, 403) to answer with.
// gwpki serve wires the CA's check.
type GatewayAuth func(r *http.Request) (serial string, err error)

// ClaimBody is the JSON body of POST /v1/claims.
type ClaimBody struct {
	Serial string `json:"serial"`
	// Code is the display code or the label code, as typed.
	Code string `json:"code"`
}

// ClaimAnswer answers a successful POST /v1/claims.
type ClaimAnswer struct {
	Device Device `json:"device"`
	// Code is "display" or "label": the kind of code that claimed.
	Code string `json:"code"`
}

// ClaimRefusal is the body of a refused POST /v1/claims: the error and hint
// of every API error, and what the caller can do next.
type ClaimRefusal struct {
	Error string `json:"error"`
	Hint  string `json:"hint,omitempty"`
	// Reason names the refusal for programs: typo, malformed,
	// invalid_serial, wrong_code, limited, locked, already_claimed,
	// code_used.
	Reason string `json:"reason"`
	// AttemptsLeft, for a wrong code, is how many more failures may come
	// before back-off or a limit.
	AttemptsLeft *int `json:"attempts_left,omitempty"`
	// Scope and RetryAfter (seconds), when limited: which limit, and
	// when to try again (also in the Retry-After header).
	Scope      string `json:"scope,omitempty"`
	RetryAfter int    `json:"retry_after,omitempty"`
}

// UnclaimAnswer answers POST /v1/devices/{serial}/unclaim.
type UnclaimAnswer struct {
	Device Device `json:"device"`
	// Revoked are the serials (decimal) of the operational certificates
	// revoked.
	Revoked []string `json:"revoked"`
}

// Routes mounts the claim API on router:
//
//	POST /v1/claims                      (installer)  ClaimBody -> 200 ClaimAnswer, or a ClaimRefusal
//	POST /v1/devices/{serial}/unclaim    (operator)   -> 200 UnclaimAnswer
//	POST /v1/devices/{serial}/unlock     (operator)   -> 200 UnlockResult
//	POST /v1/gateway/claim-button        (gateway mTLS) -> 200 UnlockResult
//
// installer and operator are the role middleware (they must put the user in
// the context, see [Accounts.RequireRole]); gateway authenticates the claim
// button. Routes panics if one is nil.
func (c *Claims) Routes(router chi.Router, installer, operator func(http.Handler) http.Handler, gateway GatewayAuth) {
	if installer == nil || operator == nil || gateway == nil {
		panic("claim: Claims.Routes without installer, operator or gateway authentication")
	}
	router.With(installer).Post("/v1/claims", c.handleClaim)
	router.With(operator).Post("/v1/devices/{serial}/unclaim", c.handleUnclaim)
	router.With(operator).Post("/v1/devices/{serial}/unlock", c.handleUnlock)
	router.Post("/v1/gateway/claim-button", func(w http.ResponseWriter, r *http.Request) {
		serial, err := gateway(r)
		if err != nil {
			httpapi.WriteError(w, r, err)
			return
		}
		res, err := c.PressButton(r.Context(), serial, r.RemoteAddr)
		if errors.Is(err, ErrDeviceNotFound) {
			httpapi.WriteError(w, r, httpapi.Errorf(http.StatusNotFound, "gateway %s is not registered", serial))
			return
		}
		if err != nil {
			httpapi.WriteError(w, r, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, res)
	})
}

const claimHint = `send {"serial": "GW-...", "code": "XXXX-XXXX-C"}`

func (c *Claims) handleClaim(w http.ResponseWriter, r *http.Request) {
	user, ok := UserFromContext(r.Context())
	if !ok {
		httpapi.WriteError(w, r, errors.New("claim: no user in the request context"))
		return
	}
	var body ClaimBody
	if err := httpapi.DecodeJSON(w, r, &body); err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	if body.Serial == "" || body.Code == "" {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, "serial and code are required").WithHint(claimHint))
		return
	}
	dev, kind, err := c.Claim(r.Context(), ClaimRequest{Serial: body.Serial, Code: body.Code, User: user, Source: r.RemoteAddr})
	if err == nil {
		httpapi.WriteJSON(w, http.StatusOK, ClaimAnswer{Device: dev, Code: kind.String()})
		return
	}
	writeClaimRefusal(w, r, err)
}

// writeClaimRefusal answers a refused claim, or the error of a failed one.
func writeClaimRefusal(w http.ResponseWriter, r *http.Request, err error) {
	var (
		le *LimitError
		wc *WrongCodeError
		ac *AlreadyClaimedError
	)
	var status int
	var ans ClaimRefusal
	switch {
	case errors.Is(err, ErrCodeTypo):
		status, ans = http.StatusBadRequest, ClaimRefusal{Reason: "typo",
			Error: "the code has a typo: its last symbol (the check) does not match",
			Hint:  "read the code again; nothing was counted"}
	case errors.Is(err, ErrCodeMalformed):
		status, ans = http.StatusBadRequest, ClaimRefusal{Reason: "malformed",
			Error: "that is not a claim code",
			Hint:  "a display code is XXXX-XXXX-C, a label code XXXX-XXXX-XXXX-XXXX-C; nothing was counted"}
	case errors.Is(err, ErrInvalidSerial):
		status, ans = http.StatusBadRequest, ClaimRefusal{Reason: "invalid_serial",
			Error: "invalid serial",
			Hint:  "a serial is 1 to 64 of A-Z a-z 0-9 - . _, as printed on the label"}
	case errors.As(err, &wc):
		left := wc.AttemptsLeft
		status, ans = http.StatusForbidden, ClaimRefusal{Reason: "wrong_code", AttemptsLeft: &left,
			Error: "wrong claim code for that serial",
			Hint:  "use the code the gateway shows now, or the one on its label; " + strconv.Itoa(left) + " attempts left before back-off"}
	case errors.As(err, &le) && le.Locked:
		status, ans = http.StatusLocked, ClaimRefusal{Reason: "locked", Scope: le.Scope,
			Error: "claims of this gateway are locked after too many failed attempts",
			Hint:  "an operator can unlock it (gwpki unlock SERIAL), or press the gateway's claim button"}
	case errors.As(err, &le):
		secs := int(math.Ceil(le.RetryAfter.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		status, ans = http.StatusTooManyRequests, ClaimRefusal{Reason: "limited", Scope: le.Scope, RetryAfter: secs,
			Error: le.Error(),
			Hint:  "wait until " + time.Now().Add(le.RetryAfter).UTC().Format(time.RFC3339) + " and try again"}
	case errors.As(err, &ac):
		hint := "an operator of its organisation can unclaim it (gwpki unclaim SERIAL)"
		if ac.Yours {
			hint = "it is your organisation's already; nothing to do"
		}
		status, ans = http.StatusConflict, ClaimRefusal{Reason: "already_claimed", Error: ac.Error(), Hint: hint}
	case errors.Is(err, ErrCodeUsed):
		status, ans = http.StatusConflict, ClaimRefusal{Reason: "code_used",
			Error: "that claim code has been used already",
			Hint:  "use the code the gateway shows now (a label code claims only once)"}
	default:
		httpapi.WriteError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, status, ans)
}

func (c *Claims) handleUnclaim(w http.ResponseWriter, r *http.Request) {
	user, ok := UserFromContext(r.Context())
	if !ok {
		httpapi.WriteError(w, r, errors.New("unclaim: no user in the request context"))
		return
	}
	serial := chi.URLParam(r, "serial")
	dev, revoked, err := c.Unclaim(r.Context(), serial, user, r.RemoteAddr)
	switch {
	case errors.Is(err, ErrDeviceNotFound), errors.Is(err, ErrInvalidSerial):
		writeNoSuchDevice(w, r)
	case errors.Is(err, ErrNotClaimed):
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusConflict, "gateway %s is not claimed", serial))
	case err != nil:
		httpapi.WriteError(w, r, err)
	default:
		if revoked == nil {
			revoked = []string{}
		}
		httpapi.WriteJSON(w, http.StatusOK, UnclaimAnswer{Device: dev, Revoked: revoked})
	}
}

func (c *Claims) handleUnlock(w http.ResponseWriter, r *http.Request) {
	user, ok := UserFromContext(r.Context())
	if !ok {
		httpapi.WriteError(w, r, errors.New("unlock: no user in the request context"))
		return
	}
	res, err := c.Unlock(r.Context(), chi.URLParam(r, "serial"), user, r.RemoteAddr)
	switch {
	case errors.Is(err, ErrDeviceNotFound), errors.Is(err, ErrInvalidSerial):
		writeNoSuchDevice(w, r)
	case err != nil:
		httpapi.WriteError(w, r, err)
	default:
		httpapi.WriteJSON(w, http.StatusOK, res)
	}
}

// writeNoSuchDevice answers for a gateway that is not registered or not the
// caller's organisation's: the same answer, so that operators learn nothing
// of other organisations' fleets.
func writeNoSuchDevice(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteError(w, r, httpapi.Errorf(http.StatusNotFound, "no such device").
		WithHint("gwpki devices lists your organisation's gateways"))
}
