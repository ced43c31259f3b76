package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func TestAppendConnect(t *testing.T) {
	got := appendConnect(nil, "GW-1", 600)
	want := []byte{0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0x02, 0x58, 0, 4, 'G', 'W', '-', '1'}
	if !bytes.Equal(got, want) {
		t.Errorf("appendConnect(GW-1, 600) = % x; want % x", got, want)
	}
}

func TestRemainingLength(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []byte
	}{
		{0, []byte{0}}, {127, []byte{0x7f}}, {128, []byte{0x80, 0x01}},
		{16383, []byte{0xff, 0x7f}}, {16384, []byte{0x80, 0x80, 0x01}},
	} {
		if got := appendRemaining(nil, tc.n); !bytes.Equal(got, tc.want) {
			t.Errorf("appendRemaining(%d) = % x; want % x", tc.n, got, tc.want)
		}
	}
}

// TestPublishRoundTrip encodes PUBLISH packets of payloads around the
// 1- and 2-byte remaining-length boundaries and reads them back.
func TestPublishRoundTrip(t *testing.T) {
	var stream []byte
	sizes := []int{0, 100, 113, 114, 200, 16000, 20000}
	for i, n := range sizes {
		stream = appendPublish(stream, "gw/GW-000001/telemetry", uint16(i+1), bytes.Repeat([]byte{'x'}, n))
	}
	r := newPacketReader(bytes.NewReader(stream), 512)
	for i, n := range sizes {
		p, err := r.read()
		if err != nil {
			t.Fatalf("read PUBLISH %d: %v", i, err)
		}
		if p.typ != typePublish || p.flags != 0x02 {
			t.Fatalf("PUBLISH %d: type %d flags %#x; want 3, 0x2", i, p.typ, p.flags)
		}
		tl := int(binary.BigEndian.Uint16(p.body))
		topic := string(p.body[2 : 2+tl])
		id := binary.BigEndian.Uint16(p.body[2+tl:])
		payload := p.body[4+tl:]
		if topic != "gw/GW-000001/telemetry" || id != uint16(i+1) || len(payload) != n {
			t.Errorf("PUBLISH %d: topic %q id %d payload %d bytes; want gw/GW-000001/telemetry, %d, %d",
				i, topic, id, len(payload), i+1, n)
		}
	}
	if _, err := r.read(); err != io.EOF {
		t.Errorf("read after the last packet: %v; want EOF", err)
	}
}

func TestReadAcks(t *testing.T) {
	r := newPacketReader(bytes.NewReader([]byte{0x20, 2, 0, 5, 0x40, 2, 0x12, 0x34, 0xd0, 0}), 16)
	p, err := r.read()
	if err != nil {
		t.Fatal(err)
	}
	if code, err := p.connackCode(); err != nil || code != 5 {
		t.Errorf("connackCode = %d, %v; want 5, nil", code, err)
	}
	if _, err := p.pubackID(); err == nil {
		t.Error("pubackID of a CONNACK: no error")
	}
	p, err = r.read()
	if err != nil {
		t.Fatal(err)
	}
	if id, err := p.pubackID(); err != nil || id != 0x1234 {
		t.Errorf("pubackID = %#x, %v; want 0x1234, nil", id, err)
	}
	if p, err = r.read(); err != nil || p.typ != typePingresp || len(p.body) != 0 {
		t.Errorf("read PINGRESP: type %d, %d bytes, %v; want 13, 0, nil", p.typ, len(p.body), err)
	}
}

func TestReadMalformed(t *testing.T) {
	for name, in := range map[string][]byte{
		"length of five bytes": {0x40, 0x80, 0x80, 0x80, 0x80, 0x01},
		"too long":             {0x30, 0x80, 0x80, 0x08},
		"truncated body":       {0x40, 2, 0},
		"truncated length":     {0x40, 0x80},
	} {
		_, err := newPacketReader(bytes.NewReader(in), 16).read()
		if err == nil {
			t.Errorf("%s (% x): no error", name, in)
		} else if !errors.Is(err, errMalformed) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s (% x): %v; want a malformed-packet error or unexpected EOF", name, in, err)
		}
	}
}
