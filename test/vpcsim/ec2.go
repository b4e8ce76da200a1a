package vpcsim

import "strings"

var ec2Ops = map[string]op{
	"DescribeInstances":               {false, (*Sim).describeInstances},
	"DescribeRouteTables":             {false, (*Sim).describeRouteTables},
	"DescribeNetworkInterfaces":       {false, (*Sim).describeNetworkInterfaces},
	"DescribeSubnets":                 {false, (*Sim).describeSubnets},
	"DescribeVpcs":                    {false, (*Sim).describeVpcs},
	"DescribeAddresses":               {false, (*Sim).describeAddresses},
	"CreateRoute":                     {true, (*Sim).createRoute},
	"ReplaceRoute":                    {true, (*Sim).replaceRoute},
	"DeleteRoute":                     {true, (*Sim).deleteRoute},
	"ModifyNetworkInterfaceAttribute": {true, (*Sim).modifyNetworkInterfaceAttribute},
	"ModifyInstanceAttribute":         {true, (*Sim).modifyInstanceAttribute},
	"AssociateAddress":                {true, (*Sim).associateAddress},
	"DisassociateAddress":             {true, (*Sim).disassociateAddress},
	"CreateTags":                      {true, (*Sim).createTags},
}

// wellFormed reports whether id is prefix followed by 8 or 17 lowercase hex digits.
func wellFormed(prefix, id string) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || (len(rest) != 8 && len(rest) != 17) {
		return false
	}
	for _, c := range rest {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

type idKind struct {
	prefix, malformed, notFound, noun string
}

var (
	kindInstance = idKind{"i-", "InvalidInstanceID.Malformed", "InvalidInstanceID.NotFound", "instance"}
	kindENI      = idKind{"eni-", "InvalidNetworkInterfaceId.Malformed", "InvalidNetworkInterfaceID.NotFound", "networkInterface"}
	kindTable    = idKind{"rtb-", "InvalidRouteTableId.Malformed", "InvalidRouteTableID.NotFound", "routeTable"}
	kindSubnet   = idKind{"subnet-", "InvalidSubnetID.Malformed", "InvalidSubnetID.NotFound", "subnet"}
	kindVpc      = idKind{"vpc-", "InvalidVpcID.Malformed", "InvalidVpcID.NotFound", "vpc"}
	kindAlloc    = idKind{"eipalloc-", "InvalidAllocationID.Malformed", "InvalidAllocationID.NotFound", "allocation"}
	kindAssoc    = idKind{"eipassoc-", "InvalidAssociationID.Malformed", "InvalidAssociationID.NotFound", "association"}
)

// check validates an ID and looks it up; exists is called only for well-formed IDs.
func (k idKind) check(id string, exists func(string) bool) *apiError {
	if !wellFormed(k.prefix, id) {
		return errf(400, k.malformed, "Invalid id: \"%s\" (expecting \"%s...\")", id, k.prefix)
	}
	if !exists(id) {
		return errf(400, k.notFound, "The %s ID '%s' does not exist", k.noun, id)
	}
	return nil
}

func missing(param string) *apiError {
	return errf(400, "MissingParameter", "The request must contain the parameter %s", param)
}

// describeSpec is one EC2 Describe action over resources of type T.
type describeSpec[T any] struct {
	action  string
	idParam string // the ID list, e.g. "InstanceId" for InstanceId.N
	kind    idKind
	fields  fieldSet[T]
	paging  pageRule
	lookup  func(*state, string) (T, bool)
	all     func(*state) []T // in creation order
	seq     func(T) int
	id      func(T) string
	render  func(*state, []T) []any
	check   func(*state) *apiError // optional: more validation, on the state being read
}

// describe runs the common part of a Describe action: ID list, filters, paging, DryRun. As EC2
// may, a page is cut before the filters apply, so a page can hold fewer items than asked, even
// none, and still carry a NextToken.
func describe[T any](s *Sim, f form, d describeSpec[T]) ([]any, *apiError) {
	filters, aerr := ec2Filters(f)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := d.fields.validate(filters); aerr != nil {
		return nil, aerr
	}
	ids := f.list(d.idParam)
	p, aerr := s.ec2Page(f, d.action, d.paging, len(ids) > 0)
	if aerr != nil {
		return nil, aerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.readState()
	if d.check != nil {
		if aerr := d.check(st); aerr != nil {
			return nil, aerr
		}
	}
	var items []T
	if len(ids) > 0 {
		seen := map[string]bool{}
		for _, want := range ids {
			if aerr := d.kind.check(want, func(x string) bool { _, ok := d.lookup(st, x); return ok }); aerr != nil {
				return nil, aerr
			}
			seen[want] = true
		}
		for _, v := range d.all(st) {
			if seen[d.id(v)] {
				items = append(items, v)
			}
		}
	} else {
		items = d.all(st)
	}
	if dry, _, _ := f.boolean("DryRun"); dry {
		return nil, errf(412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
	}
	items, next := cut(items, d.seq, p, d.action)
	var out []T
	for _, v := range items {
		if d.fields.match(st, v, filters) {
			out = append(out, v)
		}
	}
	parts := d.render(st, out)
	if next != "" {
		parts = append(parts, ec2NextToken(next))
	}
	return parts, nil
}

func (s *Sim) mutate(f form, fn func(*state) *apiError) *apiError {
	dry, _, aerr := f.boolean("DryRun")
	if aerr != nil {
		return aerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commit(fn, dry)
}

var okReturn = []any{xReturn{Value: true}}

// ---- source/dest check

// unsupportedAttr reports attribute parameters vpcsim does not model.
func unsupportedAttr(f form, allowed ...string) string {
	for k := range f {
		if k == "Action" || k == "Version" || k == "DryRun" {
			continue
		}
		ok := false
		for _, a := range allowed {
			if k == a {
				ok = true
			}
		}
		if !ok {
			return k
		}
	}
	return ""
}

// ---- CreateTags

func (s *Sim) createTags(f form) ([]any, *apiError) {
	ids := f.list("ResourceId")
	if len(ids) == 0 {
		return nil, missing("resourceIdSet")
	}
	add := tags{}
	for _, i := range f.indices("Tag") {
		k := f.get("Tag." + i + ".Key")
		switch {
		case k == "":
			return nil, errf(400, "InvalidParameterValue", "Tag %s has an empty key", i)
		case strings.HasPrefix(strings.ToLower(k), "aws:"):
			return nil, errf(400, "InvalidParameterValue", "Tag keys starting with 'aws:' are reserved for internal use")
		}
		add[k] = f.get("Tag." + i + ".Value")
	}
	if len(add) == 0 {
		return nil, missing("tagSet")
	}
	return okReturn, s.mutate(f, func(st *state) *apiError {
		for _, id := range ids {
			t := st.tagsOf(id)
			if t == nil {
				return notFoundAny(st, id)
			}
			for k, v := range add {
				t[k] = v
			}
		}
		return nil
	})
}

func notFoundAny(st *state, id string) *apiError {
	for _, k := range []idKind{kindInstance, kindENI, kindTable, kindSubnet, kindVpc, kindAlloc} {
		if strings.HasPrefix(id, k.prefix) {
			return k.check(id, func(string) bool { return false })
		}
	}
	return errf(400, "InvalidID", "The ID '%s' is not valid", id)
}
