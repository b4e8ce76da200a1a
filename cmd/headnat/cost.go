package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/headnat/headnat/cost"
)

func init() {
	commands["cost"] = command{"estimate the monthly cost of synthesized stacks, with headnat and with NAT Gateways", costMain}
}

func costMain(_ context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("cost", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o := cost.Options{}
	dir := fs.String("dir", "cdk/cdk.out", "the cdk.out directory whose *.template.json are read (unless files are given)")
	fs.StringVar(&o.Region, "region", "us-east-1", "AWS region whose prices apply")
	fs.Float64Var(&o.EgressGB, "gb-per-month", 100, "GB/month from the private subnets to the internet, through the NAT")
	fs.Float64Var(&o.Hours, "hours", cost.HoursPerMonth, "hours of use per month")
	fs.Float64Var(&o.LogGB, "log-gb-per-month", 2, "GB/month ingested into CloudWatch Logs, all log groups together")
	fs.Float64Var(&o.AuroraACU, "aurora-acu", -1, "average ACUs per Aurora Serverless v2 instance (negative: midpoint of min and max)")
	fs.Float64Var(&o.AuroraGB, "aurora-gb", 10, "GB stored per Aurora cluster")
	fs.Float64Var(&o.LCU, "lcu", 1, "average LCUs per ALB")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(e.stdout, "usage: headnat cost [--dir cdk/cdk.out | TEMPLATE.json...] [--region us-east-1|ap-northeast-2] [--gb-per-month N] [--hours N] [--log-gb-per-month N] [--aurora-acu N] [--aurora-gb N] [--lcu N]")
			return nil
		}
		return usagef("%v", err)
	}
	table, err := cost.Prices()
	if err != nil {
		return err
	}
	if err := table.CheckRegion(o.Region); err != nil {
		return usagef("--region: %v", err)
	}
	var ts []cost.Template
	if fs.NArg() > 0 {
		ts, err = cost.LoadFiles(fs.Args())
	} else {
		ts, err = cost.LoadDir(*dir)
	}
	if err != nil {
		return err
	}
	est, err := cost.Compute(ts, table, o)
	if err != nil {
		return usagef("%v", err)
	}
	return cost.Write(e.stdout, est, table, o)
}
