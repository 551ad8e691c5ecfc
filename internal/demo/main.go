// Command demo is `make demo`: the offline main job on the local test cloud.
// It validates example.pkr.hcl through the built plugin (the plugin protocol
// Packer uses), starts the local cloud (EC2/SSM API emulator, nspawn guests),
// bakes the example's image through the plugin against stand-in artifacts,
// launches three nodes from it, shows esnode boot configuring each, drifts one
// and audits all three with esaudit over SSH. Ctrl-C cleans up everything.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"

	"github.com/esbake/packer-plugin-elasticsearch/internal/plugintest"
)

func main() {
	plugin := flag.String("plugin", "bin/packer-plugin-elasticsearch", "the built plugin binary")
	template := flag.String("template", "example.pkr.hcl", "the template to bake")
	reports := flag.String("reports", "reports", "where esaudit writes its reports")
	validateOnly := flag.Bool("validate-only", false, "only validate the template (no local cloud)")
	packerBin := flag.String("packer", "", "bake with this Packer (>= 1.10, the plugin installed into it) instead of driving the plugin protocol directly")
	flag.Parse()
	// The SDK's RPC layer logs every stream at INFO on the standard logger;
	// the demo prints the plugin's UI instead. ESBAKE_DEMO_DEBUG=1 keeps it.
	if os.Getenv("ESBAKE_DEMO_DEBUG") == "" {
		log.SetOutput(io.Discard)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	err := run(ctx, *plugin, *packerBin, *template, *reports, *validateOnly)
	if ctx.Err() != nil {
		fmt.Fprintf(os.Stderr, "demo: interrupted after %s; everything it started was cleaned up\n", time.Since(start).Round(time.Second))
		os.Exit(130)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	fmt.Printf("demo: done in %s\n", time.Since(start).Round(time.Second))
}

// timings collects each step's duration for the closing summary.
var timings []string

func step(name string, fn func() error) error {
	start := time.Now()
	fmt.Printf("==> %s\n", name)
	err := fn()
	d := time.Since(start).Round(time.Millisecond)
	status := map[bool]string{true: "ok", false: "FAILED"}[err == nil]
	if errors.Is(err, context.Canceled) {
		status = "interrupted"
	}
	fmt.Printf("    %s (%s)\n", status, d)
	timings = append(timings, fmt.Sprintf("%9s %-11s  %s", d, status, name))
	return err
}

func run(ctx context.Context, bin, packerBin, file, reports string, validateOnly bool) error {
	src, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if err := validate(bin, file, src); err != nil {
		return err
	}
	if validateOnly {
		return nil
	}
	d := &demo{bin: bin, packer: packerBin, file: file, src: src, reports: reports}
	err = d.pipeline(ctx)
	cerr := d.cleanup()
	fmt.Println("==> step durations")
	for _, t := range timings {
		fmt.Println("    " + t)
	}
	return errors.Join(err, cerr)
}

// validate is step 1: ConfigSpec + Prepare of both components of the
// unmodified example, with placeholder checksums.
func validate(bin, file string, src []byte) error {
	// A real build reads these from checksums.pkrvars.hcl; Prepare checks
	// only their form, so validation passes placeholders and says so.
	vars := map[string]cty.Value{
		"elastichq_sha512":        cty.StringVal(strings.Repeat("0", 128)),
		"cloudwatch_agent_sha512": cty.StringVal(strings.Repeat("0", 128)),
	}
	fmt.Println("Each component is also validated by driving the plugin binary directly over")
	fmt.Println("Packer's plugin protocol (the handshake, RPC and HCL2 decoding Packer uses).")
	fmt.Println("Validation gives the two checksum variables placeholder values (a real build takes them from -var-file).")
	tmpl, err := plugintest.ParseTemplate(file, src, vars)
	if err != nil {
		return err
	}
	check := func(kind, name string, body func() (hcl.Body, error)) error {
		return step(fmt.Sprintf("validate: %s %q ConfigSpec + Prepare through %s", kind, name, bin), func() error {
			client, stop, err := plugintest.StartPlugin(bin, kind, name)
			if err != nil {
				return err
			}
			defer stop()
			b, err := body()
			if err != nil {
				return err
			}
			if kind == "builder" {
				comp := client.Builder()
				val, diags := hcldec.Decode(b, hcldec.ObjectSpec(comp.ConfigSpec()), tmpl.Ctx)
				if diags.HasErrors() {
					return diags
				}
				_, warns, err := comp.Prepare(val, plugintest.PackerVars("elasticsearch-ami"))
				for _, w := range warns {
					fmt.Println("    warning:", w)
				}
				return err
			}
			comp := client.Provisioner()
			val, diags := hcldec.Decode(b, hcldec.ObjectSpec(comp.ConfigSpec()), tmpl.Ctx)
			if diags.HasErrors() {
				return diags
			}
			return comp.Prepare(val, plugintest.PackerVars("elasticsearch-ami"))
		})
	}
	if err := check("builder", "ami", func() (hcl.Body, error) { return tmpl.SourceBody("elasticsearch-ami", "node") }); err != nil {
		return err
	}
	if err := check("provisioner", "node", func() (hcl.Body, error) { return tmpl.ProvisionerBody("elasticsearch-node") }); err != nil {
		return err
	}
	fmt.Printf("%s is valid for elasticsearch-ami and elasticsearch-node.\n", file)
	return nil
}
