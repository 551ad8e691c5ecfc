// Command gendocs writes docs/policies.md from the rules' METADATA, so the
// catalogue and the policies cannot disagree. Run by make generate.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/esbake/packer-plugin-elasticsearch/audit/eval"
)

func main() {
	out := "docs/policies.md"
	if len(os.Args) > 1 {
		out = os.Args[1]
	}
	e, err := eval.New(context.Background(), eval.Options{Stage: eval.StageAll})
	if err != nil {
		fmt.Fprintln(os.Stderr, "gendocs: load policies:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(out, []byte(eval.CatalogueMarkdown(e.Catalogue())), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
}
