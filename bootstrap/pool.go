package bootstrap

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
)

// Pool is the set of MQTT broker endpoints gateways are sent to. Each
// gateway goes to the endpoint with the highest rendezvous score for its
// serial, so that adding an endpoint moves only the gateways that now score
// highest on it (about 1/n of them) and removing one moves only its own.
type Pool struct {
	endpoints []string
}

// NewPool checks the endpoints: each mqtts://host:port, no duplicates, at
// least one.
func NewPool(endpoints []string) (*Pool, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("mqtt endpoint pool is empty")
	}
	seen := map[string]bool{}
	for _, e := range endpoints {
		u, err := url.Parse(e)
		if err != nil || u.Scheme != "mqtts" || u.Host == "" || u.Path != "" || u.User != nil || u.RawQuery != "" {
			return nil, fmt.Errorf("mqtt endpoint %q: want mqtts://host:port", e)
		}
		_, port, err := net.SplitHostPort(u.Host)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("mqtt endpoint %q: want mqtts://host:port", e)
		}
		if seen[e] {
			return nil, fmt.Errorf("mqtt endpoint %q listed twice", e)
		}
		seen[e] = true
	}
	return &Pool{endpoints: append([]string(nil), endpoints...)}, nil
}

// Pick returns the endpoint of the gateway serial.
func (p *Pool) Pick(serial string) string {
	best, bestScore := "", uint64(0)
	for _, e := range p.endpoints {
		if s := score(e, serial); best == "" || s > bestScore {
			best, bestScore = e, s
		}
	}
	return best
}

// Endpoints returns the pool's endpoints.
func (p *Pool) Endpoints() []string { return append([]string(nil), p.endpoints...) }

// score is the rendezvous weight of serial on endpoint: the first 8 bytes
// of SHA-256(endpoint, 0, serial). A cryptographic hash keeps the shares
// even however alike serials and endpoints are.
func score(endpoint, serial string) uint64 {
	h := sha256.New()
	h.Write([]byte(endpoint))
	h.Write([]byte{0})
	h.Write([]byte(serial))
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))
}
