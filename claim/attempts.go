package claim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gwpki/gwpki/internal/store"
)

// Limits bound how often claim codes may be guessed. A zero field means its
// default, the value in [DefaultLimits].
type Limits struct {
	// GatewayWindow is the sliding window over which a gateway's free
	// failures are counted (default 15m).
	GatewayWindow time.Duration
	// GatewayFree is how many failures a gateway tolerates within
	// GatewayWindow before back-off starts (default 5).
	GatewayFree int
	// GatewayBackoff is the first back-off of a streak; each further
	// failure of the streak doubles it (default 1m).
	GatewayBackoff time.Duration
	// GatewayMaxBackoff caps a gateway's back-off (default 24h).
	GatewayMaxBackoff time.Duration
	// GatewayLock is how many failures since the gateway's last successful
	// claim or unlock, however far apart, lock it (default 20).
	GatewayLock int
	// UserWindow and UserMax: at most UserMax attempts by one user within
	// any UserWindow (defaults 1h and 10).
	UserWindow time.Duration
	UserMax    int
	// SourceWindow and SourceMax: at most SourceMax attempts from one
	// source address within any SourceWindow (defaults 1h and 30).
	SourceWindow time.Duration
	SourceMax    int
}

// DefaultLimits are the limits of DESIGN.md: per gateway 5 failures per 15
// minutes, then back-off up to 24 hours, and a lock at 20; per user 10 an
// hour; per source address 30 an hour.
var DefaultLimits = Limits{
	GatewayWindow:     15 * time.Minute,
	GatewayFree:       5,
	GatewayBackoff:    time.Minute,
	GatewayMaxBackoff: 24 * time.Hour,
	GatewayLock:       20,
	UserWindow:        time.Hour,
	UserMax:           10,
	SourceWindow:      time.Hour,
	SourceMax:         30,
}

// withDefaults returns l with every zero or negative field set to its
// default.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	setDur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setInt := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setDur(&l.GatewayWindow, d.GatewayWindow)
	setInt(&l.GatewayFree, d.GatewayFree)
	setDur(&l.GatewayBackoff, d.GatewayBackoff)
	setDur(&l.GatewayMaxBackoff, d.GatewayMaxBackoff)
	setInt(&l.GatewayLock, d.GatewayLock)
	setDur(&l.UserWindow, d.UserWindow)
	setInt(&l.UserMax, d.UserMax)
	setDur(&l.SourceWindow, d.SourceWindow)
	setInt(&l.SourceMax, d.SourceMax)
	return l
}

// backoff is the back-off set by the n-th failure (n >= 1) of a back-off
// streak: 2^(n-1) times base, at most max.
func backoff(n int, base, max time.Duration) time.Duration {
	if n < 1 {
		return 0
	}
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// Scopes of a [LimitError].
const (
	ScopeGateway = "gateway"
	ScopeUser    = "user"
	ScopeSource  = "source"
)

// LimitError is returned by [Attempts.Reserve] when a claim attempt limit is
// reached; nothing was counted. It names the limit, never the code tried.
type LimitError struct {
	// Scope is the limit that refused: [ScopeGateway], [ScopeUser] or
	// [ScopeSource]. When several refuse, a lock wins, then the longest wait.
	Scope string
	// RetryAfter is how long until that limit lets an attempt through
	// again; 0 when Locked.
	RetryAfter time.Duration
	// Locked means the gateway takes no attempts until an operator unlocks
	// it or its claim button is pressed ([Attempts.Unlock]).
	Locked bool
}

func (e *LimitError) Error() string {
	if e.Locked {
		return "claims of this gateway are locked after too many failed attempts: " +
			"an operator must unlock it, or its claim button be pressed"
	}
	what := map[string]string{
		ScopeGateway: "for this gateway",
		ScopeUser:    "by this user",
		ScopeSource:  "from this address",
	}[e.Scope]
	if what == "" {
		what = "(" + e.Scope + ")"
	}
	// Rounded up, so that a caller retrying on time is let through.
	retry := (e.RetryAfter + time.Second - 1).Truncate(time.Second)
	return fmt.Sprintf("too many failed claim attempts %s: retry after %s", what, retry)
}

// GatewayAttempts is the state of one gateway's attempt limit, as
// [Attempts.Gateway] reports it.
type GatewayAttempts struct {
	// Failures is how many failures fall within the gateway window now
	// (the store keeps at most GatewayFree+1 of them).
	Failures int
	// Total is the number of failures since the last successful claim or
	// unlock; the gateway is locked when it reaches GatewayLock.
	Total int
	// NextAttempt is when back-off ends; zero when none is in force.
	NextAttempt time.Time
	// Locked is set once Total has reached GatewayLock.
	Locked bool
	// LastFailure is when the newest failure was counted; zero when there
	// is none. A locked gateway counts no further failures, so for it this
	// is when it was locked; in back-off, when the back-off began.
	LastFailure time.Time
}

// maxAttemptKeyLen bounds the names Reserve accepts, so that a caller
// cannot make the store keep huge keys.
const maxAttemptKeyLen = 256

// Attempts counts claim code attempts per gateway, per user and per source
// address in the store, so that the limits survive restarts and hold across
// server nodes sharing the store. It sees no codes: the caller reserves an
// attempt, checks the code, and refunds the attempt if it was right. It keeps
// no state besides the counters, so failed guesses never cancel a pending
// claim. It is safe for concurrent use.
//
// Gateway: a failure is every reserved attempt that is not refunded. Up to
// GatewayFree failures within any GatewayWindow are free. A failure beyond
// them starts a back-off streak, and each failure of a streak sets a back-off
// during which Reserve refuses: the k-th failure beyond the free ones, that
// is the (GatewayFree+k)-th, waits 2^(k-1) times GatewayBackoff (1, 2, 4, ...
// minutes by default, capped at GatewayMaxBackoff). The streak goes on as long as each failure comes within
// GatewayWindow after the previous back-off ended; after that much quiet the
// free failures are available again. Independently, GatewayLock failures since
// the last successful claim or unlock, however far apart, lock the gateway
// until [Attempts.Unlock] (an operator, or a press of the gateway's claim
// button). A successful claim ([Attempts.Refund]) forgets all of it.
//
// User and source: at most UserMax attempts by one user, and SourceMax from
// one source, within any sliding window (UserWindow, SourceWindow). A source
// is counted by its IP address, an IPv6 address by its /64 (one host commonly
// holds a whole /64); unparsable sources share one counter.
//
// Storage is bounded: a gateway keeps one small record until its next success
// or unlock (gateways are as many as the registry holds, so the caller should
// pass only registered gateways, or "" for an unknown one), and a user or
// source at most its limit's worth of timestamps, deleted once the window has
// passed (on its next write, or by [Attempts.Prune], which Reserve runs every
// 15 minutes).
type Attempts struct {
	store  *attemptStore
	limits Limits
	now    func() time.Time
	log    *slog.Logger
	locks  prometheus.Counter // gwpki_claim_locks_total

	sweepMu   sync.Mutex
	nextSweep time.Time
}

// NewAttempts returns the claim attempt limits kept in db, creating their
// buckets if needed. Zero fields of limits take their defaults
// ([DefaultLimits]). It heeds [WithClock], [WithLogger] and
// [WithRegisterer].
func NewAttempts(db *store.DB, limits Limits, opts ...Option) (*Attempts, error) {
	o := options{clock: time.Now, logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	st, err := newAttemptStore(context.Background(), db)
	if err != nil {
		return nil, fmt.Errorf("open claim attempts store: %w", err)
	}
	locks, err := newLockMetric(o.registerer)
	if err != nil {
		return nil, err
	}
	return &Attempts{store: st, limits: limits.withDefaults(), now: o.clock, log: o.logger, locks: locks}, nil
}

// Limits returns the limits in force, defaults filled in.
func (a *Attempts) Limits() Limits { return a.limits }

// attemptKeys are the store keys of one attempt; an empty key is not
// counted.
type attemptKeys struct {
	gateway, user, source string
}

func (a *Attempts) keys(gateway, user, source string) (attemptKeys, error) {
	for _, k := range []struct{ scope, v string }{{ScopeGateway, gateway}, {ScopeUser, user}, {ScopeSource, source}} {
		if len(k.v) > maxAttemptKeyLen {
			return attemptKeys{}, fmt.Errorf("%s name longer than %d bytes", k.scope, maxAttemptKeyLen)
		}
	}
	k := attemptKeys{gateway: gateway, user: user}
	if source != "" {
		k.source = addressBucket(source)
	}
	return k, nil
}

// Reserve counts one attempt against gateway, user and source, before the
// code is checked, atomically and durably, so that parallel guesses cannot
// together exceed a limit. If any limit is already reached it counts nothing
// and returns a [*LimitError]. The caller then checks the code and calls
// [Attempts.Refund] if it was right; an attempt not refunded is a failure.
//
// source is the client's address, host:port or host. An empty gateway, user
// or source is not counted (a gateway not in the registry, say).
func (a *Attempts) Reserve(ctx context.Context, gateway, user, source string) error {
	k, err := a.keys(gateway, user, source)
	if err != nil {
		return fmt.Errorf("reserve claim attempt: %w", err)
	}
	now := a.now()
	a.maybePrune(ctx, now)
	locked, err := a.store.reserve(ctx, k, now, a.limits)
	if err != nil {
		if le := (*LimitError)(nil); errors.As(err, &le) {
			return le
		}
		return fmt.Errorf("reserve claim attempt: %w", err)
	}
	if locked {
		a.locks.Inc()
		a.log.Warn("gateway claim locked after too many failed attempts",
			"gateway", gateway, "user", user, "source", source, "failures", a.limits.GatewayLock)
	}
	return nil
}

// Refund takes back an attempt reserved with the same arguments that turned
// out right: a successful claim. It clears the gateway's failures, back-off
// and lock, and takes the newest attempt in the window off the user's and
// the source's counts.
func (a *Attempts) Refund(ctx context.Context, gateway, user, source string) error {
	k, err := a.keys(gateway, user, source)
	if err != nil {
		return fmt.Errorf("refund claim attempt: %w", err)
	}
	if err := a.store.refund(ctx, k, a.now(), a.limits); err != nil {
		return fmt.Errorf("refund claim attempt: %w", err)
	}
	return nil
}

// Unlock clears a gateway's lock, back-off and failures: an operator's
// decision, or a press of the gateway's claim button. Unlocking a gateway
// with no failures is no error.
func (a *Attempts) Unlock(ctx context.Context, gateway string) error {
	if err := a.store.clearGateway(ctx, gateway); err != nil {
		return fmt.Errorf("unlock gateway %s claims: %w", gateway, err)
	}
	a.log.Info("gateway claim attempts cleared", "gateway", gateway)
	return nil
}

// Gateway returns the state of a gateway's attempt limit now. It only
// reads: the fleet view calls it for every gateway of a page.
func (a *Attempts) Gateway(ctx context.Context, gateway string) (GatewayAttempts, error) {
	rec, err := a.store.gateway(ctx, gateway)
	if err != nil {
		return GatewayAttempts{}, fmt.Errorf("read gateway %s claim attempts: %w", gateway, err)
	}
	return rec.state(a.now(), a.limits), nil
}

// Left returns how many more failures gateway, user and source may have
// now before a limit refuses or back-off starts: the least of the gateway's
// free failures left in its window (none during a back-off streak), its
// failures left before the lock, and the user's and the source's attempts
// left in their windows. An empty name is not considered.
func (a *Attempts) Left(ctx context.Context, gateway, user, source string) (int, error) {
	k, err := a.keys(gateway, user, source)
	if err != nil {
		return 0, fmt.Errorf("count claim attempts left: %w", err)
	}
	left, err := a.store.left(ctx, k, a.now(), a.limits)
	if err != nil {
		return 0, fmt.Errorf("count claim attempts left: %w", err)
	}
	return left, nil
}

// Prune deletes user and source counters whose windows have passed.
// Reserve calls it every 15 minutes; calling it directly is for tests and
// maintenance.
func (a *Attempts) Prune(ctx context.Context) error {
	if err := a.store.prune(ctx, a.now(), a.limits); err != nil {
		return fmt.Errorf("prune claim attempts: %w", err)
	}
	return nil
}

// maybePrune runs Prune once per sweepInterval.
func (a *Attempts) maybePrune(ctx context.Context, now time.Time) {
	a.sweepMu.Lock()
	due := !now.Before(a.nextSweep)
	if due {
		a.nextSweep = now.Add(sweepInterval)
	}
	a.sweepMu.Unlock()
	if !due {
		return
	}
	if err := a.store.prune(ctx, now, a.limits); err != nil {
		// Only housekeeping: the next sweep tries again.
		a.log.Error("prune claim attempts", "err", err)
	}
}
