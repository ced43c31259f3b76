package audit

import "errors"

var (
	// ErrInvalidEntry is returned (wrapped, with the reason) by
	// [Log.Record] and [Log.RecordAll] for an entry without an action or
	// with a malformed one, with a result other than ok, refused or failed,
	// with a time outside years 1 to 9999, or with more than 16 details or a
	// malformed detail key. Nothing is written then.
	ErrInvalidEntry = errors.New("invalid audit entry")

	// ErrInvalidQuery is returned (wrapped, with the reason) by [Log.List]
	// for a negative limit or one above [MaxLimit], or a filter longer than
	// 1024 bytes.
	ErrInvalidQuery = errors.New("invalid audit query")
)
