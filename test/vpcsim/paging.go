package vpcsim

import (
	"encoding/base64"
	"encoding/xml"
	"strconv"
	"strings"
)

// pageRule is how an EC2 Describe action pages its answer.
type pageRule struct {
	min, max int // MaxResults bounds; max 0: the action does not page (DescribeAddresses)
	// idsParam is the wire name of the ID list MaxResults may not be combined with ("" if it
	// may): EC2 refuses MaxResults with InstanceIds and with NetworkInterfaceIds.
	idsParam string
}

// page is one request's place in a paged answer.
type page struct {
	size  int // items per page; 0: all
	after int // seq of the last item of the previous page; 0 on the first page
}

// nextToken is the token of the next page, an element after the answer's set.
type nextToken struct {
	XMLName xml.Name
	Value   string `xml:",chardata"`
}

func ec2NextToken(v string) nextToken {
	return nextToken{XMLName: xml.Name{Local: "nextToken"}, Value: v}
}
func asgNextToken(v string) nextToken {
	return nextToken{XMLName: xml.Name{Local: "NextToken"}, Value: v}
}

// makeToken encodes where the next page starts. Items are listed in creation order, so a page
// after the item with seq n starts at the first item created after it, whatever was created or
// deleted in between.
func makeToken(action string, seq int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(action + ":" + strconv.Itoa(seq)))
}

// readToken decodes a NextToken made by makeToken for the same action.
func readToken(action, tok string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, false
	}
	a, n, ok := strings.Cut(string(b), ":")
	seq, err := strconv.Atoi(n)
	if !ok || a != action || err != nil || seq <= 0 {
		return 0, false
	}
	return seq, true
}

// ec2Page reads MaxResults and NextToken of an EC2 Describe call. Without MaxResults the page
// size is Options.PageSize, except where MaxResults may not go with the ID list given.
func (s *Sim) ec2Page(f form, action string, r pageRule, haveIDs bool) (page, *apiError) {
	var p page
	if r.max == 0 {
		return p, nil
	}
	if v := f.get("MaxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < r.min || n > r.max {
			return p, errf(400, "InvalidParameterValue",
				"Value ( %s ) for parameter maxResults is invalid. Expecting a value between %d and %d.", v, r.min, r.max)
		}
		if haveIDs && r.idsParam != "" {
			return p, errf(400, "InvalidParameterCombination",
				"The parameter %s cannot be used with the parameter maxResults", r.idsParam)
		}
		p.size = n
	} else if !haveIDs || r.idsParam == "" {
		p.size = s.opts.PageSize
	}
	if tok := f.get("NextToken"); tok != "" {
		seq, ok := readToken(action, tok)
		if !ok {
			return p, errf(400, "InvalidNextToken", "The specified NextToken is not valid.")
		}
		p.after = seq
	}
	return p, nil
}

// asgDefaultPage is AutoScaling's page size when the caller gives no MaxRecords.
const asgDefaultPage = 50

// asgPage reads MaxRecords and NextToken of an AutoScaling Describe call (MaxRecords 1..max).
func (s *Sim) asgPage(f form, action string, maxRecords int) (page, *apiError) {
	p := page{size: asgDefaultPage}
	if s.opts.PageSize > 0 {
		p.size = s.opts.PageSize
	}
	p.size = min(p.size, maxRecords)
	if v := f.get("MaxRecords"); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			return p, validationError("1 validation error detected: Value '%s' at 'maxRecords' failed to satisfy constraint: Member must be a number", v)
		case n < 1:
			return p, validationError("1 validation error detected: Value '%d' at 'maxRecords' failed to satisfy constraint: Member must have value greater than or equal to 1", n)
		case n > maxRecords:
			return p, validationError("1 validation error detected: Value '%d' at 'maxRecords' failed to satisfy constraint: Member must have value less than or equal to %d", n, maxRecords)
		}
		p.size = n
	}
	if tok := f.get("NextToken"); tok != "" {
		seq, ok := readToken(action, tok)
		if !ok {
			return p, errf(400, "InvalidNextToken", "The token '%s' is invalid.", tok)
		}
		p.after = seq
	}
	return p, nil
}

// cut returns the items of the page (items in seq order) and the next page's token, "" when
// nothing is left.
func cut[T any](items []T, seq func(T) int, p page, action string) ([]T, string) {
	i := 0
	for i < len(items) && seq(items[i]) <= p.after {
		i++
	}
	items = items[i:]
	if p.size <= 0 || len(items) <= p.size {
		return items, ""
	}
	return items[:p.size], makeToken(action, seq(items[p.size-1]))
}
