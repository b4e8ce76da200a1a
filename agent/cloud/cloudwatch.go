package cloud

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// MetricDatum is one CloudWatch data point to publish.
type MetricDatum struct {
	Name       string
	Dimensions []MetricDimension
	Value      float64
	Unit       string // a CloudWatch unit, e.g. "Count"
	Time       time.Time
}

// MetricDimension is one dimension of a data point.
type MetricDimension struct{ Name, Value string }

// PutMetricData publishes data to namespace in one PutMetricData call, under the write
// timeout. A success is logged at Debug (it happens every minute), a failure at Warn.
func (c *Client) PutMetricData(ctx context.Context, namespace string, data []MetricDatum, reason string) error {
	const op = "PutMetricData"
	switch {
	case c.cw == nil:
		return fmt.Errorf("%s: %w", op, errNoClient)
	case namespace == "":
		return errors.New("PutMetricData: no namespace given")
	case len(data) == 0:
		return nil
	}
	in := &cloudwatch.PutMetricDataInput{Namespace: aws.String(namespace)}
	for _, d := range data {
		md := types.MetricDatum{MetricName: aws.String(d.Name), Value: aws.Float64(d.Value), Unit: types.StandardUnit(d.Unit)}
		if !d.Time.IsZero() {
			md.Timestamp = aws.Time(d.Time)
		}
		for _, dim := range d.Dimensions {
			md.Dimensions = append(md.Dimensions, types.Dimension{Name: aws.String(dim.Name), Value: aws.String(dim.Value)})
		}
		in.MetricData = append(in.MetricData, md)
	}
	err := c.do(ctx, call{op: op, reason: reason, timeout: c.o.Timeouts.Mutate, attrs: []any{"namespace", namespace, "data_points", len(data)}},
		func(ctx context.Context) error {
			_, err := c.cw.PutMetricData(ctx, in, c.cwOpt())
			return err
		})
	if err != nil {
		return fmt.Errorf("publish %d data points to CloudWatch namespace %q: %w", len(data), namespace, err)
	}
	return nil
}
