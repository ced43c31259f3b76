package claim

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"math/big"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gwpki/gwpki/internal/audit"
	"github.com/gwpki/gwpki/internal/store"
)

// Role is what a user may do. The zero value is no role and is never valid.
type Role uint8

const (
	// RoleInstaller claims gateways for the user's organisation.
	RoleInstaller Role = iota + 1
	// RoleOperator runs the fleet: revoke, unclaim, read telemetry.
	RoleOperator
	// RoleAdmin manages users and passes every role check.
	RoleAdmin
)

var roleNames = map[Role]string{
	RoleInstaller: "installer",
	RoleOperator:  "operator",
	RoleAdmin:     "admin",
}

// String returns the role's name as used in the API and on the command line.
func (r Role) String() string {
	if s, ok := roleNames[r]; ok {
		return s
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// Valid reports whether r is one of the defined roles.
func (r Role) Valid() bool {
	_, ok := roleNames[r]
	return ok
}

// ParseRole returns the role named s (installer, operator or admin), or an
// error wrapping [ErrInvalidRole].
func ParseRole(s string) (Role, error) {
	for r, name := range roleNames {
		if s == name {
			return r, nil
		}
	}
	return 0, fmt.Errorf("%w %q: want installer, operator or admin", ErrInvalidRole, s)
}

// MarshalText encodes the role as its name, so JSON carries "operator".
func (r Role) MarshalText() ([]byte, error) {
	if !r.Valid() {
		return nil, fmt.Errorf("marshal role: %w %d", ErrInvalidRole, uint8(r))
	}
	return []byte(r.String()), nil
}

// UnmarshalText decodes a role name.
func (r *Role) UnmarshalText(b []byte) error {
	v, err := ParseRole(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// User is an account as the API shows it; the password hash never leaves
// the package.
type User struct {
	Username  string    `json:"username"`
	Org       string    `json:"org"`
	Role      Role      `json:"role"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

// NewUser is what [Accounts.CreateUser] needs to create an account.
type NewUser struct {
	Username string
	// Org is the organisation's name; it is created with its first user.
	Org      string
	Role     Role
	Password string
}

// Name and password limits. Passwords are capped so that a login request
// cannot make the server hash megabytes.
const (
	maxNameLen        = 64
	minPasswordLen    = 8
	maxPasswordLen    = 1024
	defaultSessionTTL = 12 * time.Hour
	// sweepInterval is how often expired sessions and stale attempt
	// counters are deleted from the store.
	sweepInterval = 15 * time.Minute
)

// Option configures [NewAccounts].
type Option func(*options)

type options struct {
	clock      func() time.Time
	sessionTTL time.Duration
	logger     *slog.Logger
	audit      *audit.Log
	registerer prometheus.Registerer
}

// WithClock sets the clock used for session expiry, creation times and
// attempt limits (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.clock = now }
}

// WithSessionTTL sets how long a login session lasts (default 12h). A
// non-positive d keeps the default.
func WithSessionTTL(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.sessionTTL = d
		}
	}
}

// WithLogger sets the logger for logins and failures (default
// slog.Default()). Passwords and tokens are never logged.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithAudit records every login attempt, good or refused, in log (the
// username tried, the source address and the result; never a password).
func WithAudit(log *audit.Log) Option {
	return func(o *options) { o.audit = log }
}

// Accounts manages organisations, users and login sessions, and serves them
// under /v1 ([Accounts.Routes]). It is safe for concurrent use.
type Accounts struct {
	store  accountStore
	now    func() time.Time
	ttl    time.Duration
	log    *slog.Logger
	hasher *hasher
	limits loginLimits
	audit  *audit.Log // nil: logins are not audited
	logins counters   // gwpki_logins_total by result

	// dummyHash is verified when a login names no existing user, so that
	// the answer takes as long as for a wrong password.
	dummyHash string

	sweepMu   sync.Mutex
	nextSweep time.Time
}

// NewAccounts returns the accounts service keeping its data in db, creating
// its buckets if needed.
func NewAccounts(db *store.DB, opts ...Option) (*Accounts, error) {
	o := options{clock: time.Now, sessionTTL: defaultSessionTTL, logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	st, err := newBoltAccountStore(context.Background(), db)
	if err != nil {
		return nil, fmt.Errorf("open accounts store: %w", err)
	}
	return newAccounts(st, o)
}

func newAccounts(st accountStore, o options) (*Accounts, error) {
	a := &Accounts{
		store:  st,
		now:    o.clock,
		ttl:    o.sessionTTL,
		log:    o.logger,
		hasher: newHasher(defaultHashParams, max(2, runtime.GOMAXPROCS(0))),
		limits: defaultLoginLimits,
		audit:  o.audit,
	}
	var err error
	if a.logins, err = newLoginMetrics(o.registerer); err != nil {
		return nil, err
	}
	dummy, err := GeneratePassword()
	if err != nil {
		return nil, err
	}
	if a.dummyHash, err = a.hasher.hash(context.Background(), dummy); err != nil {
		return nil, fmt.Errorf("hash dummy password: %w", err)
	}
	return a, nil
}

// CreateUser creates a user, and its organisation if it is new. It returns
// [ErrInvalidUsername], [ErrInvalidOrg], [ErrInvalidRole],
// [ErrInvalidPassword] (8 to 1024 bytes) or [ErrUserExists] (wrapped).
func (a *Accounts) CreateUser(ctx context.Context, u NewUser) (User, error) {
	if !validName(u.Username) {
		return User{}, fmt.Errorf("create user: %w: want 1 to %d characters of a-z 0-9 . _ -", ErrInvalidUsername, maxNameLen)
	}
	if !validName(u.Org) {
		return User{}, fmt.Errorf("create user: %w: want 1 to %d characters of a-z 0-9 . _ -", ErrInvalidOrg, maxNameLen)
	}
	if !u.Role.Valid() {
		return User{}, fmt.Errorf("create user: %w: want installer, operator or admin", ErrInvalidRole)
	}
	if len(u.Password) < minPasswordLen || len(u.Password) > maxPasswordLen {
		return User{}, fmt.Errorf("create user: %w: want %d to %d bytes", ErrInvalidPassword, minPasswordLen, maxPasswordLen)
	}
	// Checked before hashing only to spare the work; createUser checks
	// again inside its transaction.
	if _, err := a.store.user(ctx, u.Username); err == nil {
		return User{}, fmt.Errorf("create user %s: %w", u.Username, ErrUserExists)
	}
	hash, err := a.hasher.hash(ctx, u.Password)
	if err != nil {
		return User{}, fmt.Errorf("hash password: %w", err)
	}
	rec := userRecord{
		Username:     u.Username,
		Org:          u.Org,
		Role:         u.Role.String(),
		PasswordHash: hash,
		CreatedAt:    a.now().UTC(),
	}
	if err := a.store.createUser(ctx, rec); err != nil {
		return User{}, fmt.Errorf("create user %s: %w", u.Username, err)
	}
	a.log.Info("user created", "user", u.Username, "org", u.Org, "role", u.Role.String())
	return rec.user()
}

// SetDisabled disables or re-enables a user. Disabling also ends the user's
// sessions. It returns [ErrUserNotFound] (wrapped) for an unknown user.
func (a *Accounts) SetDisabled(ctx context.Context, username string, disabled bool) (User, error) {
	rec, err := a.store.setDisabled(ctx, username, disabled)
	if err != nil {
		return User{}, fmt.Errorf("update user %s: %w", username, err)
	}
	a.log.Info("user updated", "user", username, "disabled", disabled)
	return rec.user()
}

// users returns every user, ordered by username.
func (a *Accounts) users(ctx context.Context) ([]User, error) {
	recs, err := a.store.users(ctx)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	out := make([]User, 0, len(recs))
	for _, rec := range recs {
		u, err := rec.user()
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// validName reports whether s is 1 to 64 characters of [a-z0-9._-], the rule
// for usernames and organisation names.
func validName(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// passwordAlphabet leaves out characters that are easily misread (0 O o 1 l
// I) since generated passwords are read off a terminal and typed again.
const passwordAlphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// generatedPasswordLen characters of a 56-symbol alphabet give about 139
// bits of entropy.
const generatedPasswordLen = 24

// GeneratePassword returns a random password of 24 characters (letters and
// digits without look-alikes), as `gwpki init` gives the first admin.
func GeneratePassword() (string, error) {
	b := make([]byte, generatedPasswordLen)
	n := big.NewInt(int64(len(passwordAlphabet)))
	for i := range b {
		// rand.Int is uniform: no modulo bias.
		k, err := rand.Int(rand.Reader, n)
		if err != nil {
			return "", fmt.Errorf("generate password: %w", err)
		}
		b[i] = passwordAlphabet[k.Int64()]
	}
	return string(b), nil
}
