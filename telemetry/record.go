package telemetry

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	// MaxGateway is the longest gateway serial accepted.
	MaxGateway = 64
	// MaxTopic is the longest topic accepted, in bytes.
	MaxTopic = 512
	// DefaultMaxPayload is [Options.MaxPayload]'s default.
	DefaultMaxPayload = 64 << 10

	recordVersion = 1
)

// Keys order by unsigned big-endian unix nanoseconds, so only times in
// [minTime, maxTime) can be stored.
var (
	minTime = time.Unix(0, 0)
	maxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Record is one stored message as [Store.Query] and [Store.Latest] return it
// and the HTTP API shows it.
type Record struct {
	Gateway string    `json:"gateway"`
	Topic   string    `json:"topic"`
	Time    time.Time `json:"time"`
	// Payload is the payload when it is valid JSON.
	Payload json.RawMessage `json:"payload"`
	// PayloadBase64 is the payload in standard base64 when it is not valid
	// JSON (Payload is then null).
	PayloadBase64 string `json:"payload_base64,omitempty"`
}

// Message returns the record as the message that was stored.
func (r Record) Message() Message {
	m := Message{Gateway: r.Gateway, Topic: r.Topic, Time: r.Time}
	if r.Payload != nil {
		m.Payload = []byte(r.Payload)
	} else if r.PayloadBase64 != "" {
		m.Payload, _ = base64.StdEncoding.DecodeString(r.PayloadBase64)
	}
	return m
}

// UnmarshalJSON reads a record as the HTTP API writes it, leaving Payload
// nil (not the JSON literal null) when the payload was sent in base64.
func (r *Record) UnmarshalJSON(b []byte) error {
	type plain Record
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	if string(p.Payload) == "null" {
		p.Payload = nil
	}
	*r = Record(p)
	return nil
}

func newRecord(m Message) Record {
	r := Record{Gateway: m.Gateway, Topic: m.Topic, Time: m.Time}
	if len(m.Payload) > 0 && json.Valid(m.Payload) {
		r.Payload = json.RawMessage(m.Payload)
	} else if len(m.Payload) > 0 {
		r.PayloadBase64 = base64.StdEncoding.EncodeToString(m.Payload)
	}
	return r
}

// validGateway checks a serial: 1 to 64 of A-Z a-z 0-9 - . _
func validGateway(g string) error {
	if len(g) == 0 || len(g) > MaxGateway {
		return fmt.Errorf("%w: must be 1 to %d characters", ErrInvalidGateway, MaxGateway)
	}
	for i := 0; i < len(g); i++ {
		c := g[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return fmt.Errorf("%w: only A-Z a-z 0-9 - . _ allowed", ErrInvalidGateway)
		}
	}
	return nil
}

// validTopic checks that topic is a publish topic under gw/<gateway>/.
func validTopic(gateway, topic string) error {
	prefix := "gw/" + gateway + "/"
	switch {
	case len(topic) > MaxTopic:
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidTopic, MaxTopic)
	case !strings.HasPrefix(topic, prefix) || len(topic) == len(prefix):
		return fmt.Errorf("%w: must be under gw/<gateway>/", ErrInvalidTopic)
	case !utf8.ValidString(topic) || strings.ContainsAny(topic, "+#\x00"):
		return fmt.Errorf("%w: must be UTF-8 without wildcards or NUL", ErrInvalidTopic)
	}
	return nil
}

// encodeRecord is the value stored in a partition's log bucket:
//
//	version (1 byte, = 1)
//	uvarint len(gateway), gateway
//	uvarint len(topic), topic
//	receive time, unix nanoseconds, 8 bytes big-endian
//	payload (the rest)
func encodeRecord(m Message) []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen16+len(m.Gateway)+len(m.Topic)+8+len(m.Payload))
	b = append(b, recordVersion)
	b = binary.AppendUvarint(b, uint64(len(m.Gateway)))
	b = append(b, m.Gateway...)
	b = binary.AppendUvarint(b, uint64(len(m.Topic)))
	b = append(b, m.Topic...)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Time.UnixNano()))
	return append(b, m.Payload...)
}

// recordIndexFields reads the gateway and the receive time of a record
// without copying its payload.
func recordIndexFields(b []byte) (gateway string, nanos int64, err error) {
	if len(b) == 0 || b[0] != recordVersion {
		return "", 0, fmt.Errorf("%w: unknown format", ErrCorrupt)
	}
	gw, b, ok := readString(b[1:], MaxGateway)
	if !ok {
		return "", 0, fmt.Errorf("%w: bad gateway field", ErrCorrupt)
	}
	_, b, ok = readString(b, MaxTopic)
	if !ok || len(b) < 8 {
		return "", 0, fmt.Errorf("%w: bad topic or time field", ErrCorrupt)
	}
	n := binary.BigEndian.Uint64(b)
	if n > uint64(maxTime.UnixNano()) {
		return "", 0, fmt.Errorf("%w: time out of range", ErrCorrupt)
	}
	return gw, int64(n), nil
}

// decodeRecord parses what encodeRecord wrote. The payload is copied, so
// the result outlives the transaction b came from.
func decodeRecord(b []byte) (Message, error) {
	var m Message
	if len(b) == 0 || b[0] != recordVersion {
		return m, fmt.Errorf("%w: unknown format", ErrCorrupt)
	}
	b = b[1:]
	gw, b, ok := readString(b, MaxGateway)
	if !ok {
		return m, fmt.Errorf("%w: bad gateway field", ErrCorrupt)
	}
	topic, b, ok := readString(b, MaxTopic)
	if !ok {
		return m, fmt.Errorf("%w: bad topic field", ErrCorrupt)
	}
	if len(b) < 8 {
		return m, fmt.Errorf("%w: truncated time", ErrCorrupt)
	}
	nanos := binary.BigEndian.Uint64(b)
	if nanos > uint64(maxTime.UnixNano()) {
		return m, fmt.Errorf("%w: time out of range", ErrCorrupt)
	}
	m.Gateway, m.Topic = gw, topic
	m.Time = time.Unix(0, int64(nanos)).UTC()
	m.Payload = append([]byte(nil), b[8:]...)
	return m, nil
}

func readString(b []byte, max int) (string, []byte, bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(max) || n > uint64(len(b)-k) {
		return "", nil, false
	}
	return string(b[k : k+int(n)]), b[k+int(n):], true
}
