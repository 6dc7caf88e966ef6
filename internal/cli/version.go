package cli

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version and commit are set at link time by scripts/release.sh:
//
//	-ldflags "-X github.com/assetctl/assetctl/internal/cli.version=v1.2.3 -X github.com/assetctl/assetctl/internal/cli.commit=0123abc..."
//
// A plain go build or go install leaves them empty, and the build info
// (the module version, the VCS revision) fills in.
var version, commit string

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the assetctl version and the commit it was built from",
		Example: "  assetctl version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(e.stdout, "assetctl", versionString())
			return err
		},
	}
}

// versionString is "v1.2.3 (commit 0123456789ab)": the linked version,
// else the module version go install or a tagged checkout records
// ("(devel)" for an untagged build), and the commit, with "+dirty" when
// the checkout had local changes.
func versionString() string {
	v, c, dirty := version, commit, false
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision" && c == "":
				c = s.Value
			case s.Key == "vcs.modified" && s.Value == "true" && commit == "":
				dirty = true
			}
		}
	}
	if v == "" {
		v = "(unknown)"
	}
	if c == "" {
		return v
	}
	if len(c) > 12 {
		c = c[:12]
	}
	if dirty {
		c += "+dirty"
	}
	return v + " (commit " + c + ")"
}
