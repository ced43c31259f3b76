package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The few MQTT 3.1.1 packets the load generator speaks, encoded and decoded
// by hand: a gateway of this benchmark only connects, publishes at QoS 1
// and reads CONNACK and PUBACK, and a general client library would cost
// more CPU per message than the broker under test on a 2-core machine.

// Packet types (MQTT 3.1.1, section 2.2.1).
const (
	typeConnect    = 1
	typeConnack    = 2
	typePublish    = 3
	typePuback     = 4
	typePingresp   = 13
	typeDisconnect = 14
)

// maxRemaining is the largest remaining length this client accepts from a
// broker: it reads only CONNACK, PUBACK and PINGRESP.
const maxRemaining = 1 << 16

var errMalformed = errors.New("malformed MQTT packet")

// appendRemaining appends n as an MQTT variable byte integer.
func appendRemaining(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

// appendString appends an MQTT UTF-8 string: a 2-byte length and the bytes.
func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// appendConnect appends a CONNECT packet, MQTT 3.1.1, clean session, no
// will, no username or password (the client certificate identifies the
// gateway).
func appendConnect(b []byte, clientID string, keepalive uint16) []byte {
	const varHeader = 10 // "MQTT" with its length, level, flags, keepalive
	b = append(b, typeConnect<<4)
	b = appendRemaining(b, varHeader+2+len(clientID))
	b = appendString(b, "MQTT")
	b = append(b, 4, 0x02) // protocol level 4 (3.1.1), clean session
	b = binary.BigEndian.AppendUint16(b, keepalive)
	return appendString(b, clientID)
}

// appendPublish appends a QoS 1 PUBLISH packet.
func appendPublish(b []byte, topic string, id uint16, payload []byte) []byte {
	b = append(b, typePublish<<4|1<<1)
	b = appendRemaining(b, 2+len(topic)+2+len(payload))
	b = appendString(b, topic)
	b = binary.BigEndian.AppendUint16(b, id)
	return append(b, payload...)
}

// appendDisconnect appends a DISCONNECT packet.
func appendDisconnect(b []byte) []byte { return append(b, typeDisconnect<<4, 0) }

// packet is one packet read from the broker; body aliases the reader's
// buffer until the next read.
type packet struct {
	typ   byte
	flags byte
	body  []byte
}

// packetReader reads MQTT packets from a connection.
type packetReader struct {
	r   *bufio.Reader
	buf []byte
}

func newPacketReader(r io.Reader, size int) *packetReader {
	return &packetReader{r: bufio.NewReaderSize(r, size)}
}

// read returns the next packet.
func (p *packetReader) read() (packet, error) {
	h, err := p.r.ReadByte()
	if err != nil {
		return packet{}, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		if i == 4 {
			return packet{}, fmt.Errorf("%w: remaining length longer than 4 bytes", errMalformed)
		}
		d, err := p.r.ReadByte()
		if err != nil {
			return packet{}, noEOF(err)
		}
		n += int(d&0x7f) * mult
		mult *= 128
		if d&0x80 == 0 {
			break
		}
	}
	if n > maxRemaining {
		return packet{}, fmt.Errorf("%w: remaining length %d", errMalformed, n)
	}
	if cap(p.buf) < n {
		p.buf = make([]byte, n)
	}
	body := p.buf[:n]
	if _, err := io.ReadFull(p.r, body); err != nil {
		return packet{}, noEOF(err)
	}
	return packet{typ: h >> 4, flags: h & 0x0f, body: body}, nil
}

// noEOF turns an EOF inside a packet into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// connackCode returns the return code of a CONNACK (0: accepted).
func (p packet) connackCode() (byte, error) {
	if p.typ != typeConnack || p.flags != 0 || len(p.body) != 2 || p.body[0]&^1 != 0 {
		return 0, fmt.Errorf("%w: want CONNACK, got type %d flags %#x length %d", errMalformed, p.typ, p.flags, len(p.body))
	}
	return p.body[1], nil
}

// pubackID returns the packet identifier of a PUBACK.
func (p packet) pubackID() (uint16, error) {
	// MQTT 5 brokers may add a reason code and properties; 3.1.1 has
	// exactly the identifier.
	if p.typ != typePuback || p.flags != 0 || len(p.body) != 2 {
		return 0, fmt.Errorf("%w: want PUBACK, got type %d flags %#x length %d", errMalformed, p.typ, p.flags, len(p.body))
	}
	return binary.BigEndian.Uint16(p.body), nil
}

// connackReason explains a CONNACK return code (MQTT 3.1.1, 3.2.2.3).
func connackReason(code byte) string {
	switch code {
	case 0:
		return "accepted"
	case 1:
		return "unacceptable protocol version"
	case 2:
		return "identifier rejected"
	case 3:
		return "server unavailable"
	case 4:
		return "bad user name or password"
	case 5:
		return "not authorized"
	}
	return fmt.Sprintf("return code %d", code)
}
