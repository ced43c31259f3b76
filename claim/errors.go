package claim

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrInvalidUsername is returned by [Accounts.CreateUser] when the
	// username is not 1 to 64 characters of [a-z0-9._-].
	ErrInvalidUsername = errors.New("invalid username")

	// ErrInvalidOrg is returned by [Accounts.CreateUser] when the
	// organisation name is not 1 to 64 characters of [a-z0-9._-].
	ErrInvalidOrg = errors.New("invalid organisation name")

	// ErrInvalidRole is returned by [ParseRole] for an unknown role name and
	// by [Accounts.CreateUser] when the new user's role is not one of
	// installer, operator or admin.
	ErrInvalidRole = errors.New("invalid role")

	// ErrInvalidPassword is returned by [Accounts.CreateUser] when the
	// password is shorter than 8 or longer than 1024 bytes, and by the login
	// behind POST /v1/login (answered 400) when it is longer than 1024 bytes.
	ErrInvalidPassword = errors.New("invalid password")

	// ErrUserExists is returned by [Accounts.CreateUser] when a user of that
	// name already exists.
	ErrUserExists = errors.New("user already exists")

	// ErrUserNotFound is returned by [Accounts.SetDisabled] when no user has
	// that name.
	ErrUserNotFound = errors.New("user not found")

	// ErrInvalidCredentials is returned by the login behind POST /v1/login
	// (answered 401) for an unknown user, a wrong password or a disabled
	// account alike, so that callers cannot tell which.
	ErrInvalidCredentials = errors.New("invalid username or password")

	// ErrRateLimited is wrapped by the [*RateLimitError] that the login
	// behind POST /v1/login returns (answered 429 with Retry-After) when too
	// many attempts failed recently for the username or the source address.
	ErrRateLimited = errors.New("too many failed login attempts")

	// ErrInvalidSession is what [Accounts.RequireRole] finds (and answers
	// 401) for a bearer token that is malformed, unknown, revoked or
	// expired, or whose user has been disabled or removed.
	ErrInvalidSession = errors.New("invalid or expired session")
)

// RateLimitError is returned by the login behind POST /v1/login when an
// attempt limit is reached; it says when the next attempt may be made.
type RateLimitError struct {
	// RetryAfter is how long the caller must wait before the limit lets an
	// attempt through again.
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("%v: retry after %s", ErrRateLimited, e.RetryAfter.Round(time.Second))
}

// Unwrap makes errors.Is(err, ErrRateLimited) hold.
func (e *RateLimitError) Unwrap() error { return ErrRateLimited }
