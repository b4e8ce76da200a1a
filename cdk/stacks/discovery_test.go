package stacks

import (
	"context"
	"encoding/json"
	"maps"
	"net/http/httptest"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/headnat/headnat/agent/cloud"
	"github.com/headnat/headnat/agent/config"
	"github.com/headnat/headnat/agent/discovery"
	"github.com/headnat/headnat/cdk/internal/cdktest"
	"github.com/headnat/headnat/cdk/internal/cfnworld"
)

// azs is what Fn::GetAZs answers in the simulated region.
var azs = []string{"us-east-1a", "us-east-1b", "us-east-1c"}

// fixedIMDS is the EC2 client with IMDS's answers given by the test.
type fixedIMDS struct {
	*cloud.Client
	id cloud.Identity
}

func (f fixedIMDS) ReadIdentity(context.Context) (cloud.Identity, error) { return f.id, nil }

// GIVEN the network stack synthesized and deployed into a simulated account WHEN the agent on
// the NAT instance in the first AZ (then the second) runs its discovery THEN it manages exactly
// the private tables, each with the AZ of its subnet as home, no public table, and sees every
// instance.
func TestAgentDiscoversWhatIsDeployed(t *testing.T) {
	for _, tc := range []struct {
		name  string
		props *NetworkStackProps
	}{{"full", fullProps()}, {"minimal", minimalProps()}} {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := synth(t, tc.props)
			w := deploy(t, tmpl)
			private, public := tablesByKind(t, tmpl)
			if len(private) != DefaultMaxAZs || len(public) != DefaultMaxAZs {
				t.Fatalf("template has private tables %v and public tables %v: want %d of each", private, public, DefaultMaxAZs)
			}

			want := map[string]string{} // table id -> home AZ
			for table, subnet := range private {
				want[w.Tables[table].ID] = w.Subnets[subnet].AZ
			}
			if homes := slices.Sorted(maps.Values(want)); !slices.Equal(homes, azs[:DefaultMaxAZs]) {
				t.Errorf("private tables' home AZs %v, want one in each of %v", homes, azs[:DefaultMaxAZs])
			}
			var launched []string
			for _, in := range w.Instances {
				launched = append(launched, in.ID+" "+in.AZ)
			}
			slices.Sort(launched)
			if len(launched) != DefaultMaxAZs {
				t.Fatalf("launched %v, want one instance per AZ", launched)
			}

			// The agent in the first AZ, as the issue asks; the other AZ's must agree.
			for _, az := range azs[:DefaultMaxAZs] {
				r, err := resolveOn(t, w, az, tc.props.Fleet.Cluster)
				if err != nil {
					t.Fatalf("discovery on the instance in %s: %v", az, err)
				}
				got := map[string]string{}
				for _, tb := range r.Cluster.Tables {
					got[tb.ID] = tb.HomeAZ
				}
				if !maps.Equal(got, want) {
					t.Errorf("%s: managed tables (id: home AZ) %v, want the private tables %v", az, got, want)
				}
				for table := range public {
					if _, ok := got[w.Tables[table].ID]; ok {
						t.Errorf("%s: public table %s (%s) is managed", az, table, w.Tables[table].ID)
					}
				}
				var seen []string
				for _, in := range r.Cluster.Instances {
					seen = append(seen, in.ID+" "+in.AZ)
				}
				slices.Sort(seen)
				if !slices.Equal(seen, launched) {
					t.Errorf("%s: cluster members %v, want the launched instances %v", az, seen, launched)
				}
				if r.Cluster.Name != cluster || r.Self.ClusterName != cluster || r.Self.AZ != az {
					t.Errorf("%s: cluster %q, self %+v: want cluster %q and the instance in %s", az, r.Cluster.Name, r.Self, cluster, az)
				}
				if vpc := netip.MustParsePrefix(DefaultVpcCIDR); !slices.Equal(r.Spec.VPCCIDRs, []netip.Prefix{vpc}) {
					t.Errorf("%s: data plane VPC CIDRs %v, want %v", az, r.Spec.VPCCIDRs, vpc)
				}
			}
		})
	}
}

// deploy builds the template's world.
func deploy(t *testing.T, tmpl assertions.Template) *cfnworld.World {
	t.Helper()
	b, err := json.Marshal(tmpl.ToJSON())
	if err != nil {
		t.Fatalf("template to JSON: %v", err)
	}
	w, err := cfnworld.Build(b, cfnworld.Options{Region: "us-east-1", AZs: azs, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// tablesByKind reads from the template which route table serves which subnet, split by CDK's
// subnet type: private (isolated or private) and public, by logical id of table -> subnet.
func tablesByKind(t *testing.T, tmpl assertions.Template) (private, public map[string]string) {
	t.Helper()
	kind := map[string]string{}
	for _, s := range cdktest.Resources(t, tmpl, "AWS::EC2::Subnet") {
		kind[s.ID] = cdktest.Tags(s.Properties["Tags"])["aws-cdk:subnet-type"]
	}
	private, public = map[string]string{}, map[string]string{}
	for _, a := range cdktest.Resources(t, tmpl, "AWS::EC2::SubnetRouteTableAssociation") {
		table, _ := a.Properties["RouteTableId"].(map[string]any)["Ref"].(string)
		subnet, _ := a.Properties["SubnetId"].(map[string]any)["Ref"].(string)
		switch kind[subnet] {
		case "Isolated", "Private":
			private[table] = subnet
		case "Public":
			public[table] = subnet
		default:
			t.Fatalf("association %s: subnet %q of unknown type %q", a.ID, subnet, kind[subnet])
		}
	}
	return private, public
}

// resolveOn runs the agent's discovery as the instance in az would: the real EC2 client
// against the Sim, IMDS answering that instance's id, AZ and the VPC's CIDR.
func resolveOn(t *testing.T, w *cfnworld.World, az, clusterName string) (discovery.Resolved, error) {
	t.Helper()
	i := slices.IndexFunc(w.Instances, func(in cfnworld.Instance) bool { return in.AZ == az })
	if i < 0 {
		t.Fatalf("no instance launched in %s: %+v", az, w.Instances)
	}
	self := w.Instances[i]
	view, _ := w.Sim.Instance(self.ID)
	srv := httptest.NewServer(w.Sim.Handler())
	t.Cleanup(srv.Close)
	cl, err := cloud.New(context.Background(), cloud.Options{
		Region: w.Region, EC2Endpoint: srv.URL, ASGEndpoint: srv.URL, IMDSEndpoint: "http://127.0.0.1:9",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "test", ""), MaxBackoff: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	var cidrs []netip.Prefix
	for _, c := range w.VPCCIDRs {
		cidrs = append(cidrs, netip.MustParsePrefix(c))
	}
	id := cloud.Identity{InstanceID: self.ID, Region: w.Region, AZ: self.AZ, ENI: self.ENI, PrivateIP: view.PrivateIP,
		SubnetID: view.SubnetID, VPCID: view.VPCID, VPCCIDRs: cidrs}
	cfg := config.Default()
	cfg.Cluster = clusterName
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return discovery.Resolve(ctx, cfg, fixedIMDS{Client: cl, id: id})
}
