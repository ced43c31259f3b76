package claim

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/gwpki/gwpki/internal/audit"
	"github.com/gwpki/gwpki/internal/events"
)

var (
	// ErrWrongCode is wrapped by the [*WrongCodeError] that [Claims.Claim]
	// returns for a code that is not the gateway's, and for any code
	// given with a serial that is not registered: the two are answered
	// alike.
	ErrWrongCode = errors.New("wrong claim code")

	// ErrAlreadyClaimed is wrapped by the [*AlreadyClaimedError] that
	// [Claims.Claim] returns for a right code of a gateway that is
	// claimed already.
	ErrAlreadyClaimed = errors.New("gateway is already claimed")

	// ErrCodeUsed is returned by [Claims.Claim] for a right code that is
	// spent: the label code after its claim, or a display code of the
	// window of an earlier claim.
	ErrCodeUsed = errors.New("claim code already used")

	// ErrNotClaimed is returned by [Claims.Unclaim] for a gateway that is
	// not claimed.
	ErrNotClaimed = errors.New("gateway is not claimed")
)

// WrongCodeError is returned by [Claims.Claim] for a wrong code: the attempt
// was counted.
type WrongCodeError struct {
	// AttemptsLeft is how many more failures the gateway, the user and
	// the source may have before back-off or a limit ([Attempts.Left]).
	AttemptsLeft int
}

func (e *WrongCodeError) Error() string {
	return fmt.Sprintf("%v: %d attempts left before back-off", ErrWrongCode, e.AttemptsLeft)
}

// Unwrap makes errors.Is(err, ErrWrongCode) hold.
func (e *WrongCodeError) Unwrap() error { return ErrWrongCode }

// AlreadyClaimedError is returned by [Claims.Claim] for a right code of a
// claimed gateway. It does not say by whom.
type AlreadyClaimedError struct {
	// Yours: the gateway is the claiming user's organisation's.
	Yours bool
}

func (e *AlreadyClaimedError) Error() string {
	if e.Yours {
		return ErrAlreadyClaimed.Error() + " by your organisation"
	}
	return ErrAlreadyClaimed.Error()
}

// Unwrap makes errors.Is(err, ErrAlreadyClaimed) hold.
func (e *AlreadyClaimedError) Unwrap() error { return ErrAlreadyClaimed }

// EventKind says what happened to a gateway's ownership.
type EventKind string

const (
	// EventClaimed: the gateway became Org's.
	EventClaimed EventKind = "claimed"
	// EventUnclaimed: the gateway is no longer Org's.
	EventUnclaimed EventKind = "unclaimed"
)

// Event is published on [Claims.Events] after a claim or an unclaim is
// durable; the broker tells the gateway (gw/<serial>/cmd/claimed).
type Event struct {
	Kind   EventKind
	Serial string
	Org    string
	At     time.Time
}

// RevokeOperational revokes the operational certificates of a gateway (not
// its birth certificate) on behalf of actor, and returns the serials it
// revoked. gwpki serve wires the CA's.
type RevokeOperational func(ctx context.Context, gateway, actor, source string) (revoked []string, err error)

// ClaimRequest is one attempt to claim a gateway.
type ClaimRequest struct {
	Serial string
	// Code is the code as the installer typed it.
	Code string
	// User is the authenticated user claiming for their organisation.
	User User
	// Source is the client's address, for the limits and the audit log.
	Source string
}

// Claims makes gateways organisations' and lets them go again: it checks a
// claim code against the registry under the attempt limits, records the
// ownership in the registry, audits every attempt and publishes claims and
// unclaims on [Claims.Events]. It is safe for concurrent use.
type Claims struct {
	registry *Registry
	attempts *Attempts
	audit    *audit.Log
	revoke   RevokeOperational
	events   events.Topic[Event]
	now      func() time.Time
	log      *slog.Logger
	counted  counters // gwpki_claim_attempts_total by result
}

// NewClaims returns the claim service over registry and attempts, recording
// in auditLog and revoking with revoke on unclaims. It heeds [WithClock],
// [WithLogger] and [WithRegisterer].
func NewClaims(registry *Registry, attempts *Attempts, auditLog *audit.Log, revoke RevokeOperational, opts ...Option) (*Claims, error) {
	if registry == nil || attempts == nil || auditLog == nil || revoke == nil {
		return nil, errors.New("claim service: registry, attempts, audit log and revocation are all needed")
	}
	o := options{clock: time.Now, logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	counted, err := newClaimMetrics(o.registerer)
	if err != nil {
		return nil, err
	}
	return &Claims{registry: registry, attempts: attempts, audit: auditLog, revoke: revoke, now: o.clock, log: o.logger,
		counted: counted}, nil
}

// Events is where claims and unclaims are published once durable.
func (c *Claims) Events() *events.Topic[Event] { return &c.events }

// Claim makes the gateway req.Serial req.User's organisation's if req.Code
// is its current (or previous) display code or its unused label code.
//
// Before anything is counted it refuses a malformed serial
// ([ErrInvalidSerial]) and a code that [ParseCode] refuses ([ErrCodeTypo],
// [ErrCodeMalformed]). Then it reserves an attempt ([Attempts.Reserve]):
// a limit reached is a [*LimitError]. A code that is not the gateway's, or
// any code for a serial that is not registered, is a [*WrongCodeError] and
// stays counted. Only a right code learns the gateway's state: a
// [*AlreadyClaimedError] for a claimed gateway, [ErrCodeUsed] for a spent
// code. Every outcome is audited as action "claim", never with the code.
func (c *Claims) Claim(ctx context.Context, req ClaimRequest) (Device, CodeKind, error) {
	dev, kind, err := c.claim(ctx, req)
	c.counted[claimResult(err)].Inc()
	c.auditClaim(ctx, req, kind, err)
	if err != nil {
		return Device{}, kind, err
	}
	c.log.Info("gateway claimed", "serial", dev.Serial, "org", dev.Org, "user", req.User.Username, "code", kind.String())
	c.events.Publish(Event{Kind: EventClaimed, Serial: dev.Serial, Org: dev.Org, At: dev.ClaimedAt})
	return dev, kind, nil
}

func (c *Claims) claim(ctx context.Context, req ClaimRequest) (Device, CodeKind, error) {
	if err := validateSerial(req.Serial); err != nil {
		return Device{}, 0, fmt.Errorf("claim: %w", err)
	}
	code, err := ParseCode(req.Code)
	if err != nil {
		return Device{}, 0, fmt.Errorf("claim %s: %w", req.Serial, err)
	}
	user := req.User.Username
	// Counted before the code is looked at, so that parallel guesses
	// cannot pass a limit together. An unknown serial is counted as a
	// gateway too: its answers must not differ from a registered one's.
	if err := c.attempts.Reserve(ctx, req.Serial, user, req.Source); err != nil {
		return Device{}, code.Kind, err
	}
	rec, err := c.registry.store.device(ctx, req.Serial)
	known := err == nil
	if err != nil && !errors.Is(err, ErrDeviceNotFound) {
		return Device{}, code.Kind, fmt.Errorf("claim %s: %w", req.Serial, err)
	}
	now := c.now()
	window, ok := c.verify(rec, req.Serial, code, now)
	if !known || !ok {
		return Device{}, code.Kind, c.wrongCode(ctx, req)
	}
	// The code is right: whatever the gateway's state, this was no guess.
	if err := c.attempts.Refund(ctx, req.Serial, user, req.Source); err != nil {
		return Device{}, code.Kind, fmt.Errorf("claim %s: %w", req.Serial, err)
	}
	claimed, err := c.registry.store.update(ctx, req.Serial, func(old *deviceRecord) (deviceRecord, bool, error) {
		switch {
		case old == nil:
			return deviceRecord{}, false, ErrDeviceNotFound
		case old.Generation != rec.Generation:
			// Reissued since the code was checked: it is no longer
			// the gateway's code.
			return *old, false, ErrWrongCode
		case old.State == StateClaimed:
			return *old, false, &AlreadyClaimedError{Yours: old.Org == req.User.Org}
		case code.Kind == CodeLabel && old.LabelUsed,
			code.Kind == CodeDisplay && window <= old.DisplayUsed:
			return *old, false, ErrCodeUsed
		}
		r := *old
		r.State, r.Org, r.ClaimedAt, r.ClaimedBy = StateClaimed, req.User.Org, now.UTC(), user
		if code.Kind == CodeLabel {
			r.LabelUsed = true
		} else {
			r.DisplayUsed = window
		}
		return r, true, nil
	})
	switch {
	case errors.Is(err, ErrWrongCode):
		return Device{}, code.Kind, c.wrongCode(ctx, req)
	case err != nil:
		return Device{}, code.Kind, fmt.Errorf("claim %s: %w", req.Serial, err)
	}
	return claimed.device(), code.Kind, nil
}

// verify checks code against the gateway's, and for a display code returns
// the window it belongs to. For an unknown gateway (rec's generation 0,
// which no device has) it does the same work and fails, so that timing
// does not tell registered serials apart.
func (c *Claims) verify(rec deviceRecord, serial string, code Code, now time.Time) (window uint64, ok bool) {
	generation := rec.Generation
	if code.Kind == CodeLabel {
		return 0, VerifyLabelCode(c.registry.key, serial, generation, code) && generation > 0
	}
	window, ok = matchDisplayCode(ClaimSecret(c.registry.key, serial, generation), serial, code, now)
	return window, ok && generation > 0
}

// matchDisplayCode is [VerifyDisplayCode] that also returns the window the
// code belongs to.
func matchDisplayCode(secret []byte, serial string, c Code, now time.Time) (uint64, bool) {
	w := displayWindowOf(now)
	cur := subtle.ConstantTimeCompare([]byte(c.Symbols), []byte(displayCodeAt(secret, serial, w)))
	prev := subtle.ConstantTimeCompare([]byte(c.Symbols), []byte(displayCodeAt(secret, serial, w-1)))
	switch {
	case c.Kind != CodeDisplay:
		return 0, false
	case cur == 1:
		return w, true
	case prev == 1:
		return w - 1, true
	}
	return 0, false
}

// wrongCode returns the error of a counted failure, with what is left.
func (c *Claims) wrongCode(ctx context.Context, req ClaimRequest) error {
	left, err := c.attempts.Left(ctx, req.Serial, req.User.Username, req.Source)
	if err != nil {
		// Only the count is lost; the answer stays a wrong code.
		c.log.Error("count claim attempts left", "err", err, "serial", req.Serial)
	}
	return &WrongCodeError{AttemptsLeft: left}
}

// claimResults are the reasons of claim refusals, in the words of the audit
// log and of [ClaimRefusal].Reason.
var claimResults = []struct {
	err    error
	reason string
}{
	{ErrInvalidSerial, "invalid_serial"},
	{ErrCodeTypo, "typo"},
	{ErrCodeMalformed, "malformed"},
	{ErrWrongCode, "wrong_code"},
	{ErrAlreadyClaimed, "already_claimed"},
	{ErrCodeUsed, "code_used"},
}

func (c *Claims) auditClaim(ctx context.Context, req ClaimRequest, kind CodeKind, err error) {
	detail := map[string]string{}
	if kind != 0 {
		detail["code_kind"] = kind.String()
	}
	result := audit.ResultOK
	var le *LimitError
	switch {
	case err == nil:
	case errors.As(err, &le):
		result = audit.ResultRefused
		detail["reason"] = "limited"
		detail["scope"] = le.Scope
		if le.Locked {
			detail["reason"] = "locked"
		}
	default:
		result = audit.ResultFailed
		for _, r := range claimResults {
			if errors.Is(err, r.err) {
				result, detail["reason"] = audit.ResultRefused, r.reason
				break
			}
		}
		var wc *WrongCodeError
		if errors.As(err, &wc) {
			detail["attempts_left"] = strconv.Itoa(wc.AttemptsLeft)
		}
	}
	c.record(ctx, audit.Entry{
		Actor: audit.UserActor(req.User.Username), Org: req.User.Org, Action: "claim", Target: req.Serial,
		Result: result, Source: sourceHost(req.Source), Detail: detail,
	})
}

// record appends e to the audit log, also when the request's context has
// ended; a failure is logged, since the action itself stands.
func (c *Claims) record(ctx context.Context, e audit.Entry) {
	if _, err := c.audit.Record(context.WithoutCancel(ctx), e); err != nil {
		c.log.Error("audit "+e.Action, "err", err, "actor", e.Actor, "target", e.Target, "result", e.Result)
	}
}

// visible reports whether user may see and act on rec: admins on every
// gateway, others on their organisation's.
func visible(user User, rec deviceRecord) bool {
	return user.Role == RoleAdmin || rec.State == StateClaimed && rec.Org == user.Org
}

// Unclaim releases the claimed gateway serial from its organisation on
// behalf of user (an operator of that organisation, or an admin). It first
// revokes the gateway's operational certificates, so that it must bootstrap
// again, then marks it unclaimed: it can be claimed again with a display
// code newer than the one of its last claim; a used label code stays spent.
// It returns [ErrDeviceNotFound] for a serial that is not registered or not
// user's to see, and [ErrNotClaimed]. It is audited as action "unclaim".
func (c *Claims) Unclaim(ctx context.Context, serial string, user User, source string) (Device, []string, error) {
	dev, revoked, org, err := c.unclaim(ctx, serial, user, source)
	result, detail := audit.ResultOK, map[string]string{}
	switch {
	case errors.Is(err, ErrDeviceNotFound), errors.Is(err, ErrNotClaimed), errors.Is(err, ErrInvalidSerial):
		result, detail["reason"] = audit.ResultRefused, publicReason(err)
	case err != nil:
		result = audit.ResultFailed
	default:
		detail["revoked"] = strconv.Itoa(len(revoked))
	}
	if org == "" {
		org = user.Org
	}
	c.record(ctx, audit.Entry{
		Actor: audit.UserActor(user.Username), Org: org, Action: "unclaim", Target: serial,
		Result: result, Source: sourceHost(source), Detail: detail,
	})
	if err != nil {
		return Device{}, nil, err
	}
	c.log.Info("gateway unclaimed", "serial", serial, "org", org, "user", user.Username, "revoked", len(revoked))
	c.events.Publish(Event{Kind: EventUnclaimed, Serial: serial, Org: org, At: c.now().UTC()})
	return dev, revoked, nil
}

func (c *Claims) unclaim(ctx context.Context, serial string, user User, source string) (dev Device, revoked []string, org string, err error) {
	if err := validateSerial(serial); err != nil {
		return Device{}, nil, "", fmt.Errorf("unclaim: %w", err)
	}
	rec, err := c.registry.store.device(ctx, serial)
	switch {
	case err != nil:
		return Device{}, nil, "", fmt.Errorf("unclaim %s: %w", serial, err)
	case !visible(user, rec) && rec.State == StateClaimed:
		return Device{}, nil, "", fmt.Errorf("unclaim %s: %w", serial, ErrDeviceNotFound)
	case rec.State != StateClaimed:
		if user.Role != RoleAdmin {
			// Nobody's gateway is no operator's to see.
			return Device{}, nil, "", fmt.Errorf("unclaim %s: %w", serial, ErrDeviceNotFound)
		}
		return Device{}, nil, "", fmt.Errorf("unclaim %s: %w", serial, ErrNotClaimed)
	}
	// Revoked first: should the unclaim fail after, the gateway is still
	// claimed and the operator can run it again.
	revoked, err = c.revoke(ctx, serial, audit.UserActor(user.Username), source)
	if err != nil {
		return Device{}, nil, rec.Org, fmt.Errorf("unclaim %s: revoke operational certificates: %w", serial, err)
	}
	out, err := c.registry.store.update(ctx, serial, func(old *deviceRecord) (deviceRecord, bool, error) {
		if old == nil || old.State != StateClaimed || old.Org != rec.Org {
			// Changed hands meanwhile: that claim stands.
			return deviceRecord{}, false, ErrNotClaimed
		}
		r := *old
		r.State, r.Org, r.ClaimedAt, r.ClaimedBy = StateUnclaimed, "", time.Time{}, ""
		return r, true, nil
	})
	if err != nil {
		return Device{}, revoked, rec.Org, fmt.Errorf("unclaim %s: %w", serial, err)
	}
	return out.device(), revoked, rec.Org, nil
}

// UnlockResult is what [Claims.Unlock] cleared.
type UnlockResult struct {
	Serial string `json:"serial"`
	// WasLocked: the gateway was locked; Failures were counted since its
	// last claim or unlock.
	WasLocked bool `json:"was_locked"`
	Failures  int  `json:"failures"`
}

// Unlock clears the claim attempt lock, back-off and failures of the
// gateway serial on behalf of user: an operator or admin. A claimed gateway
// is its organisation's to unlock; an unclaimed one, nobody's yet, any
// operator's (the user and source limits still bound the guessing an
// unlock lets through). It returns [ErrDeviceNotFound] for a serial not
// registered or not user's to see. It is audited as action "unlock".
func (c *Claims) Unlock(ctx context.Context, serial string, user User, source string) (UnlockResult, error) {
	res, org, err := c.unlock(ctx, serial, func(rec deviceRecord) bool {
		return rec.State != StateClaimed || visible(user, rec)
	})
	c.auditUnlock(ctx, audit.UserActor(user.Username), pick(org, user.Org), serial, source, res, err, nil)
	return res, err
}

// PressButton is a press of the gateway's claim button, reported by the
// gateway serial over its own authenticated connection: physical access
// again, so it clears the gateway's lock, back-off and failures like an
// operator's unlock. It is audited as action "unlock" by the gateway.
func (c *Claims) PressButton(ctx context.Context, serial, source string) (UnlockResult, error) {
	res, org, err := c.unlock(ctx, serial, func(deviceRecord) bool { return true })
	c.auditUnlock(ctx, audit.GatewayActor(serial), org, serial, source, res, err, map[string]string{"via": "claim-button"})
	return res, err
}

func (c *Claims) unlock(ctx context.Context, serial string, may func(deviceRecord) bool) (UnlockResult, string, error) {
	if err := validateSerial(serial); err != nil {
		return UnlockResult{}, "", fmt.Errorf("unlock: %w", err)
	}
	rec, err := c.registry.store.device(ctx, serial)
	if err != nil {
		return UnlockResult{}, "", fmt.Errorf("unlock %s: %w", serial, err)
	}
	if !may(rec) {
		return UnlockResult{}, "", fmt.Errorf("unlock %s: %w", serial, ErrDeviceNotFound)
	}
	st, err := c.attempts.Gateway(ctx, serial)
	if err != nil {
		return UnlockResult{}, rec.Org, err
	}
	if err := c.attempts.Unlock(ctx, serial); err != nil {
		return UnlockResult{}, rec.Org, err
	}
	return UnlockResult{Serial: serial, WasLocked: st.Locked, Failures: st.Total}, rec.Org, nil
}

func (c *Claims) auditUnlock(ctx context.Context, actor, org, serial, source string, res UnlockResult, err error, detail map[string]string) {
	if detail == nil {
		detail = map[string]string{}
	}
	result := audit.ResultOK
	switch {
	case errors.Is(err, ErrDeviceNotFound), errors.Is(err, ErrInvalidSerial):
		result, detail["reason"] = audit.ResultRefused, publicReason(err)
	case err != nil:
		result = audit.ResultFailed
	default:
		detail["was_locked"] = strconv.FormatBool(res.WasLocked)
		detail["failures"] = strconv.Itoa(res.Failures)
	}
	c.record(ctx, audit.Entry{
		Actor: actor, Org: org, Action: "unlock", Target: serial,
		Result: result, Source: sourceHost(source), Detail: detail,
	})
}

// publicReason names a refusal in the audit log's words.
func publicReason(err error) string {
	switch {
	case errors.Is(err, ErrDeviceNotFound):
		return "no_such_device"
	case errors.Is(err, ErrNotClaimed):
		return "not_claimed"
	case errors.Is(err, ErrInvalidSerial):
		return "invalid_serial"
	}
	return ""
}

func pick(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
