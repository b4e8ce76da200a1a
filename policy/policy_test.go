package policy

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// stripComments turns the rendered HuJSON into JSON: the template only has whole-line
// comments and no trailing commas.
func stripComments(b []byte) []byte {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "//") {
			out = append(out, l)
		}
	}
	return []byte(strings.Join(out, "\n"))
}

type rendered struct {
	Groups    map[string][]string `json:"groups"`
	TagOwners map[string][]string `json:"tagOwners"`
	ACLs      []struct {
		Action string   `json:"action"`
		Src    []string `json:"src"`
		Dst    []string `json:"dst"`
	} `json:"acls"`
	AutoApprovers struct {
		Routes map[string][]string `json:"routes"`
	} `json:"autoApprovers"`
	SSH []struct {
		Action string   `json:"action"`
		Src    []string `json:"src"`
		Dst    []string `json:"dst"`
		Users  []string `json:"users"`
	} `json:"ssh"`
}

func mustParse(t *testing.T, b []byte) rendered {
	t.Helper()
	var r rendered
	dec := json.NewDecoder(strings.NewReader(string(stripComments(b))))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("rendered policy is not JSON: %v\n%s", err, b)
	}
	return r
}

func pfx(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, netip.MustParsePrefix(x))
	}
	return out
}

func TestRenderDefaults(t *testing.T) {
	b, err := Render(Params{Admins: []string{"alice@", "bob@example.com"}, VPCCIDRs: pfx("198.18.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	r := mustParse(t, b)
	if got := r.Groups["group:admins"]; !reflect.DeepEqual(got, []string{"alice@", "bob@example.com"}) {
		t.Errorf("group:admins = %v", got)
	}
	if got := r.TagOwners["tag:nat"]; !reflect.DeepEqual(got, []string{"group:admins"}) {
		t.Errorf("tagOwners = %v", got)
	}
	if got := r.AutoApprovers.Routes; !reflect.DeepEqual(got, map[string][]string{"198.18.0.0/16": {"tag:nat"}}) {
		t.Errorf("autoApprovers.routes = %v", got)
	}
	want := [][2][]string{
		{{"group:admins"}, {"198.18.0.0/16:*"}},
		{{"group:admins"}, {"tag:nat:7070"}},
		{{"tag:nat"}, {"tag:nat:7070"}},
		{{"group:admins"}, {"tag:nat:22"}},
		{{"198.18.0.0/16"}, {"198.18.0.0/16:7070"}},
	}
	if len(r.ACLs) != len(want) {
		t.Fatalf("acls = %+v", r.ACLs)
	}
	for i, a := range r.ACLs {
		if a.Action != "accept" || !reflect.DeepEqual(a.Src, want[i][0]) || !reflect.DeepEqual(a.Dst, want[i][1]) {
			t.Errorf("acl %d = %+v, want src %v dst %v", i, a, want[i][0], want[i][1])
		}
	}
	if len(r.SSH) != 1 {
		t.Fatalf("ssh = %+v, want one rule", r.SSH)
	}
	if s := r.SSH[0]; s.Action != "accept" || !reflect.DeepEqual(s.Src, []string{"group:admins"}) ||
		!reflect.DeepEqual(s.Dst, []string{"tag:nat"}) || !reflect.DeepEqual(s.Users, []string{"root"}) {
		t.Errorf("ssh rule = %+v, want accept group:admins -> tag:nat as root", s)
	}
}

// TestRenderNoSSH: NoSSH leaves out the ssh section and the port 22 rule, and nothing else.
func TestRenderNoSSH(t *testing.T) {
	p := Params{Admins: []string{"alice@"}, VPCCIDRs: pfx("198.18.0.0/16")}
	with, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	p.NoSSH = true
	b, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	r, w := mustParse(t, b), mustParse(t, with)
	if r.SSH != nil || strings.Contains(string(b), `"ssh"`) || strings.Contains(string(b), ":22") {
		t.Errorf("NoSSH policy still has SSH:\n%s", b)
	}
	// The same rules but the port 22 one.
	var kept []string
	for _, a := range w.ACLs {
		if !reflect.DeepEqual(a.Dst, []string{"tag:nat:22"}) {
			kept = append(kept, strings.Join(a.Src, ",")+" -> "+strings.Join(a.Dst, ","))
		}
	}
	var got []string
	for _, a := range r.ACLs {
		got = append(got, strings.Join(a.Src, ",")+" -> "+strings.Join(a.Dst, ","))
	}
	if len(w.ACLs) != len(r.ACLs)+1 || !reflect.DeepEqual(got, kept) {
		t.Errorf("acls with NoSSH = %v, want %v", got, kept)
	}
}

func TestRenderCustom(t *testing.T) {
	b, err := Render(Params{
		AdminGroup:  "group:ops",
		NATTag:      "tag:router",
		TagOwners:   []string{"carol@", "group:ops"},
		VPCCIDRs:    pfx("198.19.0.0/16", "198.18.0.0/16", "198.18.0.0/16"),
		ExtraRoutes: pfx("203.0.113.0/24"),
		AgentPort:   9100,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := mustParse(t, b)
	if got := r.Groups["group:ops"]; got == nil || len(got) != 0 {
		t.Errorf("group:ops = %#v, want an empty list", got)
	}
	if got := r.TagOwners["tag:router"]; !reflect.DeepEqual(got, []string{"carol@", "group:ops"}) {
		t.Errorf("tagOwners = %v", got)
	}
	wantRoutes := []string{"198.18.0.0/16", "198.19.0.0/16", "203.0.113.0/24"}
	if len(r.AutoApprovers.Routes) != len(wantRoutes) {
		t.Errorf("autoApprovers.routes = %v", r.AutoApprovers.Routes)
	}
	for _, w := range wantRoutes {
		if got := r.AutoApprovers.Routes[w]; !reflect.DeepEqual(got, []string{"tag:router"}) {
			t.Errorf("autoApprovers.routes[%s] = %v", w, got)
		}
	}
	if got := r.ACLs[0].Dst; !reflect.DeepEqual(got, []string{"198.18.0.0/16:*", "198.19.0.0/16:*", "203.0.113.0/24:*"}) {
		t.Errorf("admin route dsts = %v", got)
	}
	if got := r.ACLs[2].Dst; !reflect.DeepEqual(got, []string{"tag:router:9100"}) {
		t.Errorf("nat dst = %v", got)
	}
	if a := r.ACLs[3]; !reflect.DeepEqual(a.Src, []string{"group:ops"}) || !reflect.DeepEqual(a.Dst, []string{"tag:router:22"}) {
		t.Errorf("ssh port rule = %+v, want group:ops -> tag:router:22", a)
	}
	if len(r.SSH) != 1 || !reflect.DeepEqual(r.SSH[0].Src, []string{"group:ops"}) || !reflect.DeepEqual(r.SSH[0].Dst, []string{"tag:router"}) {
		t.Errorf("ssh = %+v, want group:ops -> tag:router", r.SSH)
	}
	if len(r.ACLs) != 4+len(wantRoutes) {
		t.Fatalf("acls = %+v", r.ACLs)
	}
	for i, w := range wantRoutes {
		a := r.ACLs[4+i]
		if !reflect.DeepEqual(a.Src, []string{w}) || !reflect.DeepEqual(a.Dst, []string{w + ":9100"}) {
			t.Errorf("route rule %d = %+v, want %s -> %s:9100", i, a, w, w)
		}
	}
}

// TestNothingElseOpen: no rule allows everything, every source is the admin group, the NAT
// tag or a route, and a route may only reach the agent port inside itself.
func TestNothingElseOpen(t *testing.T) {
	b, err := Render(Params{Admins: []string{"alice@"}, VPCCIDRs: pfx("198.18.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(stripComments(b)), `"*"`) || strings.Contains(string(b), `"*:*"`) {
		t.Errorf("policy has a wildcard:\n%s", b)
	}
	for _, a := range mustParse(t, b).ACLs {
		for _, s := range a.Src {
			if s == "198.18.0.0/16" {
				if !reflect.DeepEqual(a.Dst, []string{"198.18.0.0/16:7070"}) {
					t.Errorf("route rule %+v opens more than the agent port", a)
				}
				continue
			}
			if s != "group:admins" && s != "tag:nat" {
				t.Errorf("unexpected source %q", s)
			}
		}
		for _, d := range a.Dst {
			if strings.HasPrefix(d, "*") || strings.HasPrefix(d, "autogroup:") {
				t.Errorf("unexpected destination %q", d)
			}
			// Port 22 of the NATs: admins only.
			if strings.HasSuffix(d, ":22") && !reflect.DeepEqual(a.Src, []string{"group:admins"}) {
				t.Errorf("rule %+v opens SSH to more than the admins", a)
			}
		}
	}
	for _, s := range mustParse(t, b).SSH {
		if s.Action != "accept" || !reflect.DeepEqual(s.Src, []string{"group:admins"}) ||
			!reflect.DeepEqual(s.Dst, []string{"tag:nat"}) || !reflect.DeepEqual(s.Users, []string{"root"}) {
			t.Errorf("ssh rule %+v: want admins to tag:nat as root only", s)
		}
	}
}

func TestRenderRejects(t *testing.T) {
	vpc := pfx("198.18.0.0/16")
	for _, tc := range []struct {
		name string
		p    Params
		want string
	}{
		{"no cidrs", Params{Admins: []string{"alice@"}}, "no VPC CIDRs"},
		{"host bits", Params{VPCCIDRs: pfx("198.18.0.1/16")}, "host bits"},
		{"default route", Params{VPCCIDRs: vpc, ExtraRoutes: pfx("0.0.0.0/0")}, "default route"},
		{"invalid cidr", Params{VPCCIDRs: []netip.Prefix{{}}}, "not a valid CIDR"},
		{"bad admin", Params{Admins: []string{"alice"}, VPCCIDRs: vpc}, `admin "alice"`},
		{"quote in admin", Params{Admins: []string{`a"@`}, VPCCIDRs: vpc}, "not a user identity"},
		{"bad group", Params{AdminGroup: "admins", VPCCIDRs: vpc}, "group:NAME"},
		{"bad tag", Params{NATTag: "tag:1nat", VPCCIDRs: vpc}, "tag:NAME"},
		{"undefined owner group", Params{TagOwners: []string{"group:other"}, VPCCIDRs: vpc}, "not a group this policy defines"},
		{"bad owner", Params{TagOwners: []string{"*"}, VPCCIDRs: vpc}, "tag owner"},
		{"bad port", Params{AgentPort: 70000, VPCCIDRs: vpc}, "agent port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Render(tc.p)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "policy: ") {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestRoutesSortsAndDedupes(t *testing.T) {
	got := Routes(pfx("198.19.0.0/16", "198.18.0.0/16"), pfx("198.18.0.0/16", "198.18.0.0/15"))
	want := pfx("198.18.0.0/15", "198.18.0.0/16", "198.19.0.0/16")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Routes = %v, want %v", got, want)
	}
}
