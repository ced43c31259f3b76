package claim

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Claim codes (DESIGN.md, "Claiming") are Crockford base32: the 32 symbols
// 0-9 A-Z without I L O U, five bits each, followed by one check symbol, the
// value of the whole number mod 37 written in Crockford's 37-symbol check
// alphabet (the 32 symbols, then * ~ $ = U). Because 37 is prime and 32
// has order 36 modulo 37, every change of a single symbol and every swap of
// two symbols of a code (17 symbols at most) changes the check: such typos
// are caught before a code is ever compared, and do not count as a claim
// attempt.
//
// No code and no per-device secret is ever stored. Both are derived with
// HMAC-SHA256 from the server's claim key (secrets/claim_key, see
// [LoadOrCreateClaimKey]), the gateway serial and the device's generation,
// which is DESIGN's "derived from a server key":
//
//	claim secret = HMAC-SHA256(key, "gwpki claim secret v1" 0x00 serial 0x00 generation)
//	label code   = the first 80 bits of HMAC-SHA256(key, "gwpki label code v1" 0x00 serial 0x00 generation)
//	display code = the first 40 bits of HMAC-SHA256(claim secret, serial ⌊unix time / 300⌋)
//
// where generation and the time window are big-endian uint64. Reissuing a
// device's IDevID bumps its generation, so the old claim secret, label code
// and display codes all stop working at once. Serials never hold a NUL byte
// ([Registry.Register] validates them), so the inputs cannot run into each
// other.

// crockford is the data alphabet: symbol i has value i.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// checkAlphabet is Crockford's check alphabet: values 0 to 36.
const checkAlphabet = crockford + "*~$=U"

// Code lengths in symbols, check symbol included.
const (
	displayDataLen = 8  // 40 bits
	labelDataLen   = 16 // 80 bits
	displayLen     = displayDataLen + 1
	labelLen       = labelDataLen + 1
	// maxCodeInput bounds what ParseCode reads: a code with a hyphen or
	// space between every symbol fits, anything longer is not a code.
	maxCodeInput = 2 * labelLen
)

// DisplayWindow is how long a display code lasts: the time is cut into
// windows of this length, and the verifier accepts the current and the
// previous one, so a code is good for 5 to 10 minutes.
const DisplayWindow = 300 * time.Second

// Domain-separation labels of the derivations; "v1" changes only with a new
// derivation, which would change every printed label.
const (
	claimSecretLabel = "gwpki claim secret v1"
	labelCodeLabel   = "gwpki label code v1"
)

var (
	// ErrCodeMalformed is returned by [ParseCode] when its input, without
	// hyphens and spaces, is not 9 or 17 symbols of the Crockford alphabet
	// with a check symbol at the end: not a claim code at all.
	ErrCodeMalformed = errors.New("malformed claim code")

	// ErrCodeTypo is returned by [ParseCode] when the input has the shape
	// of a claim code but its check symbol does not match: a symbol was
	// mistyped. Callers must not count it as a claim attempt.
	ErrCodeTypo = errors.New("claim code has a typo (check symbol does not match)")
)

// CodeKind tells a display code from a label code.
type CodeKind uint8

const (
	// CodeDisplay is the short-lived code a gateway prints on its console:
	// 8 symbols and a check, XXXX-XXXX-C.
	CodeDisplay CodeKind = iota + 1
	// CodeLabel is the code printed on the label at manufacturing: 16
	// symbols and a check, XXXX-XXXX-XXXX-XXXX-C.
	CodeLabel
)

// String returns "display" or "label".
func (k CodeKind) String() string {
	switch k {
	case CodeDisplay:
		return "display"
	case CodeLabel:
		return "label"
	}
	return fmt.Sprintf("CodeKind(%d)", uint8(k))
}

// Code is a parsed claim code.
type Code struct {
	Kind CodeKind
	// Symbols are the code's symbols in canonical form: upper case,
	// without hyphens or spaces, with I and L read as 1 and O as 0, the
	// check symbol last.
	Symbols string
}

// String returns the code as it is shown: XXXX-XXXX-C or
// XXXX-XXXX-XXXX-XXXX-C.
func (c Code) String() string {
	return group(c.Symbols)
}

// ParseCode reads a claim code as a person typed it: case does not matter,
// hyphens and spaces are ignored, and I and L are read as 1, O as 0. It
// returns an error wrapping [ErrCodeMalformed] for anything that is not 9
// or 17 such symbols (the last being a check symbol), and one wrapping
// [ErrCodeTypo] when the check symbol does not match the others. Its errors
// never repeat the input.
func ParseCode(s string) (Code, error) {
	if len(s) > maxCodeInput {
		return Code{}, fmt.Errorf("%w: longer than %d characters", ErrCodeMalformed, maxCodeInput)
	}
	var buf [maxCodeInput]byte
	sym := buf[:0]
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '-' || c == ' ':
			continue
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		}
		switch c {
		case 'I', 'L':
			c = '1'
		case 'O':
			c = '0'
		}
		sym = append(sym, c)
	}
	var kind CodeKind
	switch len(sym) {
	case displayLen:
		kind = CodeDisplay
	case labelLen:
		kind = CodeLabel
	default:
		return Code{}, fmt.Errorf("%w: %d symbols: want %d (display code) or %d (label code)",
			ErrCodeMalformed, len(sym), displayLen, labelLen)
	}
	var sum uint
	for _, c := range sym[:len(sym)-1] {
		v := strings.IndexByte(crockford, c)
		if v < 0 {
			return Code{}, fmt.Errorf("%w: a symbol outside 0-9 A-Z (without U)", ErrCodeMalformed)
		}
		sum = (sum*32 + uint(v)) % 37
	}
	check := strings.IndexByte(checkAlphabet, sym[len(sym)-1])
	if check < 0 {
		return Code{}, fmt.Errorf("%w: the check symbol is outside 0-9 A-Z * ~ $ =", ErrCodeMalformed)
	}
	if uint(check) != sum {
		return Code{}, ErrCodeTypo
	}
	return Code{Kind: kind, Symbols: string(sym)}, nil
}

// FormatDisplay returns the display code of the first 40 bits of b, shown
// XXXX-XXXX-C. It panics if b is shorter than 5 bytes.
func FormatDisplay(b []byte) string {
	return group(encode(b[:5:5], displayDataLen))
}

// FormatLabel returns the label code of the first 80 bits of b, shown
// XXXX-XXXX-XXXX-XXXX-C. It panics if b is shorter than 10 bytes.
func FormatLabel(b []byte) string {
	return group(encode(b[:10:10], labelDataLen))
}

// encode writes the first n*5 bits of b (big-endian: the first symbol is
// the top five bits of b[0]) as n symbols and appends the check symbol.
func encode(b []byte, n int) string {
	out := make([]byte, 0, n+1)
	var acc uint64 // pending bits, the oldest highest
	bits := 0
	var sum uint
	for _, x := range b {
		acc = acc<<8 | uint64(x)
		bits += 8
		for bits >= 5 {
			bits -= 5
			v := acc >> bits & 31
			out = append(out, crockford[v])
			sum = (sum*32 + uint(v)) % 37
		}
	}
	return string(append(out, checkAlphabet[sum]))
}

// group inserts a hyphen after every four symbols but before the check
// symbol: ABCD-EFGH-C.
func group(sym string) string {
	if len(sym) < 2 {
		return sym
	}
	data, check := sym[:len(sym)-1], sym[len(sym)-1:]
	var sb strings.Builder
	sb.Grow(len(sym) + len(sym)/4 + 1)
	for i := 0; i < len(data); i += 4 {
		sb.WriteString(data[i:min(i+4, len(data))])
		sb.WriteByte('-')
	}
	sb.WriteString(check)
	return sb.String()
}

// ClaimSecret returns the 32-byte claim secret of the gateway serial in its
// generation, derived from the server's claim key (see the derivations at
// the top of this file). The line station puts it in the gateway's bundle;
// the gateway computes its display codes from it ([DisplayCode]) and the
// server derives it again to check them. It is never stored by the server.
func ClaimSecret(key []byte, serial string, generation int) []byte {
	return derive(key, claimSecretLabel, serial, generation)
}

// LabelCode returns the label code of the gateway serial in its generation,
// formatted XXXX-XXXX-XXXX-XXXX-C: the first 80 bits of an HMAC-SHA256 of
// the server's claim key. It is printed on the gateway's label at
// manufacturing and never stored by the server.
func LabelCode(key []byte, serial string, generation int) string {
	return FormatLabel(derive(key, labelCodeLabel, serial, generation))
}

func derive(key []byte, label, serial string, generation int) []byte {
	m := hmac.New(sha256.New, key)
	msg := make([]byte, 0, len(label)+len(serial)+10)
	msg = append(msg, label...)
	msg = append(msg, 0)
	msg = append(msg, serial...)
	msg = append(msg, 0)
	msg = binary.BigEndian.AppendUint64(msg, uint64(generation))
	m.Write(msg)
	return m.Sum(nil)
}

// displayWindowOf returns ⌊unix time of t / 300⌋.
func displayWindowOf(t time.Time) uint64 {
	sec := t.Unix()
	w := sec / int64(DisplayWindow/time.Second)
	if sec < 0 && sec%int64(DisplayWindow/time.Second) != 0 {
		w-- // floor, not truncation, before 1970
	}
	return uint64(w)
}

// displayCodeAt returns the display code of window as a Code.
func displayCodeAt(secret []byte, serial string, window uint64) string {
	m := hmac.New(sha256.New, secret)
	msg := make([]byte, 0, len(serial)+8)
	msg = append(msg, serial...)
	msg = binary.BigEndian.AppendUint64(msg, window)
	m.Write(msg)
	return encode(m.Sum(nil)[:5], displayDataLen)
}

// DisplayCode returns the display code a gateway shows at time now,
// formatted XXXX-XXXX-C: the first 40 bits of HMAC-SHA256(secret, serial ||
// big-endian ⌊unix time / 300⌋), secret being the gateway's claim secret
// ([ClaimSecret]).
func DisplayCode(secret []byte, serial string, now time.Time) string {
	return group(displayCodeAt(secret, serial, displayWindowOf(now)))
}

// VerifyDisplayCode reports whether c is the display code of the gateway
// serial with claim secret secret in the window of now or the one before.
// Both windows are always computed and compared in constant time.
func VerifyDisplayCode(secret []byte, serial string, c Code, now time.Time) bool {
	w := displayWindowOf(now)
	cur := displayCodeAt(secret, serial, w)
	prev := displayCodeAt(secret, serial, w-1)
	ok := subtle.ConstantTimeCompare([]byte(c.Symbols), []byte(cur)) |
		subtle.ConstantTimeCompare([]byte(c.Symbols), []byte(prev))
	return ok == 1 && c.Kind == CodeDisplay
}

// VerifyLabelCode reports whether c is the label code of the gateway serial
// in its generation, comparing in constant time.
func VerifyLabelCode(key []byte, serial string, generation int, c Code) bool {
	want := encode(derive(key, labelCodeLabel, serial, generation)[:10], labelDataLen)
	return subtle.ConstantTimeCompare([]byte(c.Symbols), []byte(want)) == 1 && c.Kind == CodeLabel
}
