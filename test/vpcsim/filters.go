package vpcsim

import (
	"strings"
)

type filter struct {
	name   string
	values []string
}

// ec2Filters reads Filter.N.Name / Filter.N.Value.M.
func ec2Filters(f form) ([]filter, *apiError) {
	var out []filter
	for _, i := range f.indices("Filter") {
		name := f.get("Filter." + i + ".Name")
		if name == "" {
			return nil, errf(400, "InvalidParameterValue", "The filter 'Filter.%s' has no name", i)
		}
		out = append(out, filter{name: name, values: f.list("Filter." + i + ".Value")})
	}
	return out, nil
}

// fieldSet describes the filters a resource type accepts, besides the tag filters
// (tag:<key>, tag-key, tag-value) that every type accepts.
type fieldSet[T any] struct {
	fields map[string]func(*state, T) []string
	tags   func(T) tags
	// literal compares values exactly: AutoScaling filters take no wildcards, EC2's do.
	literal bool
}

func (fs fieldSet[T]) validate(filters []filter) *apiError {
	for _, fl := range filters {
		if _, ok := fs.fields[fl.name]; ok {
			continue
		}
		if fl.name == "tag-key" || fl.name == "tag-value" || (strings.HasPrefix(fl.name, "tag:") && len(fl.name) > 4) {
			continue
		}
		return errf(400, "InvalidParameterValue", "The filter '%s' is invalid", fl.name)
	}
	return nil
}

// match is true when every filter matches (filters AND, values OR, * and ? wildcards unless
// literal).
func (fs fieldSet[T]) match(st *state, v T, filters []filter) bool {
	for _, fl := range filters {
		var have []string
		if get, ok := fs.fields[fl.name]; ok {
			have = get(st, v)
		} else {
			t := fs.tags(v)
			switch {
			case fl.name == "tag-key":
				for k := range t {
					have = append(have, k)
				}
			case fl.name == "tag-value":
				for _, val := range t {
					have = append(have, val)
				}
			default:
				if val, ok := t[strings.TrimPrefix(fl.name, "tag:")]; ok {
					have = []string{val}
				}
			}
		}
		if !anyMatch(fl.values, have, fs.literal) {
			return false
		}
	}
	return true
}

func anyMatch(patterns, have []string, literal bool) bool {
	for _, p := range patterns {
		for _, h := range have {
			if p == h || !literal && glob(p, h) {
				return true
			}
		}
	}
	return false
}

// glob matches EC2 filter wildcards: * any run, ? one character, \ escapes.
func glob(p, s string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for i := len(s); i >= 0; i-- {
				if glob(p[1:], s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if len(s) == 0 {
				return false
			}
			p, s = p[1:], s[1:]
		case '\\':
			if len(p) > 1 {
				p = p[1:]
			}
			fallthrough
		default:
			if len(s) == 0 || s[0] != p[0] {
				return false
			}
			p, s = p[1:], s[1:]
		}
	}
	return len(s) == 0
}

func one(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}
