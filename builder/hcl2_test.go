package builder

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// A source block written the way users write it, decoded against the
// generated HCL2 spec the way Packer core does, then prepared.
const hclSource = `
region  = "eu-west-2"
profile = "build"
assume_role {
  role_arn = "arn:aws:iam::123456789012:role/esbake-builder"
}
polling {
  delay_seconds = 5
  max_attempts  = 100
}
source_ami_filter {
  filters = {
    name             = "debian-12-amd64-*"
    root-device-type = "ebs"
  }
  owners      = ["123456789012"]
  most_recent = true
}
instance_type = "m6i.large"
subnet_filter {
  filters   = { "tag:Tier" = "build" }
  most_free = true
}
associate_public_ip_address = true
metadata_options {
  http_put_response_hop_limit = 2
}
launch_block_device_mappings {
  device_name = "/dev/xvda"
  volume_size = 30
}
launch_block_device_mappings {
  device_name           = "/dev/sdf"
  volume_size           = 100
  throughput            = 250
  delete_on_termination = false
}
temporary_security_group_source_cidrs = ["203.0.113.0/24"]
self_terminate_after = "3h"
run_tags = { Project = "aardvark" }
ami_name        = "aardvark-es-8"
ami_description = "Elasticsearch 8 node"
tags            = { Cluster = "aardvark-cluster" }
ami_regions     = ["eu-west-1"]
ssm_parameter_name = "/esbake/aardvark-cluster/ami"
policy_gate {
  fail_on = "critical"
}
ssh_username = "admin"
`

func TestPrepareFromHCL2(t *testing.T) {
	f, diags := hclparse.NewParser().ParseHCL([]byte(hclSource), "source.pkr.hcl")
	if diags.HasErrors() {
		t.Fatalf("parse: %v", diags)
	}
	var b Builder
	val, diags := hcldec.Decode(f.Body, b.ConfigSpec(), nil)
	if diags.HasErrors() {
		t.Fatalf("decode against ConfigSpec: %v", diags)
	}
	if _, _, err := b.Prepare(val); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	c := b.Config()
	if c.AssumeRole.RoleARN == "" || c.Polling.DelaySeconds != 5 || c.Metadata.HttpPutResponseHopLimit != 2 {
		t.Errorf("nested blocks lost: assume_role=%+v polling=%+v metadata=%+v", c.AssumeRole, c.Polling, c.Metadata)
	}
	if len(c.LaunchMappings) != 2 || c.LaunchMappings[1].Throughput != 250 || !c.LaunchMappings[1].DeleteOnTermination.False() {
		t.Errorf("launch_block_device_mappings = %+v", c.LaunchMappings)
	}
	if !c.AssociatePublicIpAddress.True() || !c.SubnetFilter.MostFree || c.PolicyGate.FailOn != "critical" {
		t.Errorf("fields lost: public_ip=%v subnet_filter=%+v policy_gate=%+v", c.AssociatePublicIpAddress, c.SubnetFilter, c.PolicyGate)
	}
	if c.SelfTerminateDuration().Hours() != 3 {
		t.Errorf("self_terminate_after = %v", c.SelfTerminateDuration())
	}
}

// Unknown attributes are refused by the spec itself, before Prepare.
func TestHCL2SpecRefusesUnknownAttribute(t *testing.T) {
	f, diags := hclparse.NewParser().ParseHCL([]byte(hclSource+"\nsource_amii = \"ami-0123456789abcdef0\"\n"), "source.pkr.hcl")
	if diags.HasErrors() {
		t.Fatalf("parse: %v", diags)
	}
	var b Builder
	_, diags = hcldec.Decode(f.Body, b.ConfigSpec(), nil)
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "source_amii") {
		t.Fatalf("decode accepted an unknown attribute: %v", diags)
	}
}

// The spec covers the fields users expect by name.
func TestConfigSpecHasFields(t *testing.T) {
	var b Builder
	spec := b.ConfigSpec()
	for _, k := range []string{
		"region", "profile", "assume_role", "ec2_endpoint", "ssm_endpoint", "sts_endpoint", "max_retries", "polling",
		"skip_credential_validation", "source_ami", "source_ami_filter", "instance_type", "subnet_id", "subnet_filter",
		"vpc_id", "vpc_filter", "associate_public_ip_address", "iam_instance_profile", "metadata_options",
		"launch_block_device_mappings", "temporary_key_pair_type", "temporary_security_group_source_cidrs",
		"security_group_ids", "ssh_interface", "shutdown_behavior", "self_terminate_after", "run_tags",
		"run_volume_tags", "user_data", "user_data_file", "ami_name", "ami_description", "tags", "snapshot_tags",
		"ami_regions", "ami_users", "ami_org_arns", "ami_ou_arns", "deprecate_at", "imds_support",
		"force_deregister", "force_delete_snapshot", "ssm_parameter_name", "encrypt_boot", "kms_key_id",
		"region_kms_key_ids", "policy_gate", "ssh_username", "communicator",
	} {
		if _, ok := spec[k]; !ok {
			t.Errorf("ConfigSpec lacks %q", k)
		}
	}
}
