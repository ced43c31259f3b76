package telemetry

import "errors"

var (
	// ErrInvalidGateway is returned by [Store.Append], [Store.Query] and
	// [Store.Latest] when the gateway is not 1 to 64 characters of
	// A-Z a-z 0-9 - . _ (the serial alphabet).
	ErrInvalidGateway = errors.New("invalid gateway serial")

	// ErrInvalidTopic is returned by [Store.Append] when the topic is not
	// under gw/<gateway>/, is longer than [MaxTopic] bytes, is not valid
	// UTF-8, or holds a wildcard or NUL.
	ErrInvalidTopic = errors.New("invalid topic")

	// ErrTooLarge is returned by [Store.Append] when the payload is larger
	// than [Options.MaxPayload].
	ErrTooLarge = errors.New("payload too large")

	// ErrInvalidTime is returned by [Store.Append] when the message time is
	// before 1970 or after 2199, outside what the file's keys can order.
	ErrInvalidTime = errors.New("message time out of range")

	// ErrInvalidQuery is returned by [Store.Query] for a limit outside
	// 0..[MaxLimit], an Until not after Since, or a cursor that
	// [Page.Next] did not produce; the handler answers it with 400.
	ErrInvalidQuery = errors.New("invalid telemetry query")

	// ErrCorrupt is returned by [Store.Query] and [Store.Latest] when a
	// stored record cannot be decoded; it means the file was damaged.
	ErrCorrupt = errors.New("corrupt telemetry record")
)

// Permanent reports whether err from [Store.Append] is about the message
// itself (so retrying cannot help and the broker should reject the
// publish), as opposed to the store being closed, the context ending or the
// disk failing.
func Permanent(err error) bool {
	return errors.Is(err, ErrInvalidGateway) || errors.Is(err, ErrInvalidTopic) ||
		errors.Is(err, ErrTooLarge) || errors.Is(err, ErrInvalidTime)
}
