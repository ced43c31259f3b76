package crl

import (
	"fmt"
	"math/big"
	"math/bits"
	"strconv"
	"strings"
)

// MaxShards is the largest shard count: [ShardName] has four hex digits.
const MaxShards = 1 << 16

// Shard returns the shard whose CRL lists serial: serial modulo shards, the
// Euclidean remainder, so in [0, shards) for any serial. shards must be
// positive. It does not allocate.
func Shard(serial *big.Int, shards int) int {
	if shards <= 0 {
		panic("crl: Shard with a non-positive shard count")
	}
	words := serial.Bits() // absolute value, least significant word first
	m := uint(shards)
	var r uint
	switch {
	case len(words) == 0:
		return 0
	case m&(m-1) == 0: // a power of two: the low bits
		r = uint(words[0]) & (m - 1)
	default:
		for i := len(words) - 1; i >= 0; i-- {
			r = bits.Rem(r, uint(words[i]), m)
		}
	}
	if serial.Sign() < 0 && r != 0 {
		r = m - r
	}
	return int(r)
}

// ShardName names a shard as its CRL's file name does: four lower-case hex
// digits, "00ff" for shard 255.
func ShardName(shard int) string { return fmt.Sprintf("%04x", shard) }

// parseName returns the shard that file (the last element of a CRL URL,
// "00ff.crl") names, if it is the exact name of one of shards shards.
func parseName(file string, shards int) (int, bool) {
	name, ok := strings.CutSuffix(file, ".crl")
	if !ok || len(name) != 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(name, 16, 32)
	if err != nil || n >= uint64(shards) || ShardName(int(n)) != name {
		return 0, false
	}
	return int(n), true
}
