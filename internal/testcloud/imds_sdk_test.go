package testcloud

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// The metadata service answers aws-sdk-go-v2's real IMDS client, which is
// what `esnode boot` uses.
func TestStartIMDSWithSDKClient(t *testing.T) {
	requireGoOrMock(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ep, stop, err := StartIMDS(ctx, IMDSConfig{
		InstanceID: "i-0abc0000000000003", InstanceType: "r6g.large", LocalIPv4: "10.213.9.9",
		Region: "ap-southeast-2", AvailabilityZone: "ap-southeast-2c",
		Tags: map[string]string{"es:cluster": "audit"}, UserData: []byte("cluster: audit\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	c := imds.New(imds.Options{Endpoint: ep})

	md, err := c.GetMetadata(ctx, &imds.GetMetadataInput{Path: "instance-id"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(md.Content)
	if string(b) != "i-0abc0000000000003" {
		t.Errorf("instance-id = %q", b)
	}
	tag, err := c.GetMetadata(ctx, &imds.GetMetadataInput{Path: "tags/instance/es:cluster"})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(tag.Content); string(b) != "audit" {
		t.Errorf("tag = %q", b)
	}
	ud, err := c.GetUserData(ctx, &imds.GetUserDataInput{})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(ud.Content); string(b) != "cluster: audit\n" {
		t.Errorf("user-data = %q", b)
	}
	doc, err := c.GetInstanceIdentityDocument(ctx, &imds.GetInstanceIdentityDocumentInput{})
	if err != nil {
		t.Fatal(err)
	}
	if doc.InstanceID != "i-0abc0000000000003" || doc.Region != "ap-southeast-2" || doc.PrivateIP != "10.213.9.9" || doc.InstanceType != "r6g.large" {
		t.Errorf("identity document = %+v", doc.InstanceIdentityDocument)
	}
	reg, err := c.GetRegion(ctx, &imds.GetRegionInput{})
	if err != nil || reg.Region != "ap-southeast-2" {
		t.Errorf("region = %q, %v", reg.Region, err)
	}
}
