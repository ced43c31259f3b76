package audit

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gwpki/gwpki/internal/store"
)

// Entry is one audited event.
type Entry struct {
	// Seq is assigned by [Log.Record]: it increases with every entry, in
	// the order entries are committed, and never repeats.
	Seq uint64 `json:"seq"`
	// Time is when it happened; [Log.Record] sets it from its clock when
	// zero and always keeps it in UTC.
	Time time.Time `json:"time"`
	// Actor is who acted: "user:<name>", "station:<name>",
	// "gateway:<serial>", "step-ca" or "system" (see [UserActor] and the
	// other helpers).
	Actor string `json:"actor"`
	// Org is the organisation the event concerns: the acting user's, or
	// the one owning the gateway acted on. It is empty for events of no
	// organisation (a station registering a gateway, the system), which
	// only admins see through [Log.Routes].
	Org string `json:"org,omitempty"`
	// Action is what was done, such as "revoke", "login" or "claim".
	Action string `json:"action"`
	// Target is what it acted on: a gateway serial, "cert:<serial>"
	// ([CertTarget]), a username.
	Target string `json:"target,omitempty"`
	// Result is [ResultOK], [ResultRefused] or [ResultFailed].
	Result string `json:"result"`
	// Source is the remote address the request came from, if any.
	Source string `json:"source,omitempty"`
	// Detail holds anything else worth keeping, such as a revocation
	// reason. Never secrets: callers must not put claim codes, tokens,
	// passwords or keys here.
	Detail map[string]string `json:"detail,omitempty"`
}

// Results of an audited action.
const (
	// ResultOK: the action was done.
	ResultOK = "ok"
	// ResultRefused: the action was not allowed (wrong code, missing role,
	// rate limit, invalid request).
	ResultRefused = "refused"
	// ResultFailed: the action was allowed but could not be done (an
	// internal error).
	ResultFailed = "failed"
)

// Actors that are not a user, station or gateway.
const (
	// ActorSystem is gwpki itself: scheduled work, start-up, migrations.
	ActorSystem = "system"
	// ActorStepCA is a request through step-ca's own API (/revoke, /renew)
	// authenticated by step-ca rather than by a gwpki session.
	ActorStepCA = "step-ca"
)

// UserActor returns the actor "user:<name>".
func UserActor(name string) string { return "user:" + name }

// StationActor returns the actor "station:<name>" of a line station.
func StationActor(name string) string { return "station:" + name }

// GatewayActor returns the actor "gateway:<serial>".
func GatewayActor(serial string) string { return "gateway:" + serial }

// CertTarget returns the target "cert:<serial>" of a certificate, serial
// being the certificate's serial number as step-ca writes it (decimal).
func CertTarget(serial string) string { return "cert:" + serial }

// Page sizes and the bound on the work of one filtered page.
const (
	// DefaultLimit is the page size when [Query.Limit] is zero.
	DefaultLimit = 100
	// MaxLimit is the largest page [Log.List] returns.
	MaxLimit = 1000
	// MaxScan is how many entries one [Log.List] call examines at most.
	// A filtered page that matches little stops there with fewer than
	// Limit entries (perhaps none) and a [Page.Next] to continue from.
	MaxScan = 10000
)

// Query selects a page of the log. The zero value is the newest
// [DefaultLimit] entries.
type Query struct {
	// Before returns entries with Seq < Before; 0 means from the newest.
	Before uint64
	// Limit is the most entries to return: 0 means [DefaultLimit], at most
	// [MaxLimit].
	Limit int
	// Action, Target and Actor, when not empty, keep only the entries whose
	// field is exactly equal.
	Action, Target, Actor string
	// Org, when not empty, keeps only the entries whose Org is exactly
	// equal; entries of no organisation never match it.
	Org string
}

// Page is one page of the log.
type Page struct {
	// Entries are newest first.
	Entries []Entry `json:"entries"`
	// Next, when not zero, is the Before of the next (older) page: there
	// may be more entries. Zero means the log has no older entries.
	Next uint64 `json:"next,omitempty"`
}

// Bounds of an entry. Action and detail keys are chosen by the code that
// records, so a bad one is refused; the other fields may carry what a remote
// caller sent (a username that failed to log in), so they are cut short
// rather than losing the entry.
const (
	maxActionLen      = 64
	maxActorLen       = 128
	maxOrgLen         = 64
	maxTargetLen      = 256
	maxSourceLen      = 128
	maxDetailKeys     = 16
	maxDetailKeyLen   = 64
	maxDetailValueLen = 1024
	// maxFilterLen bounds the filters of a query.
	maxFilterLen = 1024
)

// Redacted replaces the value of a detail whose key names a secret.
const Redacted = "[redacted]"

// Option configures [New].
type Option func(*options)

type options struct {
	clock  func() time.Time
	logger *slog.Logger
}

// WithClock sets the clock that stamps entries recorded without a time
// (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.clock = now }
}

// WithLogger sets the logger for entries that had to be cut short or
// redacted (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// Log is the audit log. It is safe for concurrent use.
type Log struct {
	store entryStore
	now   func() time.Time
	log   *slog.Logger
}

// New returns the audit log kept in db, creating its bucket if needed.
func New(db *store.DB, opts ...Option) (*Log, error) {
	o := options{clock: time.Now, logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	st, err := newBoltStore(context.Background(), db)
	if err != nil {
		return nil, fmt.Errorf("open audit store: %w", err)
	}
	return &Log{store: st, now: o.clock, log: o.logger}, nil
}

// Record appends e to the log and returns it as stored, with its Seq and
// Time, once it is durable. Many concurrent Records share one commit.
//
// Record validates e and returns an error wrapping [ErrInvalidEntry],
// writing nothing, when Action is not 1 to 64 characters of a-z 0-9 . _ : -,
// Result is not ok, refused or failed, a non-zero Time lies outside years 1
// to 9999, or Detail has more than 16 keys or a key that is not 1 to 64
// characters of a-z 0-9 . _ -. Fields that may hold what a remote caller
// sent are cut short instead, ending in "…": Org at 64 bytes, Actor and
// Source at 128, Target at 256, each detail value at 1024. Invalid UTF-8 becomes U+FFFD.
// The value of a detail whose key names a secret ("password", "claim_code",
// "api_key" and the like) is replaced by [Redacted].
//
// If ctx ends before the entry is taken into a commit, Record returns
// ctx.Err() and the entry is not written; callers that must not lose the
// entry when their request is cancelled pass context.WithoutCancel(ctx).
func (l *Log) Record(ctx context.Context, e Entry) (Entry, error) {
	out, err := l.record(ctx, []Entry{e})
	if err != nil {
		return Entry{}, fmt.Errorf("record audit entry: %w", err)
	}
	return out[0], nil
}

// RecordAll appends es in order in one durable commit, all or none, as one
// gateway's revocation revoking several certificates does. Each entry is
// validated as by [Log.Record]; one invalid entry fails them all. The
// entries get consecutive sequence numbers. An empty es writes nothing.
func (l *Log) RecordAll(ctx context.Context, es []Entry) ([]Entry, error) {
	if len(es) == 0 {
		return []Entry{}, nil
	}
	out, err := l.record(ctx, es)
	if err != nil {
		return nil, fmt.Errorf("record audit entries: %w", err)
	}
	return out, nil
}

func (l *Log) record(ctx context.Context, es []Entry) ([]Entry, error) {
	now := l.now()
	out := make([]Entry, len(es))
	for i, e := range es {
		c, err := l.clean(e, now)
		if err != nil {
			if len(es) > 1 {
				return nil, fmt.Errorf("entry %d: %w", i, err)
			}
			return nil, err
		}
		out[i] = c
	}
	if err := l.store.append(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// List returns a page of the log, newest first. It returns an error
// wrapping [ErrInvalidQuery] for a Limit below 0 or above [MaxLimit] or a
// filter longer than 1024 bytes. It examines at most [MaxScan] entries.
//
// With a Target filter it examines only that target's entries (through an
// index, so an old entry behind millions of newer ones costs one read),
// checking the other filters on each; a target holding a 0x00 byte is not
// indexed and is looked for like the other filters, among the newest entries.
func (l *Log) List(ctx context.Context, q Query) (Page, error) {
	switch {
	case q.Limit < 0 || q.Limit > MaxLimit:
		return Page{}, fmt.Errorf("list audit entries: %w: limit %d: want 1 to %d", ErrInvalidQuery, q.Limit, MaxLimit)
	case len(q.Action) > maxFilterLen || len(q.Target) > maxFilterLen || len(q.Actor) > maxFilterLen ||
		len(q.Org) > maxFilterLen:
		return Page{}, fmt.Errorf("list audit entries: %w: filter longer than %d bytes", ErrInvalidQuery, maxFilterLen)
	}
	if q.Limit == 0 {
		q.Limit = DefaultLimit
	}
	p, err := l.store.list(ctx, q, MaxScan)
	if err != nil {
		return Page{}, fmt.Errorf("list audit entries: %w", err)
	}
	return p, nil
}

// Len returns the number of entries. It walks the whole bucket: it is meant
// for tests and diagnostics, not for every request.
func (l *Log) Len(ctx context.Context) (int, error) {
	n, err := l.store.len(ctx)
	if err != nil {
		return 0, fmt.Errorf("count audit entries: %w", err)
	}
	return n, nil
}

// clean validates e and returns the entry to store: no Seq yet, a UTC time,
// bounded fields and a copy of Detail.
func (l *Log) clean(e Entry, now time.Time) (Entry, error) {
	if !validName(e.Action, maxActionLen, true) {
		return Entry{}, fmt.Errorf("%w: action %q: want 1 to %d characters of a-z 0-9 . _ : -",
			ErrInvalidEntry, shorten(e.Action, maxActionLen), maxActionLen)
	}
	switch e.Result {
	case ResultOK, ResultRefused, ResultFailed:
	default:
		return Entry{}, fmt.Errorf("%w: result %q: want ok, refused or failed", ErrInvalidEntry, shorten(e.Result, 32))
	}
	if e.Time.IsZero() {
		e.Time = now
	}
	// UTC also drops the monotonic reading, so the entry returned equals
	// the one read back.
	e.Time = e.Time.UTC()
	if y := e.Time.Year(); y < 1 || y > 9999 {
		return Entry{}, fmt.Errorf("%w: time %s: want years 1 to 9999", ErrInvalidEntry, e.Time.Format(time.RFC3339))
	}
	if len(e.Detail) > maxDetailKeys {
		return Entry{}, fmt.Errorf("%w: %d details: want at most %d", ErrInvalidEntry, len(e.Detail), maxDetailKeys)
	}
	e.Seq = 0
	e.Actor = l.bound(e.Action, "actor", e.Actor, maxActorLen)
	e.Org = l.bound(e.Action, "org", e.Org, maxOrgLen)
	e.Target = l.bound(e.Action, "target", e.Target, maxTargetLen)
	e.Source = l.bound(e.Action, "source", e.Source, maxSourceLen)
	if len(e.Detail) == 0 {
		// Stored without details, read back as nil: the same entry.
		e.Detail = nil
		return e, nil
	}
	d := make(map[string]string, len(e.Detail))
	for k, v := range e.Detail {
		if !validName(k, maxDetailKeyLen, false) {
			return Entry{}, fmt.Errorf("%w: detail key %q: want 1 to %d characters of a-z 0-9 . _ -",
				ErrInvalidEntry, shorten(k, maxDetailKeyLen), maxDetailKeyLen)
		}
		if secretKey(k) && v != "" {
			l.log.Warn("audit detail redacted: its key names a secret", "action", e.Action, "key", k)
			v = Redacted
		}
		d[k] = l.bound(e.Action, "detail "+k, v, maxDetailValueLen)
	}
	e.Detail = d
	return e, nil
}

// bound returns s as valid UTF-8 of at most max bytes, logging when it had
// to cut.
func (l *Log) bound(action, field, s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	l.log.Warn("audit field cut short", "action", action, "field", field, "bytes", len(s), "max", max)
	return shorten(s, max)
}

// shorten cuts s to at most max bytes on a rune boundary, ending in "…".
func shorten(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const ellipsis = "…"
	cut := max - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

// validName reports whether s is 1 to max characters of a-z 0-9 . _ - (and :
// when colon is set).
func validName(s string, max int, colon bool) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' || colon && c == ':') {
			return false
		}
	}
	return true
}

// secretKey reports whether a detail key names something that must never
// be stored: callers are told not to, this catches the obvious slips. It
// matches keys containing password, passwd, secret, token, private or
// credential, keys with a word (between . _ -) pin or otp, and keys whose
// last word is code or key ("claim_code", "api_key", but not "key_type").
func secretKey(k string) bool {
	for _, s := range []string{"password", "passwd", "secret", "token", "private", "credential"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	words := strings.FieldsFunc(k, func(r rune) bool { return r == '.' || r == '_' || r == '-' })
	for _, w := range words {
		if w == "pin" || w == "otp" {
			return true
		}
	}
	if len(words) > 0 {
		switch words[len(words)-1] {
		case "code", "key":
			return true
		}
	}
	return false
}
