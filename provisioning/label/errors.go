package label

import "errors"

// ErrNotPayload is returned by [ParsePayload] when the text does not start
// with a gwpki label prefix ("GWPKI" and a version, then ":"), for instance
// when someone scanned another QR code. A caller that also takes a plain
// serial may treat the text as one.
var ErrNotPayload = errors.New("not a gwpki label payload")

// ErrInvalidPayload is returned by [ParsePayload] when the text starts like a
// gwpki label payload but is not a valid one: a version this gwpki does not
// read, a missing or extra part, a bad serial or a bad label code (then
// [ErrInvalidCode] matches too).
var ErrInvalidPayload = errors.New("invalid gwpki label payload")

// ErrInvalidCode is returned, wrapped, by [Payload], [ParsePayload], [PNG],
// [ZPL] and [SVG] when a label code is not 16 Crockford base32 symbols
// followed by the matching check symbol, as [claim.ParseCode] reads them; the
// error wraps claim's too, [claim.ErrCodeTypo] when only the check symbol is
// wrong. The error never repeats the code.
var ErrInvalidCode = errors.New("invalid label code")

// ErrInvalidLabel is returned, wrapped, by [Payload], [PNG], [ZPL] and [SVG]
// when a serial, a label code or a model cannot go on a label.
var ErrInvalidLabel = errors.New("invalid label")
