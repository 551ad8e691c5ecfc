package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// packerTemplate is the example as written with the demo's overrides set
// in its source and provisioner blocks, for a real `packer build`: the
// same changes the protocol path applies to the decoded values.
func packerTemplate(name string, src []byte, source, prov []override) ([]byte, error) {
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
			return nil, fmt.Errorf("override source.%s: %w", joinPath(o.Path), err)
		}
	}
	for _, o := range prov {
		if err := setHCL(pb.Body(), o.Path, o.Value); err != nil {
			return nil, fmt.Errorf("override provisioner.%s: %w", joinPath(o.Path), err)
		}
	}
	return f.Bytes(), nil
}

// setHCL sets the attribute at path in body. A name followed by more path
// is a nested block (created when the example has none); a number picks
// the n-th block of the type before it.
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

// machineLine is one line of `packer -machine-readable` output:
// timestamp,target,type,data...
type machineLine struct {
	Target, Type string
	Data         []string
}

// parseMachineLine splits a machine-readable line and undoes Packer's
// escaping of commas and newlines in the data fields.
func parseMachineLine(line string) (machineLine, bool) {
	f := strings.Split(strings.TrimRight(line, "\r\n"), ",")
	if len(f) < 3 {
		return machineLine{}, false
	}
	if _, err := strconv.ParseInt(f[0], 10, 64); err != nil {
		return machineLine{}, false
	}
	data := f[3:]
	for i, d := range data {
		d = strings.ReplaceAll(d, "%!(PACKER_COMMA)", ",")
		data[i] = strings.ReplaceAll(d, `\n`, "\n")
	}
	return machineLine{Target: f[1], Type: f[2], Data: data}, true
}

// bakeWithPacker runs `packer build -machine-readable` on the example with
// the overrides written into a copy of it, prints Packer's UI lines and
// returns the artifact id. An interrupt reaches Packer as SIGINT so it
// runs the builder's cleanups, as Ctrl-C in a terminal would.
func (d *demo) bakeWithPacker(ctx context.Context, vars map[string]cty.Value, source, prov []override) (string, error) {
	tmpl, err := packerTemplate(d.file, d.src, source, prov)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(d.tmp, "packer")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	file := filepath.Join(dir, filepath.Base(d.file))
	if err := os.WriteFile(file, tmpl, 0o600); err != nil {
		return "", err
	}
	fmt.Println("    the example with these overrides, written to " + file + ":")
	for _, o := range source {
		fmt.Printf("    override source.%s = %s  (%s)\n", joinPath(o.Path), show(o.Value), o.Why)
	}
	for _, o := range prov {
		fmt.Printf("    override provisioner.%s = %s  (%s)\n", joinPath(o.Path), show(o.Value), o.Why)
	}
	args := []string{"build", "-machine-readable", "-color=false"}
	names := make([]string, 0, len(vars))
	for n := range vars {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		args = append(args, "-var", n+"="+vars[n].AsString())
	}
	args = append(args, file)
	fmt.Printf("    %s %s\n", d.packer, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, d.packer, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	cmd.WaitDelay = 10 * time.Minute // Packer's cleanups after the interrupt
	cmd.Stderr = indent{os.Stderr}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start %s: %w", d.packer, err)
	}
	id, scanErr := readPackerOutput(out, os.Stdout)
	if err := cmd.Wait(); err != nil {
		return "", fmt.Errorf("packer build: %w", err)
	}
	if scanErr != nil {
		return "", fmt.Errorf("read packer's output: %w", scanErr)
	}
	if id == "" {
		return "", errors.New("packer build succeeded but reported no artifact id")
	}
	return id, nil
}

// readPackerOutput prints the UI lines of machine-readable output to w and
// returns the first artifact's id.
func readPackerOutput(r io.Reader, w io.Writer) (string, error) {
	var id string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		l, ok := parseMachineLine(sc.Text())
		switch {
		case !ok:
			fmt.Fprintln(w, "    | "+sc.Text())
		case l.Type == "ui" && len(l.Data) >= 2:
			for _, s := range strings.Split(strings.TrimRight(l.Data[1], "\n"), "\n") {
				fmt.Fprintln(w, "    | "+s)
			}
		case l.Type == "artifact" && len(l.Data) >= 3 && l.Data[1] == "id" && id == "":
			id = l.Data[2]
		}
	}
	return id, sc.Err()
}
