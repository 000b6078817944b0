// Package apikey makes and checks Brokkr API keys (DESIGN §4):
// brokkr_<short>_<long>, where short (8 base62 characters) names the key in
// logs and long carries 256 bits from crypto/rand in base62. Only Hash(key),
// the lowercase hex SHA-256 of the whole plaintext, is ever stored.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
)

const (
	// Prefix starts every key.
	Prefix = "brokkr_"
	// ShortLen is the length of the identifying part.
	ShortLen = 8
	// LongLen is the length of the secret part: 43 base62 characters carry
	// 256 bits (62^43 > 2^256).
	LongLen = 43
	// Len is the length of a whole key.
	Len = len(Prefix) + ShortLen + 1 + LongLen
)

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// New makes a fresh key. kind ("admin", "generator", "agent") is not encoded
// in the key: the database says whose key it is, so a key reveals nothing.
// It is accepted so callers state intent and may be used in logs.
func New(kind string) (plaintext, hash string, err error) {
	var raw [32 + 6]byte // 256 secret bits + 48 bits for the short part
	if _, err := rand.Read(raw[:]); err != nil {
		return "", "", fmt.Errorf("apikey.New(%s): %w", kind, err)
	}
	short := base62(raw[32:], ShortLen)
	long := base62(raw[:32], LongLen)
	plaintext = Prefix + short + "_" + long
	return plaintext, Hash(plaintext), nil
}

// base62 encodes b as exactly n base62 digits (left-padded with '0';
// n must be large enough for b).
func base62(b []byte, n int) string {
	v := new(big.Int).SetBytes(b)
	out := make([]byte, n)
	base := big.NewInt(62)
	mod := new(big.Int)
	for i := n - 1; i >= 0; i-- {
		v.DivMod(v, base, mod)
		out[i] = alphabet[mod.Int64()]
	}
	return string(out)
}

// Hash is the stored form of a key: the lowercase hex SHA-256 of the plaintext.
func Hash(plaintext string) string {
	sum := sha256.Sum256([]byte(plaintext))
	return hex.EncodeToString(sum[:])
}

// Parse reports whether s has the shape of a Brokkr key. It is a cheap
// pre-check before any database lookup; it says nothing about validity.
func Parse(s string) (ok bool) {
	if len(s) != Len || !strings.HasPrefix(s, Prefix) {
		return false
	}
	rest := s[len(Prefix):]
	if rest[ShortLen] != '_' {
		return false
	}
	return isBase62(rest[:ShortLen]) && isBase62(rest[ShortLen+1:])
}

// Short returns the identifying part of a well-formed key (for logs), or "".
func Short(s string) string {
	if !Parse(s) {
		return ""
	}
	return s[len(Prefix) : len(Prefix)+ShortLen]
}

func isBase62(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

// Equal compares two keys or hashes in constant time (for equal lengths).
func Equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
