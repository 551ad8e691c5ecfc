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
	"strings"
	"syscall"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/esbake/packer-plugin-elasticsearch/internal/packerrun"
)

// packerTemplate is the example as written with the demo's overrides set
// in its source and provisioner blocks, for a real `packer build`: the
// same changes the protocol path applies to the decoded values.
func packerTemplate(name string, src []byte, source, prov []override) ([]byte, error) {
	return packerrun.Template(name, src, toPackerrun(source), toPackerrun(prov))
}

func toPackerrun(os []override) []packerrun.Override {
	out := make([]packerrun.Override, len(os))
	for i, o := range os {
		out[i] = packerrun.Override{Path: o.Path, Value: o.Value, Why: o.Why}
	}
	return out
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
	cmd.Dir = dir // the manifest post-processor writes packer-manifest.json here
	// Packer's panicwrap parent ignores SIGINT (a terminal's Ctrl-C reaches
	// its child through the process group): signal Packer's own group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
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
		l, ok := packerrun.ParseLine(sc.Text())
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
