package main

import (
	"testing"

	"github.com/zclconf/go-cty/cty"
)

func TestSetPathConvertsAndFillsNullBlocks(t *testing.T) {
	pollingT := cty.Object(map[string]cty.Type{"delay_seconds": cty.Number, "max_attempts": cty.Number})
	v := cty.ObjectVal(map[string]cty.Value{
		"ec2_endpoint": cty.NullVal(cty.String),
		"polling":      cty.NullVal(pollingT),
		"plugin":       cty.ListVal([]cty.Value{cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal("discovery-ec2"), "sha512": cty.NullVal(cty.String)})}),
	})
	v, err := setPath(v, []string{"ec2_endpoint"}, cty.StringVal("http://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	v, err = setPath(v, []string{"polling", "delay_seconds"}, cty.NumberIntVal(1))
	if err != nil {
		t.Fatal(err)
	}
	v, err = setPath(v, []string{"plugin", "0", "sha512"}, cty.StringVal("abc"))
	if err != nil {
		t.Fatal(err)
	}
	if got := v.GetAttr("ec2_endpoint").AsString(); got != "http://127.0.0.1:1" {
		t.Errorf("ec2_endpoint = %q", got)
	}
	p := v.GetAttr("polling")
	if !p.Type().Equals(pollingT) || !p.GetAttr("delay_seconds").RawEquals(cty.NumberIntVal(1)) || !p.GetAttr("max_attempts").IsNull() {
		t.Errorf("polling = %#v", p)
	}
	pl := v.GetAttr("plugin").Index(cty.NumberIntVal(0))
	if pl.GetAttr("sha512").AsString() != "abc" || pl.GetAttr("name").AsString() != "discovery-ec2" {
		t.Errorf("plugin[0] = %#v", pl)
	}
}

func TestSetPathRejectsUnknownAttributesAndBadIndexes(t *testing.T) {
	v := cty.ObjectVal(map[string]cty.Value{"plugin": cty.ListValEmpty(cty.Object(map[string]cty.Type{"sha512": cty.String}))})
	if _, err := setPath(v, []string{"no_such"}, cty.StringVal("x")); err == nil {
		t.Error("an attribute the spec lacks was accepted")
	}
	if _, err := setPath(v, []string{"plugin", "0", "sha512"}, cty.StringVal("x")); err == nil {
		t.Error("index 0 of an empty list was accepted")
	}
	if _, err := setPath(cty.ObjectVal(map[string]cty.Value{"n": cty.NullVal(cty.Number)}), []string{"n"}, cty.StringVal("not a number")); err == nil {
		t.Error("a value the spec's type cannot hold was accepted")
	}
}
