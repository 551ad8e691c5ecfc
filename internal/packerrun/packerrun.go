// Package packerrun runs real Packer on a template for the demo and the
// real-Packer tests: it writes a copy of the template with overrides set in
// its source and provisioner blocks, and reads `-machine-readable` output.
package packerrun

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// Override sets the attribute at Path (a name followed by more path is a
// nested block; a number picks the n-th block of the type before it).
type Override struct {
	Path  []string
	Value cty.Value
	Why   string
}

// Template is src (a .pkr.hcl file) with source overrides set in its
// source "elasticsearch-ami" "node" block and provisioner overrides in the
// build's provisioner "elasticsearch-node" block.
func Template(name string, src []byte, source, prov []Override) ([]byte, error) {
	f, diags := hclwrite.ParseConfig(src, name, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, fmt.Errorf("parse %s: %s", name, diags.Error())
	}
	sb := f.Body().FirstMatchingBlock("source", []string{"elasticsearch-ami", "node"})
	if sb == nil {
		return nil, fmt.Errorf("%s has no source \"elasticsearch-ami\" \"node\" block", name)
	}
	var pb *hclwrite.Block
	if build := f.Body().FirstMatchingBlock("build", nil); build != nil {
		pb = build.Body().FirstMatchingBlock("provisioner", []string{"elasticsearch-node"})
	}
	if pb == nil {
		return nil, fmt.Errorf("%s has no build block with a provisioner \"elasticsearch-node\"", name)
	}
	for _, o := range source {
		if err := setHCL(sb.Body(), o.Path, o.Value); err != nil {
			return nil, fmt.Errorf("override source.%s: %w", strings.Join(o.Path, "."), err)
		}
	}
	for _, o := range prov {
		if err := setHCL(pb.Body(), o.Path, o.Value); err != nil {
			return nil, fmt.Errorf("override provisioner.%s: %w", strings.Join(o.Path, "."), err)
		}
	}
	return f.Bytes(), nil
}

func setHCL(body *hclwrite.Body, path []string, v cty.Value) error {
	if len(path) == 1 {
		body.SetAttributeValue(path[0], v)
		return nil
	}
	blockType, rest := path[0], path[1:]
	var blocks []*hclwrite.Block
	for _, b := range body.Blocks() {
		if b.Type() == blockType {
			blocks = append(blocks, b)
		}
	}
	if i, err := strconv.Atoi(rest[0]); err == nil {
		if i >= len(blocks) {
			return fmt.Errorf("the template has %d %q block(s), not %d", len(blocks), blockType, i+1)
		}
		return setHCL(blocks[i].Body(), rest[1:], v)
	}
	if len(blocks) == 0 {
		blocks = append(blocks, body.AppendNewBlock(blockType, nil))
	}
	return setHCL(blocks[0].Body(), rest, v)
}

// Line is one line of `packer -machine-readable` output:
// timestamp,target,type,data...
type Line struct {
	Target, Type string
	Data         []string
}

// ParseLine splits a machine-readable line and undoes Packer's escaping of
// commas and newlines in the data fields.
func ParseLine(line string) (Line, bool) {
	f := strings.Split(strings.TrimRight(line, "\r\n"), ",")
	if len(f) < 3 {
		return Line{}, false
	}
	if _, err := strconv.ParseInt(f[0], 10, 64); err != nil {
		return Line{}, false
	}
	data := f[3:]
	for i, d := range data {
		d = strings.ReplaceAll(d, "%!(PACKER_COMMA)", ",")
		data[i] = strings.ReplaceAll(d, `\n`, "\n")
	}
	return Line{Target: f[1], Type: f[2], Data: data}, true
}

// Artifact is what the machine-readable `artifact` lines say about one
// artifact.
type Artifact struct {
	BuilderID, ID, String string
	Files                 int
}

// Artifacts collects the artifacts from machine-readable lines, by index.
func Artifacts(lines []Line) []Artifact {
	var arts []Artifact
	for _, l := range lines {
		if l.Type != "artifact" || len(l.Data) < 3 {
			continue
		}
		i, err := strconv.Atoi(l.Data[0])
		if err != nil || i < 0 || i > 100 {
			continue
		}
		for len(arts) <= i {
			arts = append(arts, Artifact{})
		}
		switch l.Data[1] {
		case "builder-id":
			arts[i].BuilderID = l.Data[2]
		case "id":
			arts[i].ID = l.Data[2]
		case "string":
			arts[i].String = l.Data[2]
		case "files-count":
			arts[i].Files, _ = strconv.Atoi(l.Data[2])
		}
	}
	return arts
}
