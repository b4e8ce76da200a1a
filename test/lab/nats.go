package lab

import (
	"fmt"
	"slices"
	"strings"
)

// NATs returns the live NAT instances, AZ by AZ, each AZ's in launch order: a, a2, b. The
// slice is the caller's; Launch and TerminateNow change what later calls return.
func (l *Lab) NATs() []*Site {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.nats)
}

// Sites returns one NAT per AZ, a then b, for the AZ's fields (private subnet, route table,
// host): the AZ's first live NAT, or, while the AZ has none, the one terminated last (whose
// namespace is gone).
func (l *Lab) Sites() []*Site {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*Site
	for _, az := range AZs {
		if s := l.azSiteLocked(az); s != nil {
			out = append(out, s)
		}
	}
	return out
}

// azSiteLocked is Sites' entry for one AZ, nil if it never had a NAT. Callers hold l.mu.
func (l *Lab) azSiteLocked(az string) *Site {
	for _, s := range l.nats {
		if s.AZ == az {
			return s
		}
	}
	for i := len(l.gone) - 1; i >= 0; i-- {
		if l.gone[i].AZ == az {
			return l.gone[i]
		}
	}
	return nil
}

// Terminated returns the NAT instances TerminateNow removed, oldest first.
func (l *Lab) Terminated() []*Site {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.gone)
}

// Live reports whether a NAT instance runs (was not terminated).
func (l *Lab) Live(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := strings.TrimPrefix(name, "nat-")
	return slices.ContainsFunc(l.nats, func(s *Site) bool { return s.Name == n })
}

// Site returns the NAT instance named name: "a", "b", "a2", ... ("nat-a2" works too; "a1" and
// "us-east-1a" name an AZ's first live NAT). Terminated NATs are found too (their names are
// never reused); the actions on a NAT (StartAgent, Kill, SpotNotice, ...) refuse them.
func (l *Lab) Site(name string) (*Site, error) {
	n := strings.TrimPrefix(name, "nat-")
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, az := range AZs {
		if n == Region+az || n == az+"1" {
			n = az
			if s := l.azSiteLocked(az); s != nil {
				n = s.Name
			}
		}
	}
	for _, list := range [][]*Site{l.nats, l.gone} {
		for _, s := range list {
			if s.Name == n {
				return s, nil
			}
		}
	}
	return nil, fmt.Errorf("no NAT instance %q in the lab (have %s)", name, strings.Join(names(l.nats), ", "))
}

// liveSite is Site for actions that need a running instance.
func (l *Lab) liveSite(name string) (*Site, error) {
	s, err := l.Site(name)
	if err != nil {
		return nil, err
	}
	if !l.Live(s.Name) {
		return nil, fmt.Errorf("nat-%s is terminated", s.Name)
	}
	return s, nil
}

func names(sites []*Site) []string {
	out := make([]string, 0, len(sites))
	for _, s := range sites {
		out = append(out, s.Name)
	}
	return out
}

// NATNames lists the live NAT instances' names: a, a2, b.
func (l *Lab) NATNames() []string { return names(l.NATs()) }

// MustSite is Site for names known to be valid.
func (l *Lab) MustSite(name string) *Site {
	s, err := l.Site(name)
	if err != nil {
		panic(err)
	}
	return s
}

// Other returns the first NAT of the other AZ of a two-AZ lab.
func (l *Lab) Other(s *Site) *Site {
	for _, o := range l.Sites() {
		if o.AZ != s.AZ {
			return o
		}
	}
	return nil
}

// findSite returns the live NAT matching, else the terminated one that matched last.
func (l *Lab) findSite(match func(*Site) bool) *Site {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.nats {
		if match(s) {
			return s
		}
	}
	for i := len(l.gone) - 1; i >= 0; i-- {
		if match(l.gone[i]) {
			return l.gone[i]
		}
	}
	return nil
}

// siteByENI maps an ENI to its NAT instance, live or terminated (nil if none).
func (l *Lab) siteByENI(eni string) *Site {
	return l.findSite(func(s *Site) bool { return s.ENI == eni })
}

// siteByInstance maps an instance ID to its NAT instance, live or terminated (nil if none).
func (l *Lab) siteByInstance(id string) *Site {
	return l.findSite(func(s *Site) bool { return s.InstanceID == id })
}

// SiteByIP returns the NAT instance whose private (VPC) address is ip: the live one, else the
// terminated one that had it last; nil if none.
func (l *Lab) SiteByIP(ip string) *Site {
	return l.findSite(func(s *Site) bool { return s.NATIP == ip })
}

func (l *Lab) siteByTable(rtb string) *Site {
	for _, s := range l.Sites() {
		if s.RouteTable == rtb {
			return s
		}
	}
	return nil
}

// publish adds a built NAT to the live ones, after the last of its AZ.
func (l *Lab) publish(s *Site) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := len(l.nats)
	for j, o := range l.nats {
		if slices.Index(AZs, o.AZ) > slices.Index(AZs, s.AZ) {
			i = j
			break
		}
	}
	l.nats = slices.Insert(slices.Clone(l.nats), i, s)
}

// retire moves a NAT from the live ones to the terminated ones.
func (l *Lab) retire(s *Site) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nats = slices.DeleteFunc(slices.Clone(l.nats), func(o *Site) bool { return o == s })
	l.gone = append(slices.Clone(l.gone), s)
}
