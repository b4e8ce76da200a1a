package vpcsim

import (
	"encoding/xml"
	"time"
)

// EC2 response shapes, element names as the ec2 query protocol spells them.

type xTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

func xTags(t tags) []xTag {
	out := make([]xTag, 0, len(t))
	for _, k := range sortedKeys(t) {
		out = append(out, xTag{k, t[k]})
	}
	return out
}

func xTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

type xState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type xPlacement struct {
	AvailabilityZone string `xml:"availabilityZone"`
	Tenancy          string `xml:"tenancy"`
}

type xAttachment struct {
	AttachmentID        string `xml:"attachmentId"`
	InstanceID          string `xml:"instanceId,omitempty"`
	InstanceOwnerID     string `xml:"instanceOwnerId,omitempty"`
	DeviceIndex         int    `xml:"deviceIndex"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type xIPAssociation struct {
	PublicIP      string `xml:"publicIp"`
	PublicDNSName string `xml:"publicDnsName"`
	IPOwnerID     string `xml:"ipOwnerId"`
	AllocationID  string `xml:"allocationId,omitempty"`
	AssociationID string `xml:"associationId,omitempty"`
}

type xPrivateIP struct {
	PrivateIPAddress string          `xml:"privateIpAddress"`
	Primary          bool            `xml:"primary"`
	Association      *xIPAssociation `xml:"association,omitempty"`
}

type xInstanceENI struct {
	NetworkInterfaceID string          `xml:"networkInterfaceId"`
	SubnetID           string          `xml:"subnetId"`
	VpcID              string          `xml:"vpcId"`
	Description        string          `xml:"description"`
	OwnerID            string          `xml:"ownerId"`
	Status             string          `xml:"status"`
	MacAddress         string          `xml:"macAddress"`
	PrivateIPAddress   string          `xml:"privateIpAddress"`
	SourceDestCheck    bool            `xml:"sourceDestCheck"`
	InterfaceType      string          `xml:"interfaceType"`
	Attachment         xAttachment     `xml:"attachment"`
	Association        *xIPAssociation `xml:"association,omitempty"`
	PrivateIPs         []xPrivateIP    `xml:"privateIpAddressesSet>item"`
}

type xInstance struct {
	InstanceID       string         `xml:"instanceId"`
	ImageID          string         `xml:"imageId"`
	State            xState         `xml:"instanceState"`
	PrivateIPAddress string         `xml:"privateIpAddress,omitempty"`
	IPAddress        string         `xml:"ipAddress,omitempty"`
	AmiLaunchIndex   int            `xml:"amiLaunchIndex"`
	InstanceType     string         `xml:"instanceType"`
	LaunchTime       string         `xml:"launchTime"`
	Placement        xPlacement     `xml:"placement"`
	SubnetID         string         `xml:"subnetId,omitempty"`
	VpcID            string         `xml:"vpcId,omitempty"`
	SourceDestCheck  *bool          `xml:"sourceDestCheck,omitempty"`
	Architecture     string         `xml:"architecture"`
	RootDeviceType   string         `xml:"rootDeviceType"`
	Hypervisor       string         `xml:"hypervisor"`
	Virtualization   string         `xml:"virtualizationType"`
	ENIs             []xInstanceENI `xml:"networkInterfaceSet>item"`
	Tags             []xTag         `xml:"tagSet>item"`
}

type xReservation struct {
	ReservationID string      `xml:"reservationId"`
	OwnerID       string      `xml:"ownerId"`
	Instances     []xInstance `xml:"instancesSet>item"`
}

type xReservationSet struct {
	XMLName xml.Name       `xml:"reservationSet"`
	Items   []xReservation `xml:"item"`
}

type xRoute struct {
	DestinationCidrBlock string `xml:"destinationCidrBlock"`
	GatewayID            string `xml:"gatewayId,omitempty"`
	InstanceID           string `xml:"instanceId,omitempty"`
	InstanceOwnerID      string `xml:"instanceOwnerId,omitempty"`
	NetworkInterfaceID   string `xml:"networkInterfaceId,omitempty"`
	State                string `xml:"state"`
	Origin               string `xml:"origin"`
}

type xAssocState struct {
	State string `xml:"state"`
}

type xRTAssociation struct {
	ID           string      `xml:"routeTableAssociationId"`
	RouteTableID string      `xml:"routeTableId"`
	SubnetID     string      `xml:"subnetId,omitempty"`
	Main         bool        `xml:"main"`
	State        xAssocState `xml:"associationState"`
}

type xRouteTable struct {
	RouteTableID string           `xml:"routeTableId"`
	VpcID        string           `xml:"vpcId"`
	OwnerID      string           `xml:"ownerId"`
	Routes       []xRoute         `xml:"routeSet>item"`
	Associations []xRTAssociation `xml:"associationSet>item"`
	Tags         []xTag           `xml:"tagSet>item"`
}

type xRouteTableSet struct {
	XMLName xml.Name      `xml:"routeTableSet"`
	Items   []xRouteTable `xml:"item"`
}

type xENI struct {
	NetworkInterfaceID string          `xml:"networkInterfaceId"`
	SubnetID           string          `xml:"subnetId"`
	VpcID              string          `xml:"vpcId"`
	AvailabilityZone   string          `xml:"availabilityZone"`
	Description        string          `xml:"description"`
	OwnerID            string          `xml:"ownerId"`
	RequesterManaged   bool            `xml:"requesterManaged"`
	Status             string          `xml:"status"`
	MacAddress         string          `xml:"macAddress"`
	PrivateIPAddress   string          `xml:"privateIpAddress"`
	SourceDestCheck    bool            `xml:"sourceDestCheck"`
	InterfaceType      string          `xml:"interfaceType"`
	Attachment         *xAttachment    `xml:"attachment,omitempty"`
	Association        *xIPAssociation `xml:"association,omitempty"`
	PrivateIPs         []xPrivateIP    `xml:"privateIpAddressesSet>item"`
	Tags               []xTag          `xml:"tagSet>item"`
}

type xENISet struct {
	XMLName xml.Name `xml:"networkInterfaceSet"`
	Items   []xENI   `xml:"item"`
}

type xSubnet struct {
	SubnetID                string `xml:"subnetId"`
	SubnetArn               string `xml:"subnetArn"`
	State                   string `xml:"state"`
	VpcID                   string `xml:"vpcId"`
	OwnerID                 string `xml:"ownerId"`
	CidrBlock               string `xml:"cidrBlock"`
	AvailableIPAddressCount int    `xml:"availableIpAddressCount"`
	AvailabilityZone        string `xml:"availabilityZone"`
	DefaultForAz            bool   `xml:"defaultForAz"`
	MapPublicIPOnLaunch     bool   `xml:"mapPublicIpOnLaunch"`
	Tags                    []xTag `xml:"tagSet>item"`
}

type xSubnetSet struct {
	XMLName xml.Name  `xml:"subnetSet"`
	Items   []xSubnet `xml:"item"`
}

type xVpc struct {
	VpcID           string `xml:"vpcId"`
	OwnerID         string `xml:"ownerId"`
	State           string `xml:"state"`
	CidrBlock       string `xml:"cidrBlock"`
	InstanceTenancy string `xml:"instanceTenancy"`
	IsDefault       bool   `xml:"isDefault"`
	Tags            []xTag `xml:"tagSet>item"`
}

type xVpcSet struct {
	XMLName xml.Name `xml:"vpcSet"`
	Items   []xVpc   `xml:"item"`
}

type xAddress struct {
	PublicIP                string `xml:"publicIp"`
	AllocationID            string `xml:"allocationId"`
	Domain                  string `xml:"domain"`
	PublicIpv4Pool          string `xml:"publicIpv4Pool"`
	NetworkBorderGroup      string `xml:"networkBorderGroup"`
	AssociationID           string `xml:"associationId,omitempty"`
	InstanceID              string `xml:"instanceId,omitempty"`
	NetworkInterfaceID      string `xml:"networkInterfaceId,omitempty"`
	NetworkInterfaceOwnerID string `xml:"networkInterfaceOwnerId,omitempty"`
	PrivateIPAddress        string `xml:"privateIpAddress,omitempty"`
	Tags                    []xTag `xml:"tagSet>item"`
}

type xAddressSet struct {
	XMLName xml.Name   `xml:"addressesSet"`
	Items   []xAddress `xml:"item"`
}

type xReturn struct {
	XMLName xml.Name `xml:"return"`
	Value   bool     `xml:",chardata"`
}

type xAssociationID struct {
	XMLName xml.Name `xml:"associationId"`
	Value   string   `xml:",chardata"`
}
