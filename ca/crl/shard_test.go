package crl

import (
	"math/big"
	"testing"
)

// modShard is the definition Shard must agree with, and what the issuer
// stamps into certificates: the Euclidean remainder of serial by shards.
func modShard(serial *big.Int, shards int) int {
	return int(new(big.Int).Mod(serial, big.NewInt(int64(shards))).Int64())
}

func TestShard(t *testing.T) {
	serials := []*big.Int{
		big.NewInt(0), big.NewInt(1), big.NewInt(255), big.NewInt(256), big.NewInt(-1), big.NewInt(-257),
		new(big.Int).Lsh(big.NewInt(1), 127),
		new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 159), big.NewInt(1)),
		new(big.Int).Lsh(big.NewInt(3), 300),
		new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(5), 200)),
	}
	for range 200 {
		serials = append(serials, randomSerial(t))
	}
	for _, shards := range []int{1, 2, 3, 7, 16, 100, 256, 1000, 4093, 65535, 65536} {
		for _, sn := range serials {
			if got, want := Shard(sn, shards), modShard(sn, shards); got != want {
				t.Errorf("Shard(%v, %d) = %d; want %d", sn, shards, got, want)
			}
		}
	}
}

func TestShardName(t *testing.T) {
	for _, tc := range []struct {
		shard int
		want  string
	}{{0, "0000"}, {10, "000a"}, {255, "00ff"}, {65535, "ffff"}} {
		if got := ShardName(tc.shard); got != tc.want {
			t.Errorf("ShardName(%d) = %q; want %q", tc.shard, got, tc.want)
		}
	}
}

func TestParseName(t *testing.T) {
	for _, tc := range []struct {
		name   string
		shards int
		want   int
		ok     bool
	}{
		{"0000.crl", 256, 0, true},
		{"00ff.crl", 256, 255, true},
		{"0100.crl", 256, 0, false}, // beyond the shard count
		{"00FF.crl", 256, 0, false}, // not the name ShardName gives
		{"ff.crl", 256, 0, false},
		{"000ff.crl", 256, 0, false},
		{"+0ff.crl", 256, 0, false},
		{"00ff.pem", 256, 0, false},
		{"00ff", 256, 0, false},
		{"", 256, 0, false},
		{"ffff.crl", 65536, 65535, true},
	} {
		got, ok := parseName(tc.name, tc.shards)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseName(%q, %d) = %d, %v; want %d, %v", tc.name, tc.shards, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzParseName(f *testing.F) {
	for _, s := range []string{"0000.crl", "00ff.crl", "0100.crl", "00FF.crl", "-001.crl", "0x1f.crl", ".crl"} {
		f.Add(s, 256)
	}
	f.Fuzz(func(t *testing.T, name string, shards int) {
		if shards < 1 || shards > MaxShards {
			return
		}
		s, ok := parseName(name, shards)
		if !ok {
			return
		}
		if s < 0 || s >= shards || ShardName(s)+".crl" != name {
			t.Errorf("parseName(%q, %d) = %d; does not round-trip", name, shards, s)
		}
	})
}

func FuzzShard(f *testing.F) {
	f.Add([]byte{0x01, 0x00}, false, 256)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, true, 1000)
	f.Fuzz(func(t *testing.T, b []byte, neg bool, shards int) {
		if shards < 1 || shards > MaxShards {
			return
		}
		sn := new(big.Int).SetBytes(b)
		if neg {
			sn.Neg(sn)
		}
		if got, want := Shard(sn, shards), modShard(sn, shards); got != want {
			t.Errorf("Shard(%v, %d) = %d; want %d", sn, shards, got, want)
		}
	})
}
