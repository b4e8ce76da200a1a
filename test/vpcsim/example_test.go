package vpcsim_test

import (
	"context"
	"fmt"
	"net"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/headnat/headnat/test/vpcsim"
)

// A lab seeds the Sim, mirrors it into the router namespace and serves it on a loopback port.
func Example() {
	sim := vpcsim.New(vpcsim.Options{Seed: 1})
	vpc := sim.AddVPC("198.18.0.0/16", nil)
	pubA := sim.AddSubnet(vpc, "us-east-1a", "198.18.0.0/24", nil)
	prvA := sim.AddSubnet(vpc, "us-east-1a", "198.18.10.0/24", nil)
	rtbA := sim.AddRouteTable(vpc, map[string]string{"headnat:cluster": "lab"})
	sim.Associate(rtbA, prvA)
	_, eniA := sim.AddInstance(vpcsim.InstanceSpec{SubnetID: pubA, PrivateIP: "198.18.0.10",
		Tags: map[string]string{"headnat:cluster": "lab"}})
	if err := sim.SetRoute(rtbA, "0.0.0.0/0", eniA); err != nil {
		panic(err)
	}

	// In the lab (as root, with the router namespace built), before serving, a Sink mirrors
	// the Sim into the kernel (package test/lab):
	//
	//	sink, err := lab.NewKernelSink(lab.KernelConfig{
	//		Namespace: routerNS,
	//		Tables:    map[string]lab.KernelTable{rtbA: {Table: 110, Iifs: []string{"prv-a"}}},
	//		SDCLegs:   []string{"pub-a", "pub-b"},
	//	})
	//	sim := vpcsim.New(vpcsim.Options{Sink: sink}) // ... seed ..., then sim.Sync()
	//	defer sink.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &http.Server{Handler: sim.Handler()}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	client := ec2.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDLAB", "lab", ""),
		BaseEndpoint: aws.String("http://" + ln.Addr().String()),
	})
	out, err := client.DescribeRouteTables(context.Background(), &ec2.DescribeRouteTablesInput{RouteTableIds: []string{rtbA}})
	if err != nil {
		panic(err)
	}
	for _, r := range out.RouteTables[0].Routes {
		fmt.Println(aws.ToString(r.DestinationCidrBlock), r.State)
	}
	// Output:
	// 198.18.0.0/16 active
	// 0.0.0.0/0 active
}
