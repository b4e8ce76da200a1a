package cloud

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func goodInstance() types.Instance {
	launch := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return types.Instance{
		InstanceId:       aws.String("i-1"),
		State:            &types.InstanceState{Name: types.InstanceStateNameRunning},
		Placement:        &types.Placement{AvailabilityZone: aws.String("eu-west-1a")},
		LaunchTime:       &launch,
		PrivateIpAddress: aws.String("198.18.0.10"),
		NetworkInterfaces: []types.InstanceNetworkInterface{
			{NetworkInterfaceId: aws.String("eni-2"), PrivateIpAddress: aws.String("198.18.0.99"),
				Attachment: &types.InstanceNetworkInterfaceAttachment{DeviceIndex: aws.Int32(1)}},
			{NetworkInterfaceId: aws.String("eni-1"), PrivateIpAddress: aws.String("198.18.0.10"),
				Attachment: &types.InstanceNetworkInterfaceAttachment{DeviceIndex: aws.Int32(0)}},
		},
	}
}

func TestParseInstance(t *testing.T) {
	in, err := parseInstance(goodInstance())
	if err != nil {
		t.Fatal(err)
	}
	if in.ENI != "eni-1" || in.PrivateIP.String() != "198.18.0.10" || in.AZ != "eu-west-1a" || in.State != "running" {
		t.Errorf("parsed %+v; want the device-index-0 interface", in)
	}

	for _, tc := range []struct {
		name   string
		mutate func(*types.Instance)
		want   string
	}{
		{"no id", func(i *types.Instance) { i.InstanceId = nil }, "without id"},
		{"no state", func(i *types.Instance) { i.State = nil }, "without state"},
		{"no AZ", func(i *types.Instance) { i.Placement = nil }, "availability zone"},
		{"no launch time", func(i *types.Instance) { i.LaunchTime = nil }, "launch time"},
		{"no ENI", func(i *types.Instance) { i.NetworkInterfaces = nil }, "network interface"},
		{"no private IP", func(i *types.Instance) {
			i.PrivateIpAddress = nil
			i.NetworkInterfaces = []types.InstanceNetworkInterface{{NetworkInterfaceId: aws.String("eni-1"),
				Attachment: &types.InstanceNetworkInterfaceAttachment{DeviceIndex: aws.Int32(0)}}}
		}, "private IP"},
		{"bad private IP", func(i *types.Instance) { i.PrivateIpAddress = aws.String("198.18.0.300") }, "not IPv4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i := goodInstance()
			tc.mutate(&i)
			got, err := parseInstance(i)
			var br *BadResponseError
			if err == nil || !errors.As(err, &br) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("parseInstance = %+v, %v; want a bad-response error about %q", got, err, tc.want)
			}
			if got.ID != "" {
				t.Errorf("half-built instance returned: %+v", got)
			}
		})
	}
}

func TestParseRouteTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		rt   types.RouteTable
		want string // the parsed table, or the error
	}{
		{"no id", types.RouteTable{}, "error: route table without id"},
		{"no default route", types.RouteTable{RouteTableId: aws.String("rtb-1"),
			Routes: []types.Route{{DestinationCidrBlock: aws.String("198.18.0.0/16"), GatewayId: aws.String("local"), State: types.RouteStateActive}}},
			"rtb-1 az= missing //"},
		{"to an instance", types.RouteTable{RouteTableId: aws.String("rtb-1"),
			Tags:         []types.Tag{{Key: aws.String(TagAZ), Value: aws.String("eu-west-1b")}},
			Associations: []types.RouteTableAssociation{{Main: aws.Bool(true)}, {SubnetId: aws.String("subnet-2")}, {SubnetId: aws.String("subnet-1")}},
			Routes: []types.Route{{DestinationCidrBlock: aws.String(DefaultRoute), NetworkInterfaceId: aws.String("eni-1"),
				InstanceId: aws.String("i-1"), State: types.RouteStateBlackhole}}},
			"rtb-1 az=eu-west-1b blackhole eni-1/i-1/ subnet-1,subnet-2"},
		{"to a NAT gateway", types.RouteTable{RouteTableId: aws.String("rtb-1"),
			Routes: []types.Route{{DestinationCidrBlock: aws.String(DefaultRoute), NatGatewayId: aws.String("nat-1"), State: types.RouteStateActive}}},
			"rtb-1 az= active //nat-1"},
		{"unknown state", types.RouteTable{RouteTableId: aws.String("rtb-1"),
			Routes: []types.Route{{DestinationCidrBlock: aws.String(DefaultRoute), NetworkInterfaceId: aws.String("eni-1")}}},
			"error: route table rtb-1: default route in unknown state"},
		{"empty az tag", types.RouteTable{RouteTableId: aws.String("rtb-1"),
			Tags: []types.Tag{{Key: aws.String(TagAZ), Value: aws.String("")}}},
			"error: route table rtb-1: empty headnat:az tag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseRouteTable(tc.rt)
			s := got.ID + " az=" + got.HomeAZ + " " + string(got.State) + " " + got.Target.ENI + "/" + got.Target.InstanceID + "/" + got.Target.Other
			if len(got.Subnets) > 0 {
				s += " " + strings.Join(got.Subnets, ",")
			}
			if err != nil {
				s = "error: " + err.Error()
			}
			wantErr := strings.HasPrefix(tc.want, "error: ")
			if (err != nil) != wantErr || !strings.Contains(s, strings.TrimPrefix(tc.want, "error: ")) {
				t.Errorf("parseRouteTable = %q, want %q", s, tc.want)
			}
		})
	}
}

func TestParseCIDRs(t *testing.T) {
	got, err := parseCIDRs("198.18.0.0/16\n 198.19.0.0/24\n")
	if err != nil || len(got) != 2 || got[1].String() != "198.19.0.0/24" {
		t.Errorf("parseCIDRs = %v, %v", got, err)
	}
	for _, bad := range []string{"", "198.18.0.0", "198.18.0.0/16 x", "2001:db8::/32", "198.18.0.1/16"} {
		if p, err := parseCIDRs(bad); err == nil {
			t.Errorf("parseCIDRs(%q) = %v, want an error", bad, p)
		}
	}
}

func TestBackoff(t *testing.T) {
	for attempt := 0; attempt < 40; attempt++ {
		for i := 0; i < 50; i++ {
			d := backoff(attempt, DefaultBaseBackoff, DefaultMaxBackoff)
			if d < 0 || d > DefaultMaxBackoff {
				t.Fatalf("backoff(%d) = %v, outside [0, %v]", attempt, d, DefaultMaxBackoff)
			}
		}
	}
	// It grows: the floor of attempt 4 (half of 200ms) is above the ceiling of attempt 1 (25ms).
	if d := backoff(4, DefaultBaseBackoff, DefaultMaxBackoff); d < 100*time.Millisecond {
		t.Errorf("backoff(4) = %v, want >= 100ms", d)
	}
	if d := backoff(1, DefaultBaseBackoff, DefaultMaxBackoff); d > DefaultBaseBackoff {
		t.Errorf("backoff(1) = %v, want <= %v", d, DefaultBaseBackoff)
	}
}
