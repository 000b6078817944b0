package models

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Caps (issue 8, item 6). The database enforces the per-object ones itself
// (migration 0004), whoever writes; create inputs and filters are checked
// here, before any SQL (a filter asking for more labels than an object may
// have could match nothing anyway). README lists them.
const (
	MaxLabels            = 100      // labels per stack or agent, and per create input or filter
	MaxAnnotations       = 100      // annotations per stack or agent, and per create input or filter
	MaxEventMessageBytes = 32 << 10 // an agent event's message, in bytes of UTF-8
)

// Go-side checks mirror the database's CHECK constraints (brokkr_valid_name,
// brokkr_valid_token) so that errors name the input field the client sent;
// the constraints remain the backstop for every other writer.

func validateName(field, v string) error {
	if strings.TrimSpace(v) == "" {
		return Invalid(field, "%s must not be empty", field)
	}
	if utf8.RuneCountInString(v) > 255 {
		return Invalid(field, "%s must be at most 255 characters", field)
	}
	return nil
}

func validateToken(field, v string) error {
	n := utf8.RuneCountInString(v)
	if n == 0 {
		return Invalid(field, "%s must not be empty", field)
	}
	if n > 64 {
		return Invalid(field, "%s must be at most 64 characters", field)
	}
	if strings.IndexFunc(v, unicode.IsSpace) >= 0 {
		return Invalid(field, "%s must not contain whitespace", field)
	}
	return nil
}

// validateLabels checks labels and annotations of a create input.
func validateLabels(labels []string, annotations []*AnnotationInput) error {
	if len(labels) > MaxLabels {
		return Invalid("labels", "at most %d labels", MaxLabels)
	}
	if len(annotations) > MaxAnnotations {
		return Invalid("annotations", "at most %d annotations", MaxAnnotations)
	}
	seen := map[string]bool{}
	for _, l := range labels {
		if err := validateToken("labels", l); err != nil {
			return err
		}
		if seen[l] {
			return Invalid("labels", "duplicate label %q", l)
		}
		seen[l] = true
	}
	keys := map[string]bool{}
	for _, a := range annotations {
		if a == nil {
			return Invalid("annotations", "annotation must not be null")
		}
		if err := validateToken("annotations", a.Key); err != nil {
			return err
		}
		if err := validateToken("annotations", a.Value); err != nil {
			return err
		}
		if keys[a.Key] {
			return Invalid("annotations", "duplicate annotation key %q", a.Key)
		}
		keys[a.Key] = true
	}
	return nil
}

func validateRateLimit(v *int32) error {
	if v != nil && *v <= 0 {
		return Invalid("rateLimitPerMinute", "rateLimitPerMinute must be positive")
	}
	return nil
}

// ValidateYAML accepts one or more YAML documents of which at least one is
// not empty; anything else is Invalid("yamlContent").
func ValidateYAML(content string) error {
	if !utf8.ValidString(content) {
		return Invalid("yamlContent", "yamlContent is not valid UTF-8")
	}
	dec := yaml.NewDecoder(strings.NewReader(content))
	nonEmpty := false
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Invalid("yamlContent", "invalid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		if !emptyDocument(&doc) {
			nonEmpty = true
		}
	}
	if !nonEmpty {
		return Invalid("yamlContent", "yamlContent has no non-empty YAML document")
	}
	return nil
}

func emptyDocument(n *yaml.Node) bool {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return true
		}
		n = n.Content[0]
	}
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// Checksum is the lowercase hex SHA-256 of content (yaml_checksum).
func Checksum(content string) string {
	sum := sha256.Sum256([]byte(content))
	return hex.EncodeToString(sum[:])
}
