// Package rendezvous is the rendezvous (highest-random-weight) hash that spreads route tables
// and pool addresses over instances without coordination. Its values are part of the agent's
// behaviour across versions: changing them moves route ownership on upgrade.
package rendezvous

import (
	"crypto/sha256"
	"encoding/binary"
)

// Weight is the weight of member for key: the first 8 bytes, big-endian, of the SHA-256 of
// key, a NUL byte and member. It is stable across agents, versions and platforms.
func Weight(key, member string) uint64 {
	sum := sha256.Sum256([]byte(key + "\x00" + member))
	return binary.BigEndian.Uint64(sum[:8])
}
