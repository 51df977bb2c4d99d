package nats

import (
	"errors"
	"strings"
)

// ValidatePattern checks a subject pattern as NATS defines it: non-empty
// tokens separated by '.', where a token "*" matches one token and a final
// token ">" matches one or more.
func ValidatePattern(p string) error {
	if p == "" {
		return errors.New("empty subject")
	}
	if strings.ContainsAny(p, " \t\r\n") {
		return errors.New("subject contains whitespace")
	}
	toks := strings.Split(p, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return errors.New("empty token")
		case t == ">" && i != len(toks)-1:
			return errors.New("'>' must be the last token")
		case t != "*" && t != ">" && strings.ContainsAny(t, "*>"):
			return errors.New("wildcards must be whole tokens")
		}
	}
	return nil
}

// Subset reports whether every subject that s (a subject, possibly with
// wildcards) can match is also matched by pattern p. For a literal s this
// is plain NATS subject matching.
func Subset(p string, s []byte) bool {
	for {
		pt, prest, pmore := nextToken(p)
		st, srest, smore := nextTokenB(s)
		if pt == ">" {
			return len(st) > 0
		}
		if len(st) == 0 {
			return false
		}
		switch {
		case pt == "*":
			if len(st) == 1 && st[0] == '>' {
				return false
			}
		case string(st) != pt:
			return false
		}
		if !pmore || !smore {
			return pmore == smore
		}
		p, s = prest, srest
	}
}

// Overlap reports whether some subject is matched by both pattern p and s
// (a subject, possibly with wildcards).
func Overlap(p string, s []byte) bool {
	for {
		pt, prest, pmore := nextToken(p)
		st, srest, smore := nextTokenB(s)
		if len(pt) == 0 || len(st) == 0 {
			return false
		}
		if pt == ">" || (len(st) == 1 && st[0] == '>') {
			return true
		}
		if pt != "*" && !(len(st) == 1 && st[0] == '*') && string(st) != pt {
			return false
		}
		if !pmore || !smore {
			return pmore == smore
		}
		p, s = prest, srest
	}
}

func nextToken(s string) (tok, rest string, more bool) {
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

func nextTokenB(s []byte) (tok, rest []byte, more bool) {
	for i, c := range s {
		if c == '.' {
			return s[:i], s[i+1:], true
		}
	}
	return s, nil, false
}
